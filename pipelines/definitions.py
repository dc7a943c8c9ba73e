"""`defs`: what `dagster dev` and `segments run` load."""

import dagster as dg

from .defs.assets import ingest, landing_files, segments_and_audiences
from .defs.automation import (
    alert_failed_refresh,
    hourly_refresh,
    landing_sensor,
    nightly_full_refresh,
    record_failed_refresh,
    refresh_job,
)
from .defs.resources import SegmentsResource

defs = dg.Definitions(
    assets=[landing_files, ingest, segments_and_audiences],
    jobs=[refresh_job],
    schedules=[nightly_full_refresh, hourly_refresh],
    sensors=[landing_sensor, record_failed_refresh, alert_failed_refresh],
    resources={"segments": SegmentsResource()},
)
