SELECT
  subscribers.subscriber_id
FROM subscribers
WHERE
  COALESCE(LOWER(subscribers.state) = LOWER('NY'), FALSE)
ORDER BY
  subscribers.subscriber_id
