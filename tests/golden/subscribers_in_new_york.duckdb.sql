SELECT
  subscribers.subscriber_id
FROM subscribers
WHERE
  COALESCE(REPLACE(LOWER(REPLACE(subscribers.state, 'İ', 'i')), 'ς', 'σ') = 'ny', FALSE)
ORDER BY
  subscribers.subscriber_id
