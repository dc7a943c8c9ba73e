"""Resources: where definitions and data live, and which engine evaluates.

Same code, swap the resource: a laptop uses the defaults (DuckDB, ./data); a
deployment points `data_dir` elsewhere or sets `engine` to `polars`/`spark`
without touching the assets.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ..settings import Paths, resolve_paths


class SegmentsResource(dg.ConfigurableResource):
    """Paths, engine and the thresholds of the asset checks."""

    defs_dir: str = Field(default="", description="Definitions folder; empty: $SEGMENTS_DEFS or ./segment_defs")
    data_dir: str = Field(default="", description="Data root; empty: $SEGMENTS_DATA or ./data")
    engine: str = Field(default="duckdb", description="duckdb | polars | spark")
    keep_versions: int = Field(default=5, description="Published versions kept for open readers")
    max_quarantine_rate: float = Field(default=0.05, description="Quarantined share of a file that fails the check")
    max_segment_shrink: float = Field(default=0.5, description="A segment losing more than this share is flagged")
    block_on_shrink: bool = Field(default=False, description="Block publishing when a segment shrinks too much")
    alert_webhook_url: str = Field(default="", description="URL a failed refresh run is POSTed to as JSON; empty: off")

    def paths(self) -> Paths:
        return resolve_paths(self.defs_dir or None, self.data_dir or None)
