WITH event_counts AS (
  SELECT
    events.subscriber_id,
    COUNT(*) FILTER(WHERE
      events.event = 'purchase'
      AND events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP)) AS n_b439c4fbc8b8
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
  (
    COALESCE(
      subscribers.created_at >= CAST('2026-10-28 06:00:00' AS TIMESTAMP)
      AND subscribers.created_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP),
      FALSE
    )
    AND COALESCE(event_counts.n_b439c4fbc8b8, 0) = 1
  )
  AND (
    COALESCE(
      REPLACE(LOWER(REPLACE(subscribers.signup_form, 'İ', 'i')), 'ς', 'σ') = 'checkout',
      FALSE
    )
    OR COALESCE(
      LIST_TRANSFORM(subscribers.tags, LAMBDA tag : REPLACE(LOWER(REPLACE(tag, 'İ', 'i')), 'ς', 'σ')) && ['new-customer'],
      FALSE
    )
  )
ORDER BY
  subscribers.subscriber_id
