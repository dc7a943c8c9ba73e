"""The asset graph: landing files -> lake -> membership -> history -> recipients -> warehouse.

All segments are ONE asset (`segment_membership`), not one asset per
segment: a team with hundreds of segments would otherwise get hundreds of
nodes in the UI, and the engine evaluates them in one pass anyway. Per-segment
sizes and changes appear as a markdown table in the asset's metadata.

Each asset is a thin wrapper over a step in `pipelines.refresh`; steps pass
data through the run's workspace, and only `analyst_warehouse` publishes.
"""


from datetime import timedelta

import dagster as dg
import pyarrow.compute as pc

from .. import refresh
from ..clock import utc_now
from ..errors import UserError
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
        dg.AssetSpec("lake_subscribers", deps=[landing_files], group_name="lake", kinds={"parquet"},
                     description="Typed subscriber snapshots; bad rows quarantined."),
        dg.AssetSpec("lake_events", deps=[landing_files], group_name="lake", kinds={"parquet"},
                     description="De-duplicated event exports."),
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
        ctx = refresh.step_prepare(segments.paths(), params, in_progress=_runs_in_progress(context))
    except UserError as error:
        refresh.record_failure(segments.paths(), params, error)
        raise _fail(error) from None
    for warning in ctx.warnings:
        context.log.warning(warning)
    yield dg.MaterializeResult(
        asset_key="lake_subscribers",
        metadata={
            "snapshot": ctx.snapshot_name,
            "dagster/row_count": ctx.snapshot_rows,
            "as_of": ctx.params.as_of.isoformat(),
            "files_ingested": len(ctx.ingested),
            "quarantined_rows": ctx.quarantined_rows,
        },
    )
    yield dg.MaterializeResult(asset_key="lake_events", metadata={"files_ingested": len(ctx.ingested)})


@dg.asset(deps=["lake_subscribers", "lake_events"], group_name="segments", kinds={"duckdb", "polars", "spark"})
def segment_membership(context: dg.AssetExecutionContext, segments: SegmentsResource) -> dg.MaterializeResult:
    """Every segment evaluated on the run's snapshot and as_of, in one pass per dependency wave."""
    try:
        ctx, counts = refresh.step_evaluate(segments.paths(), workspace_id(context.run))
    except UserError as error:
        raise _fail(error) from None
    if ctx.unchanged:
        return dg.MaterializeResult(metadata={"unchanged_since_run": ctx.unchanged_run_id})
    table = "| segment | members |\n|---|---:|\n" + "\n".join(f"| {k} | {v:,} |" for k, v in sorted(counts.items()))
    compiled = refresh.RunWorkspace(segments.paths(), workspace_id(context.run)).compiled_sql()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(counts.values()),
            "segments": dg.MetadataValue.md(table),
            # The query each segment compiles to (also in the warehouse's `segments.sql`).
            "compiled_sql": dg.MetadataValue.md(
                "\n\n".join(f"**{key}**\n```sql\n{sql}\n```" for key, sql in sorted(compiled.items()))
            ),
            "engine": ctx.params.engine,
            "as_of": ctx.params.as_of.isoformat(),
            # engine/incremental.py: whether only subscribers whose inputs changed were re-evaluated
            "evaluation": next((w for w in ctx.warnings if w.startswith("incremental:")), "full"),
        }
    )


@dg.asset(deps=[segment_membership], group_name="segments")
def segment_history(context: dg.AssetExecutionContext, segments: SegmentsResource) -> dg.MaterializeResult:
    """Stays (valid_from/valid_to), entered/exited changes and sizes for this run."""
    try:
        ctx, history = refresh.step_history(segments.paths(), workspace_id(context.run))
    except UserError as error:
        raise _fail(error) from None
    if history is None:
        return dg.MaterializeResult(metadata={"unchanged_since_run": ctx.unchanged_run_id})
    sizes = history.run_sizes(workspace_id(context.run))
    rows = [
        f"| {s} | {m:,} | +{e:,} | -{x:,} |"
        for s, m, e, x in zip(
            sizes.column("segment").to_pylist(), sizes.column("members").to_pylist(),
            sizes.column("entered").to_pylist(), sizes.column("exited").to_pylist(), strict=True,
        )
    ]
    table = "| segment | members | entered | exited |\n|---|---:|---:|---:|\n" + "\n".join(rows)
    return dg.MaterializeResult(
        metadata={
            "changes": dg.MetadataValue.md(table),
            "dagster/row_count": history.entered + history.exited,  # this run's changes
        }
    )


@dg.asset(deps=[segment_membership], group_name="publish")
def audience_recipients(context: dg.AssetExecutionContext, segments: SegmentsResource) -> dg.MaterializeResult:
    """Recipients per audience: any include, minus any exclude, minus every non-active subscriber."""
    try:
        ctx, counts = refresh.step_recipients(segments.paths(), workspace_id(context.run))
    except UserError as error:
        raise _fail(error) from None
    if counts is None:
        return dg.MaterializeResult(metadata={"unchanged_since_run": ctx.unchanged_run_id})
    table = "| audience | recipients |\n|---|---:|\n" + "\n".join(f"| {a} | {n:,} |" for a, n in sorted(counts.items()))
    return dg.MaterializeResult(
        metadata={"dagster/row_count": sum(counts.values()), "audiences": dg.MetadataValue.md(table)}
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
    metadata = {
        "warehouse": dg.MetadataValue.path(str(paths.warehouse)),
        "run_id": workspace_id(context.run),
        "as_of": ctx.params.as_of.isoformat(),
    }
    if result is None:
        metadata["unchanged_since_run"] = ctx.unchanged_run_id
    return dg.MaterializeResult(metadata=metadata)


def count_nonunique(table, columns: list[str]) -> int:
    grouped = table.group_by(columns).aggregate([([], "count_all")])
    return int(pc.sum(pc.greater(grouped.column("count_all"), 1)).as_py() or 0)
