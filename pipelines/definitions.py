"""`defs`: what `dagster dev` and `segments run` load."""

import dagster as dg

from .defs.assets import (
    analyst_warehouse,
    audience_recipients,
    ingest,
    landing_files,
    segment_history,
    segment_membership,
)
from .defs.automation import (
    alert_failed_refresh,
    hourly_refresh,
    landing_sensor,
    nightly_full_refresh,
    record_failed_refresh,
    refresh_job,
)
from .defs.checks import ALL_CHECKS
from .defs.resources import SegmentsResource

defs = dg.Definitions(
    assets=[landing_files, ingest, segment_membership, segment_history, audience_recipients, analyst_warehouse],
    asset_checks=ALL_CHECKS,
    jobs=[refresh_job],
    schedules=[nightly_full_refresh, hourly_refresh],
    sensors=[landing_sensor, record_failed_refresh, alert_failed_refresh],
    resources={"segments": SegmentsResource()},
)
