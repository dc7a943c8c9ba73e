"""Schedules and the landing sensor.

- nightly full refresh at 02:00 UTC;
- hourly refresh at minute 0 of every hour but 02:00 (which belongs to the nightly run);
- a sensor that starts one run per new set of landing files.
Runs never overlap: dagster.yaml limits the run queue to one run at a time.
"""


import hashlib
import json

import dagster as dg

from ..clock import format_ts, utc_now
from ..lake.columns import KINDS
from ..lake.landing import list_landing
from ..settings import Paths
from .resources import SegmentsResource

refresh_job = dg.define_asset_job(
    "refresh",
    selection=dg.AssetSelection.groups("lake", "segments", "publish"),
    description="Ingest new landing files, evaluate every segment, record history, publish.",
    # The steps run one after another and hand over files: a process per step (the
    # default executor) only adds start-up time, 15-29 s a run on the demo data.
    executor_def=dg.in_process_executor,
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


def landing_listing(paths: Paths) -> dict[str, str]:
    """The landing files ingest would read (not sub-folders), with size and modification time."""
    listing: dict[str, str] = {}
    for kind in KINDS:  # subscribers, events, suppressions
        for path in list_landing(paths, kind):
            stat = path.lstat()  # a link is listed, never followed
            listing[f"{kind}/{path.name}"] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return listing


@dg.sensor(job=refresh_job, minimum_interval_seconds=60,
           description="Starts a refresh when new files land in DATA/landing/ (one run per new file set).")
def landing_sensor(context: dg.SensorEvaluationContext, segments: SegmentsResource):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = landing_listing(segments.paths())  # the data folder the runs will use
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


@dg.run_failure_sensor(monitored_jobs=[refresh_job], minimum_interval_seconds=30,
                       description="Records a refresh run that failed after ingest in the `runs` relation.")
def record_failed_refresh(context: dg.RunFailureSensorContext, segments: SegmentsResource):
    """A run launched by a schedule or the sensor that fails (a step raised, a blocking
    check stopped it) shows in `runs` as `failed`, as a `segments run` does. A run that
    failed in ingest is recorded there already."""
    from ..errors import UserError
    from ..refresh import RunWorkspace, record_failure
    from .assets import workspace_id

    paths = segments.paths()
    workspace = RunWorkspace(paths, workspace_id(context.dagster_run))
    if not (workspace.dir / "context.json").is_file():
        return dg.SkipReason("failed before its workspace existed (ingest records those)")
    message = context.failure_event.message or "the refresh run failed"
    record_failure(paths, workspace.load_context().params, UserError(message.strip().splitlines()[0]))
    return None
