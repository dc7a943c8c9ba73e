-- Who was in a segment at a point in time, with their current email and
-- status. The time can be a date or timestamp string (UTC unless it carries
-- an offset), a TIMESTAMP or a TIMESTAMPTZ, e.g.
--   segment_members_at('engaged_subscribers', '2026-01-10')
--   segment_members_at('engaged_subscribers', TIMESTAMPTZ '2026-01-10 09:00:00+01')
-- Here: one week before the latest run.
SELECT
    m.subscriber_id,
    s.email,
    s.status
FROM segment_members_at(
    'engaged_subscribers',
    (SELECT max(as_of) - INTERVAL 7 DAY FROM segment_sizes)
) AS m
LEFT JOIN subscribers s ON s.subscriber_id = m.subscriber_id
ORDER BY m.subscriber_id;
