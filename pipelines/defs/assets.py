"""The asset graph: landing files -> lake -> membership -> history -> recipients -> warehouse.

All segments are ONE asset (`segment_membership`), not one asset per
segment: a team with hundreds of segments would otherwise get hundreds of
nodes in the UI, and the engine evaluates them in one pass anyway. Per-segment
sizes and changes are numeric metadata entries (`members/<segment>`,
`entered/<segment>`, `exited/<segment>`, `recipients/<audience>`), which the
asset's Plots tab draws over runs, plus a markdown table.

Each asset is a thin wrapper over a step in `pipelines.refresh`; steps pass
data through the run's workspace, and only `analyst_warehouse` publishes.
A run whose inputs were already published materializes nothing: the ingest
step records an observation of every asset instead (see `_observe_unchanged`).
"""


from datetime import timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import refresh
from ..clock import utc_now
from ..errors import UserError
from ..publish import schemas
from .metadata import (
    as_of_value,
    column_schema,
    edited_segments,
    event_rows,
    holdout_counts,
    lake_event_files,
    relation_schemas,
)
from .resources import SegmentsResource


class RefreshConfig(dg.Config):
    """Run parameters. Schedules set `as_of` to their tick; the CLI to `--as-of` or now."""

    as_of: str | None = None
    force: bool = False
    full: bool = False
    allow_future: bool = False  # accept an as_of more than 5 minutes ahead of the clock
    engine: str | None = None


landing_files = dg.AssetSpec(
    "landing_files",
    group_name="landing",
    description="Subscriber snapshots and event exports dropped into DATA/landing/ (watched by a sensor).",
    kinds={"csv", "json", "parquet"},
)


def _fail(error: UserError) -> dg.Failure:
    # A one-line description, no stack trace: the CLI prints it as-is.
    return dg.Failure(description=str(error), allow_retries=False)


def workspace_id(run: dg.DagsterRun) -> str:
    """The run workspace of a Dagster run: its own, or for a re-execution (say, from
    failure) that of the run it re-executes, where the earlier steps left their results."""
    return run.root_run_id or run.run_id


# Runs started by a schedule tick (automation.py tags them): overtaken by a later run, they do nothing.
SCHEDULED_TRIGGERS = ("nightly", "hourly")


def _runs_in_progress(context: dg.AssetExecutionContext) -> list[str]:
    """Other runs of this instance still going: a run started from the command line
    while a scheduled one runs must not remove that run's workspace."""
    statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    return [workspace_id(r) for r in context.instance.get_runs(filters=dg.RunsFilter(statuses=statuses))
            if r.run_id != context.run.run_id]


@dg.multi_asset(
    specs=[
        # skippable: an unchanged run materializes nothing, and every later step skips.
        dg.AssetSpec("lake_subscribers", deps=[landing_files], group_name="lake", kinds={"parquet"},
                     description="Typed subscriber snapshots; bad rows quarantined.", skippable=True),
        dg.AssetSpec("lake_events", deps=[landing_files], group_name="lake", kinds={"parquet"},
                     description="De-duplicated event exports.", skippable=True),
    ],
    name="ingest",
)
def ingest(context: dg.AssetExecutionContext, config: RefreshConfig, segments: SegmentsResource):
    """Ingest new landing files and choose this run's snapshot (the hold rule applies here)."""
    started = utc_now()
    params = refresh.parse_params(
        workspace_id(context.run), config.as_of, started,
        engine=config.engine or segments.engine, force=config.force, full=config.full,
        allow_future=config.allow_future,
        overtaken_ok=context.run.tags.get("segments/trigger") in SCHEDULED_TRIGGERS,
    )
    try:
        ctx = refresh.step_prepare(segments.paths(), params, in_progress=_runs_in_progress(context),
                                  limits=segments.ingest_limits())
    except UserError as error:
        refresh.record_failure(segments.paths(), params, error)
        raise _fail(error) from None
    for warning in ctx.warnings:
        context.log.warning(warning)
    if ctx.unchanged:
        _observe_unchanged(context, ctx)
        return
    yield dg.MaterializeResult(
        asset_key="lake_subscribers",
        metadata={
            "snapshot": ctx.snapshot_name,
            "dagster/row_count": ctx.snapshot_rows,  # subscribers in the run's snapshot
            "dagster/column_schema": column_schema(pq.read_schema(ctx.snapshot_file)),
            "as_of": as_of_value(ctx),
            "files_ingested": len(ctx.ingested),
            "quarantined_rows": ctx.quarantined_rows,
        },
    )
    event_files = lake_event_files(segments.paths())
    yield dg.MaterializeResult(
        asset_key="lake_events",
        metadata={
            "dagster/row_count": event_rows(event_files),  # events in the lake
            "dagster/column_schema": column_schema(pq.read_schema(event_files[0]) if event_files else pa.schema([])),
            "files_ingested": len(ctx.ingested),
            "as_of": as_of_value(ctx),
        },
    )


