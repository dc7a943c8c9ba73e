-- Current recipients of every audience: subscriber_id, email, group ('send', or
-- 'holdout' for an audience's control group), the union of all audiences' fields
-- (NULL where an audience did not ask for a field), run_id.
-- Never a suppressed subscriber or address; one row per address per audience.
CREATE VIEW recipients AS
SELECT * FROM read_parquet('{{version_dir}}/recipients.parquet', hive_partitioning = false);
