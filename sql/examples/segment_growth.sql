-- Growth of one segment: its size at every run, entries and exits, and the
-- change since the run before. Change the key to look at another segment.
SELECT
    as_of,
    run_id,
    members,
    entered,
    exited,
    members - lag(members) OVER (ORDER BY as_of) AS change_since_previous_run
FROM segment_sizes
WHERE segment = 'engaged_subscribers'
ORDER BY as_of;
