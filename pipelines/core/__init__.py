"""What every layer above shares: the run clock, settings, the DuckDB connection,
durable files, Arrow schemas and conform, and membership flags.

Imports only `pipelines.segments` and `pipelines.errors` (pyproject.toml's
import-linter contract).
"""
