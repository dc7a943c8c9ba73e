WITH event_counts AS (
  SELECT
    events.subscriber_id,
    COUNT(*) FILTER(WHERE
      events.event = 'purchase'
      AND events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP_NTZ)
      AND events.occurred_at >= CAST('2026-10-28 06:00:00' AS TIMESTAMP_NTZ)
      AND COALESCE(events.amount >= 50, FALSE)
      AND events.coupon IS NOT NULL) AS n_f4767a83a6a4,
    COUNT(*) FILTER(WHERE
      events.event = 'email_open'
      AND events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP_NTZ)) AS n_75cb8d4d68e9
  FROM events
  WHERE
    events.occurred_at <= CAST('2026-11-27 06:00:00' AS TIMESTAMP_NTZ)
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
    COALESCE(LOWER(subscribers.city) IN (LOWER('New York'), LOWER('Brooklyn')), FALSE)
    AND NOT COALESCE(LOCATE(LOWER('%test_'), LOWER(subscribers.email)) > 0, FALSE)
    AND COALESCE(STARTSWITH(LOWER(subscribers.first_name), LOWER('Ann')), FALSE)
    AND COALESCE(ENDSWITH(LOWER(subscribers.last_name), LOWER('son')), FALSE)
    AND COALESCE(subscribers.age BETWEEN 18 AND 65, FALSE)
    AND COALESCE(subscribers.score > CAST('0.1' AS DOUBLE), FALSE)
    AND NOT COALESCE(subscribers.vip = TRUE, FALSE)
    AND COALESCE(subscribers.birthday < CAST('2000-01-01' AS DATE), FALSE)
    AND COALESCE(CAST(subscribers.created_at AS DATE) = CAST('2026-11-20' AS DATE), FALSE)
    AND NOT COALESCE(
      subscribers.last_login >= CAST('2026-11-20 06:00:00' AS TIMESTAMP_NTZ)
      AND subscribers.last_login <= CAST('2026-11-27 06:00:00' AS TIMESTAMP_NTZ),
      FALSE
    )
    AND COALESCE(
      (
        SIZE(
          ARRAY_EXCEPT(
            ARRAY(LOWER('VIP'), LOWER('webinar-attendee')),
            TRANSFORM(subscribers.tags, tag -> LOWER(tag))
          )
        ) = 0
      ),
      FALSE
    )
    AND NOT COALESCE(
      ARRAYS_OVERLAP(TRANSFORM(subscribers.interests, tag -> LOWER(tag)), ARRAY(LOWER('golf'))),
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
