"""The refresh job executed in-process, as `segments run` and `segments demo` start it.

The instance is DAGSTER_HOME's (default DATA/dagster_home, with the repo's dagster.yaml),
so runs started from the command line appear in the Dagster UI.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .core.clock import format_ts
from .core.settings import Paths
from .definitions import defs
from .defs.automation import AS_OF_TAG
from .defs.resources import SegmentsResource
from .errors import UserError
from .publish.lock import writer_lock
from .run.params import RunContext, Workspace
from .run.prepare import record_failure

REPO_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def dagster_instance(paths: Paths):
    home = os.environ.get("DAGSTER_HOME") or str(Path(paths.data).resolve() / "dagster_home")
    os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    config = Path(home) / "dagster.yaml"
    if not config.exists() and REPO_DAGSTER_YAML.exists():
        shutil.copyfile(REPO_DAGSTER_YAML, config)
    return dg.DagsterInstance.get()


def run_refresh_job(paths: Paths, as_of: datetime, *, full: bool, force: bool, allow_future: bool, engine: str,
                    console: Console | None, instance=None) -> tuple[RunContext, list[str]]:
    """Execute the `refresh` job in-process: what its first step decided and the warnings of
    the checks that failed without blocking; a failed step becomes one UserError line."""
    job = defs.resolve_job_def("refresh")
    run_config = {
        "ops": {"ingest": {"config": {"as_of": format_ts(as_of), "full": full, "force": force,
                                      "allow_future": allow_future, "engine": engine}}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    # The resource as the Definitions configure it (thresholds, blocking checks, versions
    # kept), pointed at this command's folders and engine: the same job the schedules run.
    configured = (defs.resources or {}).get("segments")
    overrides = {"defs_dir": str(paths.defs), "data_dir": str(paths.data), "engine": engine}
    # Built anew (not model_copy): Dagster configures a resource from its constructor arguments.
    settings = configured.model_dump() if isinstance(configured, SegmentsResource) else {}
    resource = SegmentsResource(**{**settings, **overrides})
    instance = instance or dagster_instance(paths)
    run_id = str(uuid.uuid4())
    # The whole run holds the writer lock (the steps re-enter it): a second `segments run`
    # on the same folder stops at once with one line, instead of colliding in ingest.
    with writer_lock(paths), step_progress(console, instance, run_id):
        release_dead_command_runs(instance)
        tags = {COMMAND_HOST_TAG: socket.gethostname(), COMMAND_PID_TAG: str(os.getpid()),
                AS_OF_TAG: format_ts(as_of)}
        result = job.execute_in_process(run_config=run_config, instance=instance, tags=tags, run_id=run_id,
                                        resources={"segments": resource}, raise_on_error=False)
    if not result.success:
        error = UserError(_failure_message(result))
        workspace = Workspace(paths, result.run_id)
        if workspace.context_file.exists():  # failed after the first step: note it in `runs`
            record_failure(paths, workspace.load_context().params, error)
        raise error
    ctx = Workspace(paths, result.run_id).load_context()
    return ctx, ctx.warnings + _check_warnings(result)


def _check_warnings(result) -> list[str]:
    """One line per asset check that failed without blocking (a warning)."""
    lines = []
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            detail = evaluation.description or ", ".join(
                f"{k} {v.value}" for k, v in evaluation.metadata.items() if not k.startswith("dagster/"))
            lines.append(f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} failed: {detail}")
    return lines


# What the refresh job is doing once a step has started or an asset was materialized.
PROGRESS_LABELS = {
    "ingest": "ingesting landing files",
    "segments": "evaluating segments",
    "segment_membership": "recording history",
    "segment_history": "building audiences",
    "audience_recipients": "publishing",
}

PROGRESS_AFTER_S = 1.0  # a quicker run prints no progress line at all


@contextmanager
def step_progress(console: Console | None, instance, run_id: str):
    """A rich progress line naming the running step, on a terminal only."""
    if console is None or not console.is_terminal:
        yield
        return
    stop = threading.Event()
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.ASSET_MATERIALIZATION}

    def watch() -> None:
        if stop.wait(PROGRESS_AFTER_S):
            return
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=True) as progress:
            task = progress.add_task("refresh: starting", total=None)
            while not stop.wait(0.25):
                events = [e.dagster_event for e in instance.all_logs(run_id, of_type=kinds)]
                names = [e.asset_key.to_user_string() if e.asset_key else e.step_key for e in events]
                current = next((PROGRESS_LABELS[n] for n in reversed(names) if n in PROGRESS_LABELS), "starting")
                progress.update(task, description=f"refresh: {current}")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# Runs started by `segments run` carry the host and process that execute them in-process.
COMMAND_HOST_TAG = "segments/host"
COMMAND_PID_TAG = "segments/pid"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def release_dead_command_runs(instance) -> None:
    """Fail the runs of `segments run` processes on this host that died mid-run (SIGKILL, OOM) and
    free their pool slots: else every later publish waits for the dead run's slot (no daemon notices)."""
    in_progress = instance.get_runs(filters=dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
        tags={COMMAND_HOST_TAG: socket.gethostname()}))
    for run in in_progress:
        pid = int(run.tags.get(COMMAND_PID_TAG) or 0)
        if pid and pid != os.getpid() and not _process_alive(pid):
            instance.report_run_failed(run, message=f"the `segments run` process (pid {pid}) died during the run")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def _failure_message(result) -> str:
    """The first failed blocking check, else the first failed step, as one line."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed and evaluation.severity.value == "ERROR":
                return (f"blocking check '{evaluation.check_name}' failed on "
                        f"{evaluation.asset_key.to_user_string()}; nothing was published")
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                return data.user_failure_data.description
            if data.error is not None:
                cause = data.error.cause or data.error
                return f"step {event.step_key} failed: {cause.message.strip().splitlines()[0]}"
    return "the refresh run failed; see the Dagster UI (make dev) for details"
