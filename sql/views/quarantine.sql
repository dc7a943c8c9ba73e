-- Every quarantined landing row: file, row number, reason and the raw row.
CREATE VIEW quarantine AS
SELECT file, row_number, reason, raw
FROM read_parquet('{{version_dir}}/quarantine.parquet', hive_partitioning = false);
