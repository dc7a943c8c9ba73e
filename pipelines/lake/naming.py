"""Landing file names: `<anything>_YYYYMMDDTHHMMSSZ.<ext>` (data-contract.md).

The time is a snapshot's time, or the ordering key of event exports; for a name
that breaks the rule, `parse_landing_name` says what is wrong in one sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

FORMATS = ("csv", "csv.gz", "jsonl", "parquet")

# Any prefix (even empty) ending with "_"; the extension exactly as the contract spells it.
_NAME = re.compile(r"^(?P<prefix>.*)_(?P<ts>\d{8}T\d{6}Z)\.(?P<ext>csv|csv\.gz|jsonl|parquet)\Z", re.DOTALL)
_TS_ANYWHERE = re.compile(r"\d{8}T\d{6}Z")


class BadLandingName(ValueError):
    """The file name does not carry a valid time and format."""


@dataclass(frozen=True)
class LandingName:
    name: str
    at: datetime  # naive, UTC
    fmt: str  # one of FORMATS

    @property
    def stamp(self) -> str:
        """The time as written in the name, e.g. `20240105T060000Z`."""
        return self.at.strftime("%Y%m%dT%H%M%SZ")


def parse_landing_name(name: str) -> LandingName:
    match = _NAME.match(name)
    if match is None:
        if not name.endswith(tuple(f".{fmt}" for fmt in FORMATS)):
            raise BadLandingName(
                "the file name must end with _YYYYMMDDTHHMMSSZ.csv, .csv.gz, .jsonl or .parquet"
            )
        if _TS_ANYWHERE.search(name):
            raise BadLandingName("the time in the file name must come right before the extension, after '_'")
        raise BadLandingName("the file name carries no time as _YYYYMMDDTHHMMSSZ before its extension")
    stamp = match.group("ts")
    try:
        at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise BadLandingName(f"the time '{stamp}' in the file name is not a valid date and time") from None
    return LandingName(name=name, at=at, fmt=match.group("ext"))
