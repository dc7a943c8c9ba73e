"""Published state: history, audiences and the atomically swapped analyst warehouse.

No Dagster here: the assets in `pipelines/defs/` call these functions.
"""

from .audience_files import audiences_root, sync_audience_files
from .audiences import compute_recipients, suppression_violations
from .catalog import open_warehouse
from .lock import writer_lock
from .runlog import record_failed_run
from .state import PublishedState, current_state
from .warehouse import (
    PublishPlan,
    PublishResult,
    StagedVersion,
    plan_publish,
    publish_version,
    stage_version,
)

__all__ = [
    "PublishPlan",
    "PublishResult",
    "PublishedState",
    "StagedVersion",
    "audiences_root",
    "compute_recipients",
    "current_state",
    "open_warehouse",
    "plan_publish",
    "publish_version",
    "record_failed_run",
    "stage_version",
    "suppression_violations",
    "sync_audience_files",
    "writer_lock",
]
