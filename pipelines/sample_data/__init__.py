"""Deterministic sample subscribers and events, and the landing files the demo
and the benchmark feed to the pipeline (data-contract.md, "Landing files")."""

from pipelines.sample_data.generate import (
    BLOCK_ROWS,
    EVENT_SCHEMA,
    SUBSCRIBER_SCHEMA,
    generate_events,
    generate_subscribers,
    iter_blocks,
)
from pipelines.sample_data.landing import FORMATS, landing_file_paths, write_landing

__all__ = [
    "BLOCK_ROWS",
    "EVENT_SCHEMA",
    "FORMATS",
    "SUBSCRIBER_SCHEMA",
    "generate_events",
    "generate_subscribers",
    "iter_blocks",
    "landing_file_paths",
    "write_landing",
]
