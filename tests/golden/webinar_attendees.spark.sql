SELECT
  subscribers.subscriber_id
FROM subscribers
WHERE
  COALESCE(
    ARRAYS_OVERLAP(
      TRANSFORM(subscribers.tags, tag -> REPLACE(LOWER(REPLACE(tag, 'İ', 'i')), 'ς', 'σ')),
      ARRAY(
        REPLACE(LOWER(REPLACE('webinar-attendee', 'İ', 'i')), 'ς', 'σ'),
        REPLACE(LOWER(REPLACE('webinar-2026', 'İ', 'i')), 'ς', 'σ')
      )
    ),
    FALSE
  )
ORDER BY
  subscribers.subscriber_id
