SELECT
  subscribers.subscriber_id
FROM subscribers
WHERE
  COALESCE(
    subscribers.subscriber_id IN (
      SELECT
        segment_membership.subscriber_id
      FROM segment_membership
      WHERE
        segment_membership.segment = 'subscribers_in_new_york'
    ),
    FALSE
  )
  AND COALESCE(
    subscribers.subscriber_id IN (
      SELECT
        segment_membership.subscriber_id
      FROM segment_membership
      WHERE
        segment_membership.segment = 'webinar_attendees'
    ),
    FALSE
  )
  AND NOT COALESCE(
    subscribers.subscriber_id IN (
      SELECT
        segment_membership.subscriber_id
      FROM segment_membership
      WHERE
        segment_membership.segment = 'active_users'
    ),
    FALSE
  )
ORDER BY
  subscribers.subscriber_id
