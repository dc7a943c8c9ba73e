"""Property: for any snapshot, suppression list, quarantined rows and audience
definitions, no recipient's address is suppressed, an address is a recipient at
most once per audience (the smallest subscriber_id), and the holdout depends only
on subscriber_id and salt. The oracle below is written from the spec, not the code."""

from __future__ import annotations

import hashlib

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core import schemas
from pipelines.publish.audiences import Suppressions, compute_recipients
from pipelines.segments.fields import STATUSES
from pipelines.segments.model import Holdout

try:  # tests/ on sys.path (no tests/__init__.py)
    from test_publish_support import make_project, membership_table, violations
except ModuleNotFoundError:  # tests/ is a package
    from tests.test_publish_support import make_project, membership_table, violations

IDS = [f"p{i}" for i in range(10)]
ADDRESSES = ["a@x.io", "A@X.io", " a@x.io", "b@x.io", "B@x.IO", "c@x.io", "d@x.io"]
SEGMENTS = ["s1", "s2"]

snapshot_st = st.dictionaries(st.sampled_from(IDS), st.tuples(st.sampled_from(ADDRESSES), st.sampled_from(STATUSES)),
                              min_size=1)
listed_st = st.lists(st.sampled_from(ADDRESSES), max_size=3)
held_st = st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(IDS)), st.one_of(st.none(), st.sampled_from(ADDRESSES)))
                   .filter(lambda t: t != (None, None)), max_size=3)
members_st = st.fixed_dictionaries({k: st.lists(st.sampled_from(IDS), unique=True) for k in SEGMENTS})
holdout_st = st.one_of(st.none(), st.builds(Holdout, percent=st.sampled_from([0, 10, 50, 33.3]),
                                            salt=st.sampled_from(["x", "bf2026", "ü"])))
audience_st = st.fixed_dictionaries({
    "include": st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=2, unique=True).map(tuple),
    "exclude": st.lists(st.sampled_from(SEGMENTS), max_size=1, unique=True).map(tuple),
    "holdout": holdout_st,
})


def norm(address: str | None) -> str | None:
    return address.strip().lower() if address is not None else None


def is_held_out(salt: str, subscriber_id: str, percent: float) -> bool:
    digest = hashlib.sha256((salt + ":" + subscriber_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10000 < percent * 100


def oracle(audience: dict, members: dict, snapshot: dict, listed: list, held: list) -> dict[str, str]:
    held_ids = {i for i, _ in held if i is not None}
    suppressed = {norm(a) for a in listed} | {norm(a) for _, a in held if a is not None}
    suppressed |= {norm(a) for i, (a, s) in snapshot.items() if s != "active" or i in held_ids}
    picked = {i for k in audience["include"] for i in members[k]} - {i for k in audience["exclude"] for i in members[k]}
    sendable = sorted(i for i in picked if i in snapshot and snapshot[i][1] == "active" and i not in held_ids
                      and norm(snapshot[i][0]) not in suppressed)
    kept: dict[str, str] = {}
    for i in sendable:
        kept.setdefault(norm(snapshot[i][0]), i)
    holdout = audience["holdout"]
    return {i: "holdout" if holdout and is_held_out(holdout.salt, i, holdout.percent) else "send"
            for i in kept.values()}


@settings(max_examples=80, deadline=None)
@given(snapshot=snapshot_st, listed=listed_st, held=held_st, members=members_st,
       audiences=st.dictionaries(st.sampled_from(["a1", "a2"]), audience_st, min_size=1))
def test_no_suppressed_address_one_row_per_address_and_a_stable_holdout(snapshot, listed, held, members, audiences):
    project = make_project(SEGMENTS, audiences)
    ids = sorted(snapshot)
    subscribers = pa.table({"subscriber_id": ids, "email": [snapshot[i][0] for i in ids],
                            "status": [snapshot[i][1] for i in ids]})
    suppressions = Suppressions(
        listed=pa.table({"email": listed, "reason": [None] * len(listed), "source": ["f.csv"] * len(listed),
                         "suppressed_at": pa.nulls(len(listed), schemas.TS)}, schema=schemas.SUPPRESSION_LIST),
        held=pa.table({"subscriber_id": [i for i, _ in held], "email": [a for _, a in held],
                       "status": ["unsubscribed"] * len(held), "reason": ["q"] * len(held)}, schema=schemas.HELD_ROWS),
    )
    recipients = compute_recipients(project, membership_table(members), subscribers, "r", suppressions)
    assert violations(recipients, subscribers, suppressions) == 0
    rows = recipients.to_pylist()
    for key, audience in audiences.items():
        got = {r["subscriber_id"]: r["group"] for r in rows if r["audience"] == key}
        assert got == oracle(audience, members, snapshot, listed, held)
        addresses = [norm(r["email"]) for r in rows if r["audience"] == key]
        assert len(addresses) == len(set(addresses))
    # Same id and salt, same group: in every audience that shares a salt and percent.
    by_person: dict[tuple, set[str]] = {}
    for r in rows:
        holdout = audiences[r["audience"]]["holdout"]
        if holdout is not None:
            by_person.setdefault((r["subscriber_id"], holdout.salt, holdout.percent), set()).add(r["group"])
    assert all(len(groups) == 1 for groups in by_person.values())
