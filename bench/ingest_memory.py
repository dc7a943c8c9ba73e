"""Time and peak memory of ingesting one big CSV subscriber snapshot.

    .venv/bin/python bench/ingest_memory.py 1000000            # rows (default 1M)
    .venv/bin/python bench/ingest_memory.py 10000000 --keep /tmp/bench10m

Generates a realistic snapshot (all standard and demo custom columns,
timestamps with offsets, `|` tags, leading-zero postal codes, ~0.1% bad rows
and ~0.1% duplicate ids), then ingests it in a child process so that the
child's peak RSS (getrusage RUSAGE_CHILDREN) measures ingest alone. The
contract is <= 4 GiB peak RSS for 10M rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHUNK = 500_000
LIMIT_BYTES = 4 << 30
CUSTOM = {"loyalty_points": "integer", "vip": "boolean", "birthday": "date"}


def _pick(rng: np.random.Generator, options: list[str], n: int) -> pa.Array:
    return pa.array(np.array(options, dtype=object)[rng.integers(0, len(options), n)], pa.string())


def _chunk(start: int, n: int, total: int, rng: np.random.Generator) -> pa.Table:
    ids = np.arange(start, start + n)
    dup = rng.random(n) < 0.001  # re-use an earlier id: the later row wins
    ids = np.where(dup, rng.integers(0, max(total, 1), n), ids)
    sid = pc.binary_join_element_wise("S", pc.utf8_lpad(pa.array(ids).cast(pa.string()), 9, "0"), "")
    bad = rng.random(n) < 0.001
    email = pc.binary_join_element_wise("user", pa.array(ids).cast(pa.string()), "@example.com", "")
    email = pc.if_else(pa.array(bad), pa.scalar("not-an-email"), email)
    seconds = rng.integers(1_500_000_000, 1_700_000_000, n).astype("datetime64[s]")
    created = pc.binary_join_element_wise(pc.strftime(pa.array(seconds), format="%Y-%m-%dT%H:%M:%S"),
                                          _pick(rng, ["Z", "+02:00", "-0500", ""], n), "")
    age = pa.array(rng.integers(18, 90, n)).cast(pa.string())
    return pa.table({
        "subscriber_id": sid,
        "email": email,
        "status": _pick(rng, ["active", "Active", "unsubscribed", "bounced", "complained"], n),
        "first_name": _pick(rng, ["Ann", "Bob", "Chen", "Dana", "Émile", " Frank "], n),
        "last_name": _pick(rng, ["Smith", "Jones", "O'Neil", "Smith, Jr."], n),
        "signup_form": _pick(rng, ["NYC meetup form", "footer", "checkout", ""], n),
        "city": _pick(rng, ["New York", "Boston", "Austin", ""], n),
        "state": _pick(rng, ["NY", "MA", "TX", ""], n),
        "country": _pick(rng, ["US", "CA"], n),
        "postal_code": pc.utf8_lpad(pa.array(rng.integers(0, 99999, n)).cast(pa.string()), 5, "0"),
        "age": pc.if_else(pa.array(rng.random(n) < 0.1), pa.scalar(""), age),
        "created_at": created,
        "tags": _pick(rng, ["webinar-attendee|vip", " newsletter | | promo ", "", "customer"], n),
        "loyalty_points": pa.array(rng.integers(0, 5000, n)).cast(pa.string()),
        "vip": _pick(rng, ["true", "False", "TRUE", ""], n),
        "birthday": _pick(rng, ["1990-05-01", "1984-12-31", ""], n),
    })


def generate(path: Path, rows: int) -> None:
    rng = np.random.default_rng(7)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    with open(path, "wb") as sink:
        for start in range(0, rows, CHUNK):
            table = _chunk(start, min(CHUNK, rows - start), rows, rng)
            if writer is None:
                writer = pcsv.CSVWriter(sink, table.schema, write_options=pcsv.WriteOptions(quoting_style="needed"))
            writer.write_table(table)
        if writer is not None:
            writer.close()


def ingest_child(data: Path) -> None:
    from pipelines.core.settings import Paths
    from pipelines.lake.ingest import ingest_landing
    from pipelines.segments.fields import FieldCatalog

    started = time.perf_counter()
    report = ingest_landing(Paths(defs=Path("segment_defs"), data=data), FieldCatalog.with_custom(CUSTOM, {}))
    print(json.dumps({
        "seconds": time.perf_counter() - started,
        "ingested": report.ingested,
        "rejected": [str(r) for r in report.rejected],
        "quarantined_rows": report.quarantined_rows,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--ingest-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest_only:
        ingest_child(args.ingest_only)
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    data = work / "data"
    csv_path = data / "landing" / "subscribers" / "subscribers_20240101T000000Z.csv"
    started = time.perf_counter()
    generate(csv_path, args.rows)
    print(f"generated {args.rows:,} rows, {csv_path.stat().st_size / 2**20:,.0f} MiB "
          f"in {time.perf_counter() - started:.1f} s")

    child = subprocess.run([sys.executable, __file__, "--ingest-only", str(data)],
                           capture_output=True, text=True, check=False)
    if child.returncode:
        sys.exit(f"ingest failed:\n{child.stderr}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
    from pipelines.core.settings import Paths
    from pipelines.lake.snapshots import list_snapshots

    snapshot = list_snapshots(Paths(defs=Path("segment_defs"), data=data))[0]
    verdict = "OK" if peak <= LIMIT_BYTES else "OVER"
    print(f"ingest: {result['seconds']:.1f} s, {args.rows / result['seconds']:,.0f} rows/s, "
          f"peak RSS {peak / 2**20:,.0f} MiB ({verdict}: limit 4096 MiB), "
          f"{snapshot.rows:,} rows in the lake, {result['quarantined_rows']:,} quarantined")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
