"""The segment definition language: load, validate and model definitions (no Dagster here)."""
