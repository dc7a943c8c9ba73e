-- For every audience: how many subscribers its segments pick, and how many of
-- them are left out because they are not active (unsubscribed, bounced,
-- complained) or excluded, next to the final recipient count.
WITH rules AS (
    SELECT audience, unnest(include) AS segment, 'include' AS role FROM audiences
    UNION ALL
    SELECT audience, unnest(exclude) AS segment, 'exclude' AS role FROM audiences
),
picked AS (
    SELECT DISTINCT r.audience, m.subscriber_id
    FROM rules r JOIN segment_membership m USING (segment)
    WHERE r.role = 'include'
),
excluded AS (
    SELECT DISTINCT r.audience, m.subscriber_id
    FROM rules r JOIN segment_membership m USING (segment)
    WHERE r.role = 'exclude'
)
SELECT
    a.audience,
    count(p.subscriber_id) AS picked_by_segments,
    count(x.subscriber_id) AS excluded,
    count(p.subscriber_id) FILTER (WHERE x.subscriber_id IS NULL AND s.status <> 'active') AS suppressed_not_active,
    a.recipients
FROM audiences a
LEFT JOIN picked p ON p.audience = a.audience
LEFT JOIN excluded x ON x.audience = p.audience AND x.subscriber_id = p.subscriber_id
LEFT JOIN subscribers s ON s.subscriber_id = p.subscriber_id
GROUP BY a.audience, a.recipients
ORDER BY a.audience;
