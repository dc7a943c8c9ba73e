SELECT
  subscribers.subscriber_id
FROM subscribers
WHERE
  COALESCE(
    LIST_TRANSFORM(subscribers.tags, LAMBDA tag : LOWER(tag)) && [LOWER('webinar-attendee'), LOWER('webinar-2026')],
    FALSE
  )
ORDER BY
  subscribers.subscriber_id
