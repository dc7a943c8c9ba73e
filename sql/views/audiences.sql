-- One row per current audience: its definition and recipient count.
CREATE VIEW audiences AS
SELECT audience, name, include, exclude, fields, definition_sha256, recipients
FROM read_parquet('{{version_dir}}/audiences.parquet', hive_partitioning = false);
