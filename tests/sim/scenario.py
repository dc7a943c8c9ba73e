"""The script: a seeded period of hourly and nightly runs with trouble mixed in.

Each slot of the schedule is one `as_of` (hourly runs at a few hours of the day,
the nightly `--full` run at 02:00). Before a slot's run, files land (a daily
snapshot with churn, events exports of every format and size, re-landed
duplicates, suppression exports) and definitions may be edited. Some slots also
carry one "special" step: a snapshot the drop rule holds (then `--force`), a
rejected file, a kill at a failpoint or at a random moment (then a re-run at
the same as_of), a moved data folder, a future `--as-of`, a same-as_of re-run
with an edit (it replaces the last run). After every CLI run the published state
is checked (sim/check.py); a failure names seed, run number, as_of and step.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from reference import reference_membership

from pipelines.segments.loader import load_project

from .check import Expected, SimFailure, check_published
from .cli import AFTER_SWAP, BEFORE_SWAP, Outcome, Runner
from .defs import Definitions
from .features import Features
from .world import EVENT_TYPES, FORMATS, World, encode, stamp

START = datetime(2026, 10, 1)
# A run special replaces the slot's run with its own runs; extras happen before it.
RUN_SPECIALS = ["held", "kill_random", "future", "replace"]
EXTRAS = ["edit", "rejected_name", "rejected_unreadable", "suppression_file", "reland", "move", "bad_rows"]


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Sim:
    seed: int
    root: Path
    runs: int  # slots to simulate
    features: Features = field(default_factory=Features)
    engine: str | None = None
    size: int = 40  # subscribers in the first snapshot
    hourly_per_day: int = 1
    plan: dict[int, list[str]] | None = None  # slot -> specials; default: all, spread by the seed

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.world = World(random.Random(self.seed * 7919 + 1), self.features)
        self.defs = Definitions(random.Random(self.seed * 7919 + 2), self.features.where_windows,
                                self.features.holdout)
        self.defs_dir = self.root / "segment_defs"
        self.data = self.root / "data"
        self.runner = Runner(self.defs_dir, self.data, self.root, self.engine)
        self.published: list[tuple[datetime, set[str], set[tuple[str, str]]]] = []
        self.current: Expected | None = None
        self.forced_held: set[str] = set()
        self.run_no = 0
        self.log: list[str] = []
        self.timings: list[float] = []
        self.pending_rejection = False
        self.unpublished_runs: list[tuple[datetime, str, str]] = []

    # ---- the schedule -------------------------------------------------------------------

    def schedule(self) -> list[tuple[datetime, list[str]]]:
        # Each day: the nightly --full run at 02:00, then `hourly_per_day` hourly runs.
        slots: list[datetime] = []
        day = START
        while len(slots) < self.runs:
            hours = sorted(self.rng.sample(range(3, 24), self.hourly_per_day))
            for hour in [2, *hours]:
                slots.append(day + timedelta(hours=hour, minutes=0 if hour == 2 else self.rng.choice([0, 7, 30])))
            day += timedelta(days=1)
        slots = slots[:self.runs]
        if self.plan is not None:
            return [(at, list(self.plan.get(n, []))) for n, at in enumerate(slots)]
        # Slot 0 is the first run; the trouble comes after it: at most one run special
        # per slot, extras anywhere; over a long period, every kind comes back.
        plan: list[list[str]] = [[] for _ in slots]
        rounds = max(1, self.runs // 45)
        run_specials = [s for s in RUN_SPECIALS if s != "future" or self.features.allow_future]
        run_specials += [f"kill:{p}" for p in BEFORE_SWAP + (AFTER_SWAP if self.features.crash_after_swap else [])]
        free = list(range(1, len(slots)))
        self.rng.shuffle(free)
        for special, index in zip(run_specials * rounds, free, strict=False):
            plan[index].append(special)
        extras = [s for s in EXTRAS if s != "suppression_file" or self.features.suppression_list]
        for extra in extras * rounds:
            if len(slots) > 1:
                plan[self.rng.randrange(1, len(slots))].insert(0, extra)
        return list(zip(slots, plan, strict=False))

    # ---- running ------------------------------------------------------------------------

    def run(self) -> None:
        self.defs.initial()
        self.defs.write(self.defs_dir)
        for slot, (as_of, names) in enumerate(self.schedule()):
            self.slot(slot, as_of, names)

    def slot(self, slot: int, as_of: datetime, names: list[str]) -> None:
        nightly = as_of.hour == 2
        self.land_inputs(slot, as_of)
        if slot > 0 and self.rng.random() < 0.35:
            self.note(f"edits: {', '.join(self.defs.edit()) or 'none'}")
            self.defs.write(self.defs_dir)
        special = None
        for name in names:
            if name in EXTRAS:
                getattr(self, "extra_" + name)(as_of)
            else:
                special = name
        if special:
            getattr(self, "special_" + special.split(":")[0])(as_of, special, nightly)
        else:
            self.publish(as_of, "nightly --full" if nightly else "hourly", full=nightly)

    def note(self, text: str) -> None:
        self.log.append(text)

    def land_inputs(self, slot: int, as_of: datetime) -> None:
        world = self.world
        day_start = as_of.replace(hour=0, minute=30, second=0)
        # Most days bring a snapshot; on the others the last one stays in force (and
        # incremental runs must still move every window with the clock).
        if slot == 0 or (not self._has_snapshot_on(day_start) and self.rng.random() < 0.75):
            world.churn(day_start, size=self.size)
            fmt = self.rng.choice(FORMATS)
            world.land(self.data, "subscribers", world.snapshot_rows(), min(day_start, as_of), fmt=fmt)
            self.note(f"snapshot {fmt} {len(world.subscribers)} rows at {min(day_start, as_of)}")
        mixed = self.features.lake_types
        for fmt in FORMATS if slot == 0 else [self.rng.choice(FORMATS)]:
            n = self.rng.choice([0, 1, 3, 12, 40, self.size * 3] if mixed else [40, 60, self.size * 3])
            at = as_of - timedelta(minutes=self.rng.randint(1, 50))
            rows = world.make_events(at, n)
            if slot > 0 and self.rng.random() < 0.3:
                earlier = [r for f in world.landed if f.kind == "events" for r in f.rows]
                rows += self.rng.sample(earlier, min(3, len(earlier)))  # at-least-once: re-sent events
            world.land(self.data, "events", rows, at, fmt=fmt)
            self.note(f"events {fmt} {len(rows)} rows at {at}")

    def _has_snapshot_on(self, day_start: datetime) -> bool:
        return any(f.kind == "subscribers" and f.at.date() == day_start.date() for f in self.world.landed)

    # ---- expectations -------------------------------------------------------------------

    def expect(self, as_of: datetime) -> Expected:
        project, problems = load_project(self.defs_dir)
        if problems:
            self.fail("reading the definitions the sim wrote", as_of,
                      ["the project's loader refuses them:", *(f"  {p}" for p in problems[:5])])
        snapshot = self.world.snapshot_in_force(as_of, self.forced_held)
        subscribers = snapshot.rows if snapshot else []
        membership = reference_membership(project, subscribers, self.world.events_until(as_of), as_of)
        runs = [r for r in self.published if r[0] != as_of] + [(as_of, set(project.segments), membership)]
        return Expected(runs=runs, subscribers=subscribers, audiences=copy.deepcopy(self.defs.audiences),
                        suppression_list=self.world.suppressed_list(), by_address=self.features.suppression_list,
                        holdout=self.features.holdout,
                        landed_sha256={f.name: f.sha256 for f in self.world.landed},
                        quarantine={(f.name, row) for f in self.world.landed if f.accepted for row in f.quarantined})

    def cli(self, step: str, as_of: datetime, **options) -> Outcome:
        self.run_no += 1
        started = time.monotonic()
        kill = options.pop("kill", None)
        if kill is None:
            outcome = self.runner.run(iso(as_of), **options)
        elif kill.startswith("random"):
            outcome = self.runner.kill_after(iso(as_of), float(kill.split("@")[1]), **options)
        else:
            outcome = self.runner.kill_at(iso(as_of), kill, **options)
        self.timings.append(time.monotonic() - started)
        self.note(f"run {self.run_no} {step} as_of {iso(as_of)}: {outcome.describe()}"
                  + (f" killed at {outcome.killed_at}" if outcome.returncode is None else ""))
        return outcome

    def fail(self, step: str, as_of: datetime, problems: list[str], outcome: Outcome | None = None) -> None:
        header = (f"operations sim failed: seed={self.seed} run={self.run_no} as_of={iso(as_of)} step={step!r} "
                  f"engine={self.engine or 'duckdb'} features off={self.features.off()}")
        lines = [header, *problems]
        if outcome is not None:
            lines.append(f"  the run: {outcome.describe()}")
        lines.append("  recent steps:\n    " + "\n    ".join(self.log[-8:]))
        raise SimFailure("\n".join(lines))

    def verify(self, step: str, as_of: datetime, expected: Expected, outcome: Outcome, *,
               audience_files: bool = True) -> None:
        problems = check_published(self.data, expected, audience_files=audience_files)
        if problems:
            self.fail(step, as_of, problems, outcome)

    def publish(self, as_of: datetime, step: str, *, audience_files: bool = True, **options) -> None:
        """A run that must publish; then everything is checked."""
        self.settle_rejections(as_of, step, options.get("full", False))
        expected = self.expect(as_of)
        outcome = self.cli(step, as_of, **options)
        if outcome.returncode != 0:
            self.fail(step, as_of, ["the run did not publish (expected exit 0)"], outcome)
        self.published, self.current = expected.runs, expected
        self.verify(step, as_of, expected, outcome, audience_files=audience_files)
        with duckdb.connect(str(self.data / "warehouse.duckdb"), read_only=True) as con:
            for at, status, refused_step in self.unpublished_runs:
                if not con.execute("SELECT count(*) FROM runs WHERE status = ? AND as_of = ?",
                                   [status, at]).fetchall()[0][0]:
                    self.fail(step, as_of, [f"runs: the refused run at {iso(at)} ({refused_step}) is not "
                                            f"recorded with status {status!r}"], outcome)
        self.unpublished_runs = []

    def refused(self, as_of: datetime, step: str, code: int, status: str | None = None, **options) -> Outcome:
        """A run that must stop with `code` and leave the published state as it was;
        `status`: how the `runs` relation records it."""
        outcome = self.cli(step, as_of, **options)
        if outcome.returncode != code:
            self.fail(step, as_of, [f"expected exit {code}"], outcome)
        if self.current is not None:
            self.verify(step, as_of, self._still(self.current), outcome)
            if status is not None:  # in `runs` from the next publish on (a version snapshot)
                self.unpublished_runs.append((as_of, status, step))
        return outcome

    def settle_rejections(self, as_of: datetime, step: str, full: bool) -> None:
        """A file to be rejected has landed: the next run stops (exit 1, nothing published)."""
        if self.pending_rejection:
            self.pending_rejection = False
            self.refused(as_of, f"{step}: a rejected file landed", 1, "rejected", full=full)

    def _still(self, expected: Expected) -> Expected:
        """The published state as it was; and a rejected file is kept (with its reason)."""
        rejected = {f.name: f.sha256 for f in self.world.landed if not f.accepted}
        return Expected(**{**expected.__dict__, "landed_sha256": {**expected.landed_sha256, **rejected}})

    # ---- extras (before the slot's run) ---------------------------------------------------

    def extra_edit(self, as_of: datetime) -> None:
        self.note(f"edits: {', '.join(self.defs.edit()) or 'none'}")
        self.defs.write(self.defs_dir)

    def extra_rejected_name(self, as_of: datetime) -> None:
        body = b"event_id,subscriber_id,event,occurred_at\nz1,s00001,purchase,2026-10-01T00:00:00Z\n"
        self.world.land(self.data, "events", [], as_of, name=f"events_latest_{self.run_no}.csv", body=body,
                        accepted=False)
        self.note("landed events_latest.csv (bad name)")
        self.pending_rejection = True

    def extra_rejected_unreadable(self, as_of: datetime) -> None:
        name = f"subs_bad_{self.run_no}_{stamp(as_of - timedelta(minutes=5))}.csv.gz"
        self.world.land(self.data, "subscribers", [], as_of, name=name, accepted=False,
                        body=b"\x1f\x8b\x08\x00 this is not gzip " + bytes(range(256)))
        self.note(f"landed {name} (corrupt gzip)")
        self.pending_rejection = True

    def extra_bad_rows(self, as_of: datetime) -> None:
        """An events export whose last lines hold numbers no float (or Python) reads:
        those lines are quarantined, the others land."""
        at = as_of - timedelta(minutes=4)
        rows = self.world.make_events(at, 3)
        good = encode(rows, EVENT_TYPES, "jsonl", self.rng)
        bad = [{"event_id": f"zq{self.run_no}_{i}", "subscriber_id": rows[0]["subscriber_id"], "event": "purchase",
                "occurred_at": iso(at)} for i in (1, 2)]
        lines = [json.dumps(bad[0])[:-1] + ', "amount": 1' + "0" * 400 + "}",
                 json.dumps(bad[1])[:-1] + ', "amount": 1' + "0" * 5000 + "}"]
        landed = self.world.land(self.data, "events", rows, at, name=f"events_{self.run_no}_bad_{stamp(at)}.jsonl",
                                 body=good + "\n".join(lines).encode() + b"\n",
                                 quarantined=(len(rows) + 1, len(rows) + 2))
        self.note(f"landed {landed.name} (2 rows with overlong numbers)")

    def extra_move(self, as_of: datetime) -> None:
        target = self.root / f"moved_{self.run_no}" / "data"
        target.parent.mkdir(parents=True)
        shutil.copytree(self.data, target, symlinks=True)
        shutil.rmtree(self.data)  # the old place is gone: nothing may still point at it
        self.data = self.runner.data = target
        self.note(f"data folder moved to {target}")

    def extra_suppression_file(self, as_of: datetime) -> None:
        world = self.world
        addresses = sorted(r["email"] for r in world.subscribers.values() if r["status"] == "active")
        picked = self.rng.sample(addresses, min(len(addresses), self.rng.choice([1, 3])))
        rows = [{"email": (" " + e.upper() + " ") if i % 2 else e, "reason": "legal request",
                 "suppressed_at": as_of - timedelta(hours=1)} for i, e in enumerate(picked)]
        landed = world.land(self.data, "suppressions", rows, as_of - timedelta(minutes=2))
        self.note(f"suppressions {landed.name}: {picked}")

    def extra_reland(self, as_of: datetime) -> None:
        earlier = [f for f in self.world.landed if f.kind == "events" and f.accepted and not f.quarantined]
        source = self.rng.choice(earlier)
        at = as_of - timedelta(minutes=3)
        body = (self.data / "landing" / "events" / source.name).read_bytes()
        ext = source.name.split(".", 1)[1]
        landed = self.world.land(self.data, "events", source.rows, at, body=body,
                                 name=f"events_again_{self.run_no}_{stamp(at)}.{ext}")
        self.note(f"re-landed {source.name} as {landed.name}")

    # ---- run specials (they replace the slot's run) ------------------------------------------

    def special_held(self, as_of: datetime, special: str, nightly: bool) -> None:
        world = self.world
        keep = sorted(world.subscribers)[: max(1, len(world.subscribers) * 2 // 5)]
        world.subscribers = {sid: world.subscribers[sid] for sid in keep}
        at = as_of - timedelta(minutes=1)
        held = world.land(self.data, "subscribers", world.snapshot_rows(), at, held=True)
        self.note(f"snapshot dropping to {len(keep)} rows (held) at {at}")
        # A rejected file landed with it makes the same run "rejected" first.
        status = "rejected" if self.pending_rejection else "held"
        self.pending_rejection = False
        self.refused(as_of, "held snapshot (drop > 50%)", 1, status, full=nightly)
        self.forced_held.add(held.name)
        self.publish(as_of, "held snapshot, --force", full=nightly, force=True)

    def special_kill(self, as_of: datetime, special: str, nightly: bool) -> None:
        point = special.split(":", 1)[1]
        self._kill_then_rerun(as_of, f"kill -9 at {point}", point, nightly)

    def special_kill_random(self, as_of: datetime, special: str, nightly: bool) -> None:
        seconds = self.rng.uniform(2.0, 12.0)
        self._kill_then_rerun(as_of, f"kill -9 after {seconds:.1f}s", f"random@{seconds}", nightly)

    def _kill_then_rerun(self, as_of: datetime, step: str, kill: str, nightly: bool) -> None:
        self.settle_rejections(as_of, step, nightly)
        expected = self.expect(as_of)
        outcome = self.cli(step, as_of, full=nightly, kill=kill)
        if outcome.returncode is not None:  # ended before the kill
            if outcome.returncode != 0:
                self.fail(step, as_of, ["the run ended before the kill, without publishing"], outcome)
            self.published, self.current = expected.runs, expected
            self.verify(step, as_of, expected, outcome)
            return
        # Killed: the warehouse shows the old run or the new one, never a mix (files
        # landed since the last publish may not be archived yet).
        before = self.current
        as_new = check_published(self.data, expected, audience_files=False)
        as_old = check_published(self.data, before, audience_files=False) if before else ["nothing published"]
        if as_new and as_old:
            self.fail(step, as_of, ["after the kill the warehouse is neither the previous run nor the new one",
                                    "  as the new run:", *as_new, "  as the previous run:", *as_old], outcome)
        # The next run at the same as_of completes and repairs the audience files.
        after_swap = not as_new
        repair = self.features.crash_after_swap or not after_swap
        self.publish(as_of, step + ", then a re-run", full=nightly, audience_files=repair)

    def special_future(self, as_of: datetime, special: str, nightly: bool) -> None:
        self.settle_rejections(as_of, "a future --as-of", nightly)
        future = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(days=1)
        self.refused(future, "a future --as-of (refused)", 2)
        self.publish(as_of, "after a refused future --as-of", full=nightly)

    def special_replace(self, as_of: datetime, special: str, nightly: bool) -> None:
        self.publish(as_of, "hourly", full=nightly)
        # The same run again: nothing new to publish (ended before Dagster starts, issue 20).
        again = self.cli("the same run again", as_of, full=nightly)
        if again.returncode != 0 or not again.stdout.startswith("Nothing changed"):
            self.fail("the same run again", as_of, ["expected exit 0 and 'Nothing changed'"], again)
        self.verify("the same run again", as_of, self.current, again)
        self.note(f"edits: {', '.join(self.defs.edit()) or 'none'}")
        self.defs.write(self.defs_dir)
        at = as_of - timedelta(minutes=1)
        self.world.land(self.data, "events", self.world.make_events(at, 40), at)
        self.publish(as_of, "same as_of, new inputs (replaces the last run)")
