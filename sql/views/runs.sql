-- Every run: published ('success'), replaced by a later run with the same
-- as_of ('replaced'), or recorded by the orchestrator ('failed', 'held', ...).
CREATE VIEW runs AS
SELECT run_id, as_of, snapshot, snapshot_rows, started_at, finished_at, status, message, fingerprint, version
FROM read_parquet('{{version_dir}}/runs.parquet', hive_partitioning = false);
