SELECT
  subscribers.subscriber_id
FROM subscribers
WHERE
  COALESCE(
    REPLACE(LOWER(REPLACE(subscribers.state, 'İ', 'i')), 'ς', 'σ') = REPLACE(LOWER(REPLACE('NY', 'İ', 'i')), 'ς', 'σ'),
    FALSE
  )
ORDER BY
  subscribers.subscriber_id