# Every asset the refresh job materializes, in order.
JOB_ASSETS = ("lake_subscribers", "lake_events", "segment_membership", "segment_history", "audience_recipients",
              "analyst_warehouse")


def _observe_unchanged(context: dg.AssetExecutionContext, ctx: refresh.RunContext):
    """A run whose inputs were already published (or that a later run overtook) publishes
    nothing: it records an observation of each asset that carries the last real
    materialization's metadata forward, not a materialization. So the plots keep their
    values, and the freshness policy sees no publish."""
    for key in JOB_ASSETS:
        latest = context.instance.get_latest_materialization_event(dg.AssetKey(key))
        carried = dict(latest.asset_materialization.metadata) if latest and latest.asset_materialization else {}
        context.log_event(dg.AssetObservation(
            asset_key=key, metadata={**carried, "unchanged_since_run": ctx.unchanged_run_id or ""}))


@dg.asset(deps=["lake_subscribers", "lake_events"], group_name="segments", kinds={"duckdb", "polars", "spark"})
def segment_membership(context: dg.AssetExecutionContext, segments: SegmentsResource) -> dg.MaterializeResult:
    """Every segment evaluated on the run's snapshot and as_of, in one pass per dependency wave."""
    try:
        ctx, counts = refresh.step_evaluate(segments.paths(), workspace_id(context.run))
    except UserError as error:
        raise _fail(error) from None
    table = "| segment | members |\n|---|---:|\n" + "\n".join(f"| {k} | {v:,} |" for k, v in sorted(counts.items()))
    paths = segments.paths()
    compiled = refresh.RunWorkspace(paths, workspace_id(context.run)).compiled_sql()
    # The query of each segment whose definition changed since the published run (every
    # query is in the warehouse's `segments.sql`): not ~1 KB per segment on every run.
    project = refresh.load_valid_project(paths)
    edited = edited_segments(paths, {key: s.definition_sha256() for key, s in project.segments.items()})
    metadata = {
        "dagster/row_count": sum(counts.values()),  # (segment, subscriber_id) pairs
        "dagster/column_schema": column_schema(schemas.MEMBERSHIP),
        **{f"members/{key}": count for key, count in sorted(counts.items())},
        "segments": dg.MetadataValue.md(table),
        "engine": ctx.params.engine,
        "as_of": as_of_value(ctx),
        # engine/incremental.py: whether only subscribers whose inputs changed were re-evaluated
        "evaluation": next((w for w in ctx.warnings if w.startswith("incremental:")), "full"),
    }
    changed = {key: sql for key, sql in sorted(compiled.items()) if key in edited}
    if changed:
        metadata["compiled_sql"] = dg.MetadataValue.md(
            "\n\n".join(f"**{key}**\n```sql\n{sql}\n```" for key, sql in changed.items()))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(deps=[segment_membership], group_name="segments")
