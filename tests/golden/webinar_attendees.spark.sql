SELECT
  subscribers.subscriber_id
FROM subscribers
WHERE
  COALESCE(
    ARRAYS_OVERLAP(
      TRANSFORM(subscribers.tags, tag -> LOWER(tag)),
      ARRAY(LOWER('webinar-attendee'), LOWER('webinar-2026'))
    ),
    FALSE
  )
ORDER BY
  subscribers.subscriber_id
