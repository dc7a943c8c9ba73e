"""Dagster definitions: thin wrappers over the library steps in `pipelines.refresh`."""
