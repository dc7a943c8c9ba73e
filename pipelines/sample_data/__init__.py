"""Deterministic sample subscribers and events, and the landing files the demo
and the benchmark feed to the pipeline (data-contract.md, "Landing files")."""

from .generate import EVENT_SCHEMA, SUBSCRIBER_SCHEMA, generate_events, generate_subscribers
from .landing import FORMATS, landing_file_paths, write_landing

__all__ = ["EVENT_SCHEMA", "FORMATS", "SUBSCRIBER_SCHEMA", "generate_events", "generate_subscribers",
           "landing_file_paths", "write_landing"]
