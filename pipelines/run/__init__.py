"""One refresh run as plain functions, which the Dagster assets in `pipelines/defs/` call."""
