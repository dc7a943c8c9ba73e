-- One row per currently defined segment: its definition hash, current size,
-- this run's entered/exited counts, the segments it reads and its compiled SQL.
CREATE VIEW segments AS
SELECT segment, name, description, definition_sha256, members, entered, exited, depends_on, sql
FROM read_parquet('{{version_dir}}/segments.parquet', hive_partitioning = false);