def segment_history(context: dg.AssetExecutionContext, segments: SegmentsResource) -> dg.MaterializeResult:
    """Stays (valid_from/valid_to), entered/exited changes and sizes for this run."""
    try:
        ctx, history = refresh.step_history(segments.paths(), workspace_id(context.run))
    except UserError as error:
        raise _fail(error) from None
    sizes = history.run_sizes(workspace_id(context.run))
    sizes = list(zip(sizes.column("segment").to_pylist(), sizes.column("members").to_pylist(),
                     sizes.column("entered").to_pylist(), sizes.column("exited").to_pylist(), strict=True))
    rows = [f"| {s} | {m:,} | +{e:,} | -{x:,} |" for s, m, e, x in sizes]
    table = "| segment | members | entered | exited |\n|---|---:|---:|---:|\n" + "\n".join(rows)
    return dg.MaterializeResult(
        metadata={
            "changes": dg.MetadataValue.md(table),
            # This run's changes; the stays relation's size is not counted, so no dagster/row_count.
            "entered": history.entered,
            "exited": history.exited,
            **{f"entered/{s}": e for s, _, e, _ in sizes},
            **{f"exited/{s}": x for s, _, _, x in sizes},
            "dagster/column_schema": column_schema(schemas.HISTORY),
            "as_of": as_of_value(ctx),
        }
    )


@dg.asset(deps=[segment_membership], group_name="publish")
def audience_recipients(context: dg.AssetExecutionContext, segments: SegmentsResource) -> dg.MaterializeResult:
    """Recipients per audience: any include, minus any exclude, minus every non-active subscriber."""
    try:
        ctx, counts = refresh.step_recipients(segments.paths(), workspace_id(context.run))
    except UserError as error:
        raise _fail(error) from None
    table = "| audience | recipients |\n|---|---:|\n" + "\n".join(f"| {a} | {n:,} |" for a, n in sorted(counts.items()))
    recipients_file = refresh.RunWorkspace(segments.paths(), workspace_id(context.run)).recipients_file
    holdout = holdout_counts(recipients_file)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(counts.values()),  # rows of `recipients`, every audience
            "dagster/column_schema": column_schema(pq.read_schema(recipients_file)),
            **{f"recipients/{key}": n for key, n in sorted(counts.items())},
            **{f"holdout/{key}": holdout.get(key, 0) for key in sorted(counts)},
            "audiences": dg.MetadataValue.md(table),
            "as_of": as_of_value(ctx),
        }
    )


@dg.asset(
    deps=[segment_history, audience_recipients],
    group_name="publish",
    kinds={"duckdb"},
    pool="warehouse_publish",
    # Freshness of the published tables: warn after 2 hours without a
    # publish (hourly runs), fail after 26 (the nightly run was missed).
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=2)),
)
def analyst_warehouse(context: dg.AssetExecutionContext, segments: SegmentsResource) -> dg.MaterializeResult:
    """Atomically publishes the new version: warehouse.duckdb and the audience files."""
    paths = segments.paths()
    try:
        ctx, result = refresh.step_publish(paths, workspace_id(context.run), keep_versions=segments.keep_versions)
    except UserError as error:
        raise _fail(error) from None
    relations = relation_schemas(paths)
    return dg.MaterializeResult(metadata={
        "warehouse": dg.MetadataValue.path(str(paths.warehouse)),
        "run_id": workspace_id(context.run),
        "as_of": as_of_value(ctx),
        "version": result.version if result is not None else "",
        # The analyst relations' columns, as the published catalog has them.
        "dagster/column_schema": relations.pop("segments", dg.TableSchema(columns=[])),
        **{f"schema/{name}": schema for name, schema in sorted(relations.items())},
    })


def count_nonunique(table, columns: list[str]) -> int:
    grouped = table.group_by(columns).aggregate([([], "count_all")])
    return int(pc.sum(pc.greater(grouped.column("count_all"), 1)).as_py() or 0)
