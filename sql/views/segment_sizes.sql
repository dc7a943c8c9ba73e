-- Size of every segment at every run, with the entries and exits of that run.
-- A deleted segment has a last row (members 0) at the run that closed it.
CREATE VIEW segment_sizes AS
SELECT run_id, as_of, segment, members, entered, exited
FROM read_parquet('{{version_dir}}/segment_sizes.parquet', hive_partitioning = false);
