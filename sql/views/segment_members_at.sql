-- segment_members_at(segment_key, ts): the subscriber_ids that were members of
-- segment_key at ts (point in time, from the history). ts may be a string
-- literal, a TIMESTAMP (UTC) or a TIMESTAMPTZ; see utc_timestamp.
--   SELECT * FROM segment_members_at('engaged_subscribers', '2026-01-15');
CREATE MACRO segment_members_at(segment_key, ts) AS TABLE
SELECT subscriber_id
FROM segment_membership_history
WHERE segment = segment_key
  AND valid_from <= utc_timestamp(ts)
  AND (valid_to IS NULL OR utc_timestamp(ts) < valid_to)
ORDER BY subscriber_id;
