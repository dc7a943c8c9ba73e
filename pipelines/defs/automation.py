"""The refresh job, its schedules, the landing sensor and the run-failure sensors.
Runs never overlap: dagster.yaml limits the run queue to one run at a time."""

import hashlib
import json
import urllib.error
import urllib.request

import dagster as dg

from ..core.clock import format_ts, utc_now
from ..errors import UserError
from ..lake.columns import KINDS
from ..lake.landing import list_landing
from ..run.params import Workspace
from ..run.prepare import record_failure
from .assets import workspace_id
from .resources import SegmentsResource

refresh_job = dg.define_asset_job(
    "refresh",
    selection=dg.AssetSelection.groups("lake", "segments", "publish"),
    description="Ingest new landing files, evaluate every segment, record history, publish.",
    # The steps run one after another and hand over files: a process per step (the
    # default executor) only adds start-up time, 15-29 s a run on the demo data.
    executor_def=dg.in_process_executor,
)


# Every run carries its clock as a tag, so the Runs list can be filtered by it.
AS_OF_TAG = "segments/as_of"


def _run_request(trigger: str, key: str, as_of: str, *, full: bool = False,
                 tags: dict[str, str] | None = None) -> dg.RunRequest:
    config = {"as_of": as_of, "full": full}
    return dg.RunRequest(run_key=f"{trigger}-{key}", run_config={"ops": {"ingest": {"config": config}}},
                         tags={"segments/trigger": trigger, **(tags or {}), AS_OF_TAG: as_of})


@dg.schedule(job=refresh_job, cron_schedule="0 2 * * *", execution_timezone="UTC",
             description="Nightly full refresh at 02:00 UTC.")
def nightly_full_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    as_of = format_ts(context.scheduled_execution_time)
    return _run_request("nightly", as_of, as_of, full=True)


@dg.schedule(job=refresh_job, cron_schedule="0 0,1,3-23 * * *", execution_timezone="UTC",
             description="Hourly incremental refresh (02:00 is the nightly full refresh).")
def hourly_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    as_of = format_ts(context.scheduled_execution_time)
    return _run_request("hourly", as_of, as_of)


@dg.sensor(job=refresh_job, minimum_interval_seconds=60,
           description="Starts a refresh when new files land in DATA/landing/ (one run per new file set).")
def landing_sensor(context: dg.SensorEvaluationContext, segments: SegmentsResource):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current: dict[str, str] = {}  # the landing files ingest would read -> size:mtime
    for kind in KINDS:  # subscribers, events, suppressions
        for path in list_landing(segments.paths(), kind):
            stat = path.lstat()  # a link is listed, never followed
            current[f"{kind}/{path.name}"] = f"{stat.st_size}:{stat.st_mtime_ns}"
    new = {name: sig for name, sig in current.items() if seen.get(name) != sig}
    if not new:
        return dg.SkipReason("no new landing files")
    key = hashlib.sha256(json.dumps(sorted(new.items())).encode()).hexdigest()[:16]
    # What the landing folder holds now: the `landing_files` asset's plots.
    observation = dg.AssetObservation("landing_files", metadata={
        "files": len(current),
        "new_files": len(new),
        "bytes": sum(int(sig.split(":")[0]) for sig in current.values()),
        **{f"files/{kind}": sum(1 for name in current if name.startswith(f"{kind}/"))
           for kind in KINDS},
        "new": dg.MetadataValue.md("\n".join(f"- `{name}`" for name in sorted(new))),
    })
    return dg.SensorResult(
        run_requests=[_run_request("landing", key, format_ts(utc_now()),
                                   tags={"segments/new_files": str(len(new))})],
        asset_events=[observation],
        cursor=json.dumps({**seen, **new}, sort_keys=True),
    )


@dg.run_failure_sensor(monitored_jobs=[refresh_job], minimum_interval_seconds=30,
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Records a refresh run that failed after ingest in the `runs` relation.")
def record_failed_refresh(context: dg.RunFailureSensorContext, segments: SegmentsResource):
    """A run launched by a schedule or the sensor that fails after ingest (which records its
    own failures) shows in `runs` as `failed`, as a `segments run` does."""
    paths = segments.paths()
    workspace = Workspace(paths, workspace_id(context.dagster_run))
    if not workspace.context_file.is_file():
        return dg.SkipReason("failed before its workspace existed (ingest records those)")
    record_failure(paths, workspace.load_context().params, UserError(failure_reason(context)))
    return None


@dg.run_failure_sensor(monitored_jobs=[refresh_job], minimum_interval_seconds=30,
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="POSTs a JSON message to the `segments` resource's alert_webhook_url "
                                   "when a refresh run fails (off while the URL is empty).")
def alert_failed_refresh(context: dg.RunFailureSensorContext, segments: SegmentsResource):
    """Tells people a run failed: nothing else would while the schedules run unattended.
    `text` is the line Slack and Teams incoming webhooks show."""
    if not segments.alert_webhook_url:
        return dg.SkipReason("no alert_webhook_url configured")
    run = context.dagster_run
    message = failure_reason(context)
    as_of = run.tags.get(AS_OF_TAG, "")
    trigger = run.tags.get("segments/trigger", "command line" if "segments/pid" in run.tags else "manual")
    text = f"segments: refresh run {run.run_id} failed ({trigger}, as_of {as_of or 'unknown'}): {message}"
    payload = {"text": text, "run_id": run.run_id, "job": run.job_name, "as_of": as_of, "trigger": trigger,
               "message": message}
    try:
        post_json(segments.alert_webhook_url, payload)
    except (OSError, ValueError) as error:  # URLError (refused, unreachable), HTTPError, a timeout, a bad URL
        # A URLError's reason, not "<urlopen error ...>"; never the URL: it carries the secret token.
        reason = error if isinstance(error, urllib.error.HTTPError) else getattr(error, "reason", error)
        line = f"could not post the alert: {reason}"
        context.log.error(line)
        return dg.SkipReason(line)
    return None


def post_json(url: str, payload: dict) -> None:
    """POST `payload` as JSON; an http(s) URL only (never file:// or the like)."""
    if not url.startswith(("http://", "https://")):
        # Not the URL itself: a webhook URL carries its secret token.
        raise ValueError("alert_webhook_url must be an http(s) URL")
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    # A slow receiver must not hold the sensor daemon.
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - checked above
        response.read()


def failure_reason(context: dg.RunFailureSensorContext) -> str:
    """One line: the first failed step's own message (say, "the disk is full"), else Dagster's."""
    for record in context.instance.all_logs(context.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        if record.dagster_event is None:  # STEP_FAILURE records carry their event
            continue
        data = record.dagster_event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return f"{record.step_key}: {data.user_failure_data.description.strip().splitlines()[0]}"
        if data.error is not None:
            cause = data.error.cause or data.error
            return f"{record.step_key}: {cause.message.strip().splitlines()[0]}"
    return (context.failure_event.message or "the refresh run failed").strip().splitlines()[0]
