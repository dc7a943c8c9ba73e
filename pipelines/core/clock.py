"""The run clock: parsing and formatting `as_of` values.

Every relative window is computed from a run's `as_of`; this module is the
only place that reads the wall clock (`utc_now`), and only callers that start
a run (CLI, schedules, sensor) use it to pick a default `as_of`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ..errors import UserError
from ..segments.utc import naive_utc

# How far past the wall clock a run's as_of may be without --allow-future
# (data-contract.md, "Sending safely"): room for clocks a little apart.
FUTURE_TOLERANCE = timedelta(minutes=5)


def utc_now() -> datetime:
    """Now, as a naive UTC datetime truncated to the second."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def parse_as_of(text: str | datetime | date | None, *, what: str = "--as-of") -> datetime | None:
    """Parse an ISO 8601 timestamp or date; offsets convert to UTC, naive means UTC."""
    if text is None or text == "":
        return None
    if isinstance(text, date):  # a datetime too
        return naive_utc(text)
    raw = text.strip()
    candidate = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise UserError(
            f"{what}: cannot read '{raw}' as a timestamp; use ISO 8601 like 2026-11-27T02:00:00Z or 2026-11-27"
        ) from None
    return naive_utc(parsed)


def format_ts(value: datetime) -> str:
    """ISO 8601 with a Z, the way timestamps appear in messages, manifests and run
    configs: whole seconds, or microseconds when there are any (an `as_of` is
    never rounded: every window is computed from it)."""
    value = naive_utc(value)
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds") + "Z"


def refuse_future(as_of: datetime, now: datetime, *, allowed: bool) -> None:
    """UserError (exit 2) when `as_of` is more than FUTURE_TOLERANCE after `now`, unless
    `allowed`: history only moves forward, so a run in the future would make every
    run until then refused."""
    if allowed or naive_utc(as_of) <= naive_utc(now) + FUTURE_TOLERANCE:
        return
    raise UserError(
        f"as_of {format_ts(as_of)} is more than {FUTURE_TOLERANCE.seconds // 60} minutes after the current time "
        f"({format_ts(now)}); every run before it would then be refused. Pass --allow-future if that is meant",
        exit_code=2,
    )
