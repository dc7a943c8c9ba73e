"""Schedules and the landing sensor.

- nightly full refresh at 02:00 UTC;
- hourly refresh at minute 0 of every other hour (02:00 belongs to the nightly run);
- a sensor that starts one run per new set of landing files.
Runs never overlap: dagster.yaml limits the run queue to one run at a time.
"""


import hashlib
import json
from pathlib import Path

import dagster as dg

from ..clock import format_ts, utc_now
from ..settings import resolve_paths

refresh_job = dg.define_asset_job(
    "refresh",
    selection=dg.AssetSelection.groups("lake", "segments", "publish"),
    description="Ingest new landing files, evaluate every segment, record history, publish.",
)


def _run_config(as_of: str, *, full: bool = False) -> dict:
    return {"ops": {"ingest": {"config": {"as_of": as_of, "full": full}}}}


@dg.schedule(job=refresh_job, cron_schedule="0 2 * * *", execution_timezone="UTC",
             description="Nightly full refresh at 02:00 UTC.")
def nightly_full_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    as_of = format_ts(context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"nightly-{as_of}", run_config=_run_config(as_of, full=True),
                         tags={"segments/trigger": "nightly"})


@dg.schedule(job=refresh_job, cron_schedule="0 0,1,3-23 * * *", execution_timezone="UTC",
             description="Hourly incremental refresh (02:00 is the nightly full refresh).")
def hourly_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    as_of = format_ts(context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"hourly-{as_of}", run_config=_run_config(as_of),
                         tags={"segments/trigger": "hourly"})


def landing_listing(landing: Path) -> dict[str, str]:
    """Every landing file with its size and modification time."""
    listing: dict[str, str] = {}
    for sub in ("subscribers", "events"):
        folder = landing / sub
        if folder.exists():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    stat = path.stat()
                    listing[f"{sub}/{path.relative_to(folder)}"] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return listing


@dg.sensor(job=refresh_job, minimum_interval_seconds=60,
           description="Starts a refresh when new files land in DATA/landing/ (one run per new file set).")
def landing_sensor(context: dg.SensorEvaluationContext):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = landing_listing(resolve_paths().landing)
    new = {name: sig for name, sig in current.items() if seen.get(name) != sig}
    if not new:
        return dg.SkipReason("no new landing files")
    run_key = hashlib.sha256(json.dumps(sorted(new.items())).encode()).hexdigest()[:16]
    context.update_cursor(json.dumps({**seen, **new}, sort_keys=True))
    return dg.RunRequest(
        run_key=f"landing-{run_key}",
        run_config=_run_config(format_ts(utc_now())),
        tags={"segments/trigger": "landing", "segments/new_files": str(len(new))},
    )
