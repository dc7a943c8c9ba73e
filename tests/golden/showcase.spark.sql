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
    COALESCE(
      REPLACE(LOWER(REPLACE(subscribers.city, 'İ', 'i')), 'ς', 'σ') IN (
        REPLACE(LOWER(REPLACE('New York', 'İ', 'i')), 'ς', 'σ'),
        REPLACE(LOWER(REPLACE('Brooklyn', 'İ', 'i')), 'ς', 'σ')
      ),
      FALSE
    )
    AND NOT COALESCE(
      LOCATE(
        REPLACE(LOWER(REPLACE('%test_', 'İ', 'i')), 'ς', 'σ'),
        REPLACE(LOWER(REPLACE(subscribers.email, 'İ', 'i')), 'ς', 'σ')
      ) > 0,
      FALSE
    )
    AND COALESCE(
      STARTSWITH(
        REPLACE(LOWER(REPLACE(subscribers.first_name, 'İ', 'i')), 'ς', 'σ'),
        REPLACE(LOWER(REPLACE('Ann', 'İ', 'i')), 'ς', 'σ')
      ),
      FALSE
    )
    AND COALESCE(
      ENDSWITH(
        REPLACE(LOWER(REPLACE(subscribers.last_name, 'İ', 'i')), 'ς', 'σ'),
        REPLACE(LOWER(REPLACE('son', 'İ', 'i')), 'ς', 'σ')
      ),
      FALSE
    )
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
            ARRAY(
              REPLACE(LOWER(REPLACE('VIP', 'İ', 'i')), 'ς', 'σ'),
              REPLACE(LOWER(REPLACE('webinar-attendee', 'İ', 'i')), 'ς', 'σ')
            ),
            TRANSFORM(subscribers.tags, tag -> REPLACE(LOWER(REPLACE(tag, 'İ', 'i')), 'ς', 'σ'))
          )
        ) = 0
      ),
      FALSE
    )
    AND NOT COALESCE(
      ARRAYS_OVERLAP(
        TRANSFORM(subscribers.interests, tag -> REPLACE(LOWER(REPLACE(tag, 'İ', 'i')), 'ς', 'σ')),
        ARRAY(REPLACE(LOWER(REPLACE('golf', 'İ', 'i')), 'ς', 'σ'))
      ),
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
