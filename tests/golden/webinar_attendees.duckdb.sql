SELECT
  subscribers.subscriber_id
FROM subscribers
WHERE
  COALESCE(
    LIST_TRANSFORM(subscribers.tags, LAMBDA tag : REPLACE(LOWER(REPLACE(tag, 'İ', 'i')), 'ς', 'σ')) && [
      REPLACE(LOWER(REPLACE('webinar-attendee', 'İ', 'i')), 'ς', 'σ'),
      REPLACE(LOWER(REPLACE('webinar-2026', 'İ', 'i')), 'ς', 'σ')
    ],
    FALSE
  )
ORDER BY
  subscribers.subscriber_id
