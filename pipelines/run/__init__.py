"""One refresh run as plain functions: params, prepare, evaluate, checks, execute.

The Dagster assets in `pipelines/defs/` call these and turn their typed results
into materializations and check results; `segments run` executes that job.
"""
