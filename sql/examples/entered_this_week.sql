-- Who entered a segment in the 7 days up to the latest run (the warehouse's
-- "now" is the latest run's as_of, not the wall clock), and whether they are
-- still a member.
WITH latest AS (
    SELECT max(as_of) AS as_of FROM segment_sizes
)
SELECT
    c.subscriber_id,
    s.email,
    c.as_of AS entered_at,
    m.subscriber_id IS NOT NULL AS still_member
FROM membership_changes c
CROSS JOIN latest
LEFT JOIN subscribers s ON s.subscriber_id = c.subscriber_id
LEFT JOIN segment_membership m ON m.segment = c.segment AND m.subscriber_id = c.subscriber_id
WHERE c.segment = 'engaged_subscribers'
  AND c.change = 'entered'
  AND c.as_of > latest.as_of - INTERVAL 7 DAY
ORDER BY entered_at DESC, c.subscriber_id;
