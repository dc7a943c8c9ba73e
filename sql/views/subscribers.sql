-- The latest evaluated subscriber snapshot: every standard and declared field
-- (tags as VARCHAR[]), plus any extra columns the snapshot carried.
CREATE VIEW subscribers AS
SELECT * FROM read_parquet('{{version_dir}}/subscribers.parquet', hive_partitioning = false);
