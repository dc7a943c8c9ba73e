"""Write benchmark landing files.

    python bench/generate.py --size 1M --out bench/data/1M [--format parquet]

`--out` is a data root: the files land in OUT/landing/subscribers/ and
OUT/landing/events/, ready for `segments run --data OUT --as-of AS_OF`.
Sizes: 10000, 250k, 1M, 10M, 100M (k = thousand, M = million). The data is
the same for the same size, seed and as-of, whatever the machine; it is
written in blocks, so memory stays bounded at any size.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

try:
    import pipelines  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.core.settings import Paths
from pipelines.sample_data import FORMATS, write_landing

# Fixed, so benchmark inputs are comparable from one day to the next.
DEFAULT_AS_OF = "2026-11-01T00:00:00Z"
_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_size(text: str) -> int:
    """'1M' -> 1_000_000, '250k' -> 250_000, '10_000' -> 10_000, '1.5M' -> 1_500_000."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text.replace("_", ""))
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 10000, 250k, 1M, 100M)")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value != int(value):
        raise argparse.ArgumentTypeError(f"not a whole number of subscribers: {text!r}")
    return int(value)


def parse_as_of(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, required=True, help="subscribers: 10000, 1M, 10M, 100M ...")
    parser.add_argument("--out", type=Path, required=True, help="data root to write OUT/landing/... into")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--as-of", type=parse_as_of, default=parse_as_of(DEFAULT_AS_OF),
                        help=f"snapshot time, UTC (default {DEFAULT_AS_OF})")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events-per-subscriber", type=float, default=2.0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    written = write_landing(
        Paths(defs=Path("segment_defs"), data=args.out), as_of=args.as_of, n_subscribers=args.size,
        seed=args.seed, fmt=args.format, per_subscriber=args.events_per_subscriber,
    )
    elapsed = time.perf_counter() - started
    for path in written:
        print(f"{path}  {path.stat().st_size / 1e6:,.1f} MB")
    as_of = args.as_of.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{args.size:,} subscribers, ~{args.size * args.events_per_subscriber:,.0f} events, "
          f"as_of {as_of}, seed {args.seed}: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
