"""The `segments` resource: a deployment swaps it (data_dir, engine), not the assets."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ..core.files import private_umask
from ..core.settings import IngestLimits, Paths, ingest_limits, resolve_paths


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

    # Ingest limits (README "Limits and hostile input"); None: $SEGMENTS_MAX_... or the default.
    max_file_bytes: int | None = Field(default=None, description="Largest decompressed landing file, bytes")
    max_columns: int | None = Field(default=None, description="Most columns a landing file may have")
    max_record_bytes: int | None = Field(default=None, description="Largest CSV record or JSONL line, bytes")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        private_umask()  # every step writes lake, warehouse or audience files

    def paths(self) -> Paths:
        return resolve_paths(self.defs_dir or None, self.data_dir or None)

    def ingest_limits(self) -> IngestLimits:
        return ingest_limits(max_file_bytes=self.max_file_bytes, max_columns=self.max_columns,
                             max_record_bytes=self.max_record_bytes)
