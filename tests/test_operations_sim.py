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

import pytest
from sim.features import Features
from sim.scenario import Sim

# Each fast seed covers a different handful of the trouble the soak mixes in
# (slot -> what happens before and instead of that slot's run; slot 0 is the first run).
FAST = {
    1: {1: ["suppression_file", "reland", "move", "edit", "kill:publish:swapped"]},
    2: {1: ["rejected_name", "rejected_unreadable", "edit", "held"]},
}


def _fast_plan(seed: int, features: Features) -> dict[int, list[str]]:
    skip = set()
    if not features.suppression_list:
        skip.add("suppression_file")
    if not features.crash_after_swap:
        skip.add("kill:publish:swapped")
    return {slot: [n for n in names if n not in skip] for slot, names in FAST[seed].items()}


@pytest.mark.parametrize("seed", sorted(FAST))
def test_operations_fast(tmp_path, seed):
    features = Features.from_env()
    sim = Sim(seed=seed, root=tmp_path, runs=2, features=features, plan=_fast_plan(seed, features), size=30)
    sim.run()


# A simulated month: each day the nightly --full run and SEGMENTS_SOAK_HOURLY hourly runs.
SOAK_RUNS = int(os.environ.get("SEGMENTS_SOAK_RUNS", "0"))


@pytest.mark.skipif(not SOAK_RUNS, reason="the soak runs with `make soak` (SEGMENTS_SOAK_RUNS)")
@pytest.mark.parametrize("seed", range(1, int(os.environ.get("SEGMENTS_SOAK_SEEDS", "3")) + 1))
def test_operations_soak(tmp_path, seed):
    sim = Sim(seed=100 + seed, root=tmp_path, runs=SOAK_RUNS, features=Features.from_env(),
              engine=os.environ.get("SEGMENTS_SOAK_ENGINE") or None, size=200,
              hourly_per_day=int(os.environ.get("SEGMENTS_SOAK_HOURLY", "1")))
    sim.run()
    print(f"seed {100 + seed}: {sim.run_no} CLI runs, {sum(sim.timings):.0f} s in runs, "
          f"slowest {max(sim.timings):.1f} s")
