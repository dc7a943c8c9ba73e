-- Shared current members of every ordered pair of distinct segments that
-- share at least one member (both (a, b) and (b, a), so filtering on
-- segment_a lists all overlaps of one segment). share_of_a = shared / members of a.
CREATE VIEW segment_overlap AS
WITH sizes AS (
    SELECT segment, count(*) AS members FROM segment_membership GROUP BY segment
),
pairs AS (
    SELECT a.segment AS segment_a, b.segment AS segment_b, count(*) AS shared_members
    FROM segment_membership a
    JOIN segment_membership b ON a.subscriber_id = b.subscriber_id AND a.segment <> b.segment
    GROUP BY a.segment, b.segment
)
SELECT p.segment_a, p.segment_b, p.shared_members,
       sa.members AS members_a, sb.members AS members_b,
       round(p.shared_members / sa.members, 4) AS share_of_a
FROM pairs p
JOIN sizes sa ON sa.segment = p.segment_a
JOIN sizes sb ON sb.segment = p.segment_b;
