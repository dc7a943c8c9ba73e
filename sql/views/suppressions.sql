-- Every suppressed address in force (trimmed, lower case), once: from the
-- suppression list (source: the file's name; every file ever landed) or from
-- the snapshot (source 'snapshot': a non-active status, or a quarantined row
-- that still suppresses).
CREATE VIEW suppressions AS
SELECT email, reason, source, suppressed_at
FROM read_parquet('{{version_dir}}/suppressions.parquet', hive_partitioning = false);
