-- Every entry into and exit from a segment, one row per change per run.
CREATE VIEW membership_changes AS
SELECT run_id, as_of, segment, subscriber_id, change
FROM read_parquet('{{version_dir}}/membership_changes.parquet', hive_partitioning = false);
