"""`defs`: what `dagster dev` and `segments run` load."""

import dagster as dg

from .defs import assets, automation
from .defs.resources import SegmentsResource

defs = dg.Definitions(
    assets=[assets.landing_files, assets.ingest, assets.segments_and_audiences],
    jobs=[automation.refresh_job],
    schedules=[automation.nightly_full_refresh, automation.hourly_refresh],
    sensors=[automation.landing_sensor, automation.record_failed_refresh, automation.alert_failed_refresh],
    resources={"segments": SegmentsResource()},
)
