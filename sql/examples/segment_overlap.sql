-- The most overlapping pairs of segments right now: shared members and what
-- share of each segment that is. (segment_overlap lists both (a, b) and
-- (b, a); keep one of each pair.)
SELECT
    segment_a,
    segment_b,
    shared_members,
    members_a,
    members_b,
    round(shared_members / members_a, 3) AS share_of_a,
    round(shared_members / members_b, 3) AS share_of_b
FROM segment_overlap
WHERE segment_a < segment_b
ORDER BY shared_members DESC, segment_a, segment_b
LIMIT 20;
