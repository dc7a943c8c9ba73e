-- Current membership, one row per (segment, subscriber_id), sorted that way.
CREATE VIEW segment_membership AS
SELECT segment, subscriber_id
FROM read_parquet('{{version_dir}}/segment_membership.parquet', hive_partitioning = false);
