SELECT
  subscribers.subscriber_id
FROM subscribers
WHERE
  COALESCE(
    LIST_TRANSFORM(subscribers.tags, LAMBDA tag : REPLACE(LOWER(REPLACE(tag, 'İ', 'i')), 'ς', 'σ')) && ['webinar-attendee', 'webinar-2026'],
    FALSE
  )
ORDER BY
  subscribers.subscriber_id
