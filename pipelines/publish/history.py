"""Membership history: stays, changes and sizes, extended by one run.

A *stay* is one uninterrupted membership of a subscriber in a segment:
`valid_from` is the `as_of` of the run that first saw it, `valid_to` the
`as_of` of the first run that no longer did (NULL while it lasts). So a
subscriber was a member at `ts` when `valid_from <= ts < valid_to`.

Rules:
- the first run opens a stay for everyone present (they all "enter" then);
- leaving closes the open stay, coming back opens a new one;
- a segment that is no longer defined has all its open stays closed at the
  first run without it (its members "exit"), and that run still gets one
  `segment_sizes` row for it (members 0), so sizes and changes add up;
- runs move forward: `as_of` must be later than the published run's, except
  that the same `as_of` *replaces* the published run: its history is rebuilt
  on the version the replaced run built on, so no row of the replaced run
  survives.
"""

from __future__ import annotations

from datetime import datetime

from ..core.clock import format_ts
from ..errors import UserError
from .state import PublishedState, read_state_file


def history_base(previous: PublishedState | None, as_of: datetime) -> tuple[PublishedState | None, str | None]:
    """The state a run at `as_of` builds on, and the run it replaces (if any).

    `previous` is the currently published state.
    """
    if previous is None:
        return None, None
    if as_of > previous.as_of:
        return previous, None
    if as_of == previous.as_of:
        base_dir = previous.version_dir.parent / previous.base_version if previous.base_version else None
        return (read_state_file(base_dir) if base_dir else None), previous.run_id
    raise UserError(
        f"as_of {format_ts(as_of)} is before the last published run {previous.run_id} "
        f"(as_of {format_ts(previous.as_of)}); history only moves forward — run with a later as_of"
    )
