-- One row per stay of a subscriber in a segment. valid_from / valid_to are the
-- as_of (UTC) of the runs that saw the stay begin and end; valid_to is NULL
-- while the subscriber is still a member. Member at ts: valid_from <= ts < valid_to.
CREATE VIEW segment_membership_history AS
SELECT segment, subscriber_id, valid_from, valid_to, entered_run_id, exited_run_id
FROM read_parquet('{{version_dir}}/segment_membership_history.parquet', hive_partitioning = false);
