"""Switches for contract features the simulation checks.

Every switch defaults to ON (the contract). A switch is turned off only to run
the simulation on a branch where that feature is not built yet; the
environment variable SEGMENTS_SIM_OFF takes a comma-separated list of names,
e.g. SEGMENTS_SIM_OFF=holdout,suppression_list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Features:
    # Suppression by address (trimmed, case-insensitive), DATA/landing/suppressions/,
    # one recipient per address per audience (smallest subscriber_id kept).
    suppression_list: bool = True
    # Audience `holdout: {percent, salt}` and the recipients' `group` column.
    holdout: bool = True
    # One Arrow type per lake column: events files of every size (0 rows, 1 row, a few,
    # many) mixed; off, every events file has 40 rows or more (the lake then stores
    # the `event` column dictionary-encoded in every file).
    lake_types: bool = True
    # Kills after the warehouse swap: the next run re-syncs the audience files.
    crash_after_swap: bool = True
    # Windows inside an event `where` (incremental runs must honour them).
    where_windows: bool = True
    # `--as-of` more than 5 minutes ahead is refused (exit 2) without --allow-future.
    allow_future: bool = True

    @classmethod
    def from_env(cls) -> Features:
        off = {name.strip() for name in os.environ.get("SEGMENTS_SIM_OFF", "").split(",") if name.strip()}
        known = {f.name for f in fields(cls)}
        unknown = off - known
        if unknown:
            raise ValueError(f"SEGMENTS_SIM_OFF: unknown feature(s) {sorted(unknown)}; known: {sorted(known)}")
        return replace(cls(), **{name: False for name in off})

    def off(self) -> list[str]:
        return [f.name for f in fields(self) if not getattr(self, f.name)]
