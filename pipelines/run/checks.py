"""The run's checks, as plain functions of its data. A failed blocking check stops
the run before anything is published; a failed non-blocking one is a warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..core.flags import flags_to_membership, is_sorted_unique
from ..publish.audiences import Suppressions, suppression_violations
from .params import RunContext


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    blocking: bool  # a failure stops the run: nothing is published
    description: str | None = None
    metadata: dict[str, float | int | str] = field(default_factory=dict)


def quarantine_rate(ctx: RunContext, threshold: float) -> CheckOutcome:
    """The largest share of quarantined rows among the landing files this run ingested."""
    # Per file: a small export with most rows bad must not hide behind a large good snapshot.
    rates = {name: quarantined / (loaded + quarantined)
             for name, (loaded, quarantined) in ctx.row_counts.items() if loaded + quarantined}
    worst = max(rates, key=rates.__getitem__) if rates else None
    rate = rates[worst] if worst else 0.0
    passed = rate <= threshold
    return CheckOutcome(
        passed=passed, blocking=False,
        description=None if passed else (f"{rate:.0%} of the rows of {worst} were quarantined "
                                         f"(threshold {threshold:.0%}); see the quarantine relation"),
        metadata={"quarantined_rows": ctx.quarantined_rows, "rate": rate, "worst_file": worst or "",
                  "threshold": threshold},
    )


def unique_members(flags: pa.Table) -> CheckOutcome:
    """Each (segment, subscriber_id) pair appears once."""
    # Flags hold one row per subscriber: pairs can only repeat if subscriber ids do.
    duplicates = 0
    if not is_sorted_unique(flags.column("subscriber_id")):
        pairs = flags_to_membership(flags).group_by(["segment", "subscriber_id"])
        repeats = pairs.aggregate([([], "count_all")]).column("count_all")
        duplicates = int(pc.sum(pc.greater(repeats, 1)).as_py() or 0)
    return CheckOutcome(passed=duplicates == 0, blocking=True, metadata={"duplicate_pairs": duplicates})


def no_sudden_shrink(published: dict[str, tuple[int, str]], counts: dict[str, int], threshold: float,
                     block: bool) -> CheckOutcome:
    """No segment lost more than `threshold` of its members since the published run
    (`published`: segment -> (members, definition sha256))."""
    shrunk = {key: (old, counts[key]) for key, (old, _) in published.items()
              if old > 0 and key in counts and counts[key] < old * (1 - threshold)}
    listing = ", ".join(f"{k}: {a:,} -> {b:,}" for k, (a, b) in sorted(shrunk.items()))
    return CheckOutcome(
        passed=not shrunk, blocking=block,
        description=f"segments that shrank: {listing}" if shrunk else None,
        metadata={"shrunk_segments": len(shrunk), "threshold": threshold},
    )


def suppression(recipients_file: Path, subscribers: pa.Table, suppressions: Suppressions) -> CheckOutcome:
    """No suppressed subscriber or address is a recipient, and no address twice in an audience."""
    violations = suppression_violations(recipients_file, subscribers, suppressions)
    return CheckOutcome(passed=violations == 0, blocking=True, metadata={"suppressed_recipients": violations})
