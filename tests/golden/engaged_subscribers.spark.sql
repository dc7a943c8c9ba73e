WITH event_counts AS (
  SELECT
    events.subscriber_id,
    COUNT(*) FILTER(WHERE
      events.event = 'email_open'
      AND events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP_NTZ)
      AND events.occurred_at >= CAST('2026-08-29 06:00:00' AS TIMESTAMP_NTZ)) AS n_86344234df34,
    COUNT(*) FILTER(WHERE
      events.event = 'email_click'
      AND events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP_NTZ)
      AND events.occurred_at >= CAST('2026-08-29 06:00:00' AS TIMESTAMP_NTZ)) AS n_52661b34389e
  FROM events
  WHERE
    events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP_NTZ)
    AND events.event IN ('email_click', 'email_open')
  GROUP BY
    events.subscriber_id
)
SELECT
  subscribers.subscriber_id
FROM subscribers
LEFT JOIN event_counts
  ON event_counts.subscriber_id = subscribers.subscriber_id
WHERE
  COALESCE(event_counts.n_86344234df34, 0) >= 1
  OR COALESCE(event_counts.n_52661b34389e, 0) >= 1
ORDER BY
  subscribers.subscriber_id
