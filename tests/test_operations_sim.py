"""A simulation of operation (issue 18): seeded periods of hourly and nightly
`segments run`s through the production CLI, checked after every run against
tests/reference.py (see tests/sim/).

The fast seeds run in `make test`; `make soak` runs a simulated month:

    SEGMENTS_SOAK_RUNS=60 SEGMENTS_SOAK_SEEDS=3 SEGMENTS_SOAK_ENGINE=duckdb pytest tests/test_operations_sim.py -k soak

SEGMENTS_SIM_OFF=holdout,... turns off checks of contract features a branch has
not built yet (sim/features.py).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pytest
from reference import reference_history, reference_members_at, reference_recipients
from sim.features import Features
from sim.scenario import Sim

# Each fast seed covers a different handful of the trouble the soak mixes in
# (slot -> what happens before and instead of that slot's run; slot 0 is the first run).
FAST = {
    1: {1: ["suppression_file", "reland", "move", "edit", "kill:publish:swapped"]},
    2: {1: ["rejected_name", "rejected_unreadable", "bad_rows", "edit", "held"]},
}


def _fast_plan(seed: int, features: Features) -> dict[int, list[str]]:
    swap = {} if features.crash_after_swap else {"kill:publish:swapped": "kill:publish:catalog_built"}
    return {slot: [swap.get(n, n) for n in names if n != "suppression_file" or features.suppression_list]
            for slot, names in FAST[seed].items()}


# A seed whose plan SIGKILLs a run is `slow` (left out by `-m "not slow"`).
@pytest.mark.parametrize("seed", [
    pytest.param(seed, marks=pytest.mark.slow) if any(n.startswith("kill") for names in FAST[seed].values() for n in names)
    else seed for seed in sorted(FAST)])
def test_operations_fast(tmp_path, seed):
    features = Features.from_env()
    sim = Sim(seed=seed, root=tmp_path, runs=2, features=features, plan=_fast_plan(seed, features), size=30)
    sim.run()


# A simulated month: each day the nightly --full run and SEGMENTS_SOAK_HOURLY hourly runs.
SOAK_RUNS = int(os.environ.get("SEGMENTS_SOAK_RUNS", "0"))


@pytest.mark.slow  # a month of runs, with SIGKILLs
@pytest.mark.skipif(not SOAK_RUNS, reason="the soak runs with `make soak` (SEGMENTS_SOAK_RUNS)")
@pytest.mark.parametrize("seed", range(1, int(os.environ.get("SEGMENTS_SOAK_SEEDS", "3")) + 1))
def test_operations_soak(tmp_path, seed):
    sim = Sim(seed=100 + seed, root=tmp_path, runs=SOAK_RUNS, features=Features.from_env(),
              engine=os.environ.get("SEGMENTS_SOAK_ENGINE") or None, size=200,
              hourly_per_day=int(os.environ.get("SEGMENTS_SOAK_HOURLY", "1")))
    sim.run()
    print(f"seed {100 + seed}: {sim.run_no} CLI runs, {sum(sim.timings):.0f} s in runs, "
          f"slowest {max(sim.timings):.1f} s")


def test_reference_recipients_by_hand():
    """The recipients oracle on a case worked out by hand (segment-language.md, Audiences)."""
    subscribers = [
        {"subscriber_id": "s1", "email": "Ann@Example.com", "status": "active"},
        {"subscriber_id": "s2", "email": " ann@example.COM ", "status": "unsubscribed"},  # suppresses s1
        {"subscriber_id": "s3", "email": "cy@example.com", "status": "active"},
        {"subscriber_id": "s4", "email": "CY@example.com", "status": "active"},  # same address as s3
        {"subscriber_id": "s5", "email": "eve@example.com", "status": "active"},  # on the list
        {"subscriber_id": "s6", "email": "fay@example.com", "status": "active"},  # excluded
    ]
    membership = {("a", f"s{n}") for n in range(1, 7)} | {("x", "s6")}
    audiences = {"send_all": {"include": ["a"], "exclude": ["x"]},
                 "half": {"include": ["a"], "holdout": {"percent": 41, "salt": "bf2026"}}}
    got = reference_recipients(audiences, membership, subscribers, [" EVE@example.com"])
    # bf2026 buckets (sha256 of "bf2026:<id>", first 8 bytes, mod 10000): s3 4085, s6 6443.
    assert got == {("send_all", "s3", "cy@example.com", "send"),
                   ("half", "s3", "cy@example.com", "holdout"), ("half", "s6", "fay@example.com", "send")}


def test_reference_history_by_hand():
    day = [datetime(2026, 10, d) for d in (1, 2, 3)]
    runs = [(day[0], {"a", "b"}, {("a", "1"), ("b", "1")}),
            (day[1], {"a"}, {("a", "2")}),  # b deleted: its stay closes, one size row
            (day[2], {"a", "b"}, {("a", "2"), ("b", "1")})]  # b back: a new stay
    got = reference_history(runs)
    assert got["history"] == {("a", "1", day[0], day[1]), ("a", "2", day[1], None),
                              ("b", "1", day[0], day[1]), ("b", "1", day[2], None)}
    assert got["sizes"] == {(day[0], "a", 1, 1, 0), (day[0], "b", 1, 1, 0), (day[1], "a", 1, 1, 1),
                            (day[1], "b", 0, 0, 1), (day[2], "a", 1, 0, 0), (day[2], "b", 1, 1, 0)}
    assert reference_members_at(runs, "a", day[1]) == {"2"}
    assert reference_members_at(runs, "b", day[1] - timedelta(seconds=1)) == {"1"}
    assert reference_members_at(runs, "b", day[1]) == set()
