-- One row per current audience: its definition, recipient count (both groups)
-- and holdout (NULL when it has none).
CREATE VIEW audiences AS
SELECT audience, name, include, exclude, fields, definition_sha256, recipients, holdout_percent, holdout_salt
FROM read_parquet('{{version_dir}}/audiences.parquet', hive_partitioning = false);
