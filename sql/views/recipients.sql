-- Current recipients of every audience: subscriber_id, email, the union of all
-- audiences' fields (NULL where an audience did not ask for a field), run_id.
-- Only active subscribers, always.
CREATE VIEW recipients AS
SELECT * FROM read_parquet('{{version_dir}}/recipients.parquet', hive_partitioning = false);
