WITH event_counts AS (
  SELECT
    events.subscriber_id,
    COUNT(*) FILTER(WHERE
      events.event = 'purchase'
      AND events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP)
      AND events.occurred_at >= CAST('2026-10-28 06:00:00' AS TIMESTAMP)
      AND COALESCE(events.amount >= 50, FALSE)
      AND events.coupon IS NOT NULL) AS n_f4767a83a6a4,
    COUNT(*) FILTER(WHERE
      events.event = 'email_open'
      AND events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP)) AS n_75cb8d4d68e9
  FROM events
  WHERE
    events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP)
    AND events.event IN ('email_open', 'purchase')
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
      REPLACE(LOWER(REPLACE(subscribers.city, 'İ', 'i')), 'ς', 'σ') IN ('new york', 'brooklyn'),
      FALSE
    )
    AND NOT COALESCE(
      STRPOS(REPLACE(LOWER(REPLACE(subscribers.email, 'İ', 'i')), 'ς', 'σ'), '%test_') > 0,
      FALSE
    )
    AND COALESCE(
      STARTS_WITH(REPLACE(LOWER(REPLACE(subscribers.first_name, 'İ', 'i')), 'ς', 'σ'), 'ann'),
      FALSE
    )
    AND COALESCE(
      ENDS_WITH(REPLACE(LOWER(REPLACE(subscribers.last_name, 'İ', 'i')), 'ς', 'σ'), 'son'),
      FALSE
    )
    AND COALESCE(subscribers.age BETWEEN 18 AND 65, FALSE)
    AND COALESCE(subscribers.score > CAST('0.1' AS DOUBLE), FALSE)
    AND NOT COALESCE(subscribers.vip = TRUE, FALSE)
    AND COALESCE(subscribers.birthday < CAST('2000-01-01' AS DATE), FALSE)
    AND COALESCE(CAST(subscribers.created_at AS DATE) = CAST('2026-11-20' AS DATE), FALSE)
    AND NOT COALESCE(
      subscribers.last_login >= CAST('2026-11-20 06:00:00' AS TIMESTAMP)
      AND subscribers.last_login <= CAST('2026-11-27 06:00:00' AS TIMESTAMP),
      FALSE
    )
    AND COALESCE(
      LIST_TRANSFORM(subscribers.tags, LAMBDA tag : REPLACE(LOWER(REPLACE(tag, 'İ', 'i')), 'ς', 'σ')) @> ['vip', 'webinar-attendee'],
      FALSE
    )
    AND NOT COALESCE(
      LIST_TRANSFORM(
        subscribers.interests,
        LAMBDA tag : REPLACE(LOWER(REPLACE(tag, 'İ', 'i')), 'ς', 'σ')
      ) && ['golf'],
      FALSE
    )
    AND NOT (
      subscribers.postal_code IS NOT NULL
    )
  )
  OR NOT (
    COALESCE(event_counts.n_f4767a83a6a4, 0) >= 2
    OR NOT (
      COALESCE(event_counts.n_75cb8d4d68e9, 0) >= 1
    )
  )
ORDER BY
  subscribers.subscriber_id
