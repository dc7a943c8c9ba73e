WITH event_counts AS (
  SELECT
    events.subscriber_id,
    COUNT(*) FILTER(WHERE
      events.event = 'purchase'
      AND events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP)
      AND events.occurred_at >= CAST('2026-10-28 06:00:00' AS TIMESTAMP)) AS n_682b172deb2c
  FROM events
  WHERE
    events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP)
    AND events.event IN ('purchase')
  GROUP BY
    events.subscriber_id
)
SELECT
  subscribers.subscriber_id
FROM subscribers
LEFT JOIN event_counts
  ON event_counts.subscriber_id = subscribers.subscriber_id
WHERE
  COALESCE(event_counts.n_682b172deb2c, 0) >= 1
ORDER BY
  subscribers.subscriber_id
