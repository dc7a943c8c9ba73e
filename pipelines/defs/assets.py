"""The asset graph: landing files -> lake -> membership -> history -> recipients -> warehouse.

Two steps, as the data is persisted: `ingest` writes the lake and the run's decision
(which snapshot, whether anything changed); `segments` evaluates, records history,
builds recipients and publishes, its checks in between. The work is in `pipelines.run`.
All segments are ONE asset, `segment_membership`: hundreds of segments would be hundreds
of nodes in the UI, and the engine evaluates them in one pass anyway. What each asset
records: README, "Running and scheduling".
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core import schemas
from ..core.clock import parse_as_of, utc_now
from ..core.settings import Paths
from ..errors import UserError
from ..lake.snapshots import event_part_files
from ..publish.catalog import open_warehouse
from ..run import checks
from ..run.execute import Run
from ..run.params import RunContext, RunParams
from ..run.prepare import prepare, record_failure
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


@contextmanager
def _one_line_failure() -> Iterator[None]:
    """A UserError fails the step with its one line, no stack trace: the CLI prints it as-is."""
    try:
        yield
    except UserError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


def workspace_id(run: dg.DagsterRun) -> str:
    """The run workspace of a Dagster run: its own, or for a re-execution (say, from
    failure) that of the run it re-executes, where ingest left the run's context."""
    return run.root_run_id or run.run_id


# Runs started by a schedule tick (automation.py tags them): overtaken by a later run, they do nothing.
SCHEDULED_TRIGGERS = ("nightly", "hourly")


def _runs_in_progress(context: dg.AssetExecutionContext) -> list[str]:
    """Other runs of this instance still going: a run started from the command line
    while a scheduled one runs must not remove that run's workspace."""
    statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    return [workspace_id(r) for r in context.instance.get_runs(filters=dg.RunsFilter(statuses=statuses))
            if r.run_id != context.run.run_id]


def _checked(asset: str, outcomes: list[tuple[str, checks.CheckOutcome]]):
    """The check results; then, if a blocking one failed, the end of the run: nothing is published."""
    for name, outcome in outcomes:
        yield dg.AssetCheckResult(
            asset_key=asset, check_name=name, passed=outcome.passed, description=outcome.description,
            severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
            metadata=outcome.metadata)
    failed = [name for name, outcome in outcomes if outcome.blocking and not outcome.passed]
    if failed:
        raise dg.Failure(description=f"blocking check '{failed[0]}' failed on {asset}; nothing was published",
                         allow_retries=False)


@dg.multi_asset(
    specs=[
        # skippable: an unchanged run materializes nothing, and the later step skips.
        dg.AssetSpec("lake_subscribers", deps=[landing_files], group_name="lake", kinds={"parquet"},
                     description="Typed subscriber snapshots; bad rows quarantined.", skippable=True),
        dg.AssetSpec("lake_events", deps=[landing_files], group_name="lake", kinds={"parquet"},
                     description="De-duplicated event exports.", skippable=True),
    ],
    check_specs=[dg.AssetCheckSpec(
        "quarantine_rate", asset="lake_subscribers",
        description="Share of quarantined rows in each landing file this run ingested (the worst file).")],
    name="ingest",
)
def ingest(context: dg.AssetExecutionContext, config: RefreshConfig, segments: SegmentsResource):
    """Ingest new landing files and choose this run's snapshot (the hold rule applies here)."""
    paths = segments.paths()
    started_at = utc_now()
    params = RunParams(
        run_id=workspace_id(context.run), as_of=parse_as_of(config.as_of) or started_at,
        started_at=started_at, engine=config.engine or segments.engine, force=config.force, full=config.full,
        allow_future=config.allow_future,
        overtaken_ok=context.run.tags.get("segments/trigger") in SCHEDULED_TRIGGERS,
    )
    with _one_line_failure():
        try:
            ctx = prepare(paths, params, in_progress=_runs_in_progress(context),
                          limits=segments.ingest_limits())
        except UserError as error:
            record_failure(paths, params, error)
            raise
    for warning in ctx.warnings:
        context.log.warning(warning)
    # The files this run ingested, whether or not it goes on to publish (not blocking).
    quarantine = [("quarantine_rate", checks.quarantine_rate(ctx, segments.max_quarantine_rate))]
    if ctx.unchanged:
        _observe_unchanged(context, ctx)
        yield from _checked("lake_subscribers", quarantine)
        return
    yield dg.MaterializeResult(asset_key="lake_subscribers", metadata={
        "snapshot": ctx.snapshot_name,
        "dagster/row_count": ctx.snapshot_rows,  # subscribers in the run's snapshot
        "dagster/column_schema": column_schema(pq.read_schema(ctx.snapshot_file)),
        "as_of": as_of_value(ctx),
        "files_ingested": len(ctx.ingested),
        "quarantined_rows": ctx.quarantined_rows,
    })
    yield from _checked("lake_subscribers", quarantine)
    event_files = event_part_files(paths)
    yield dg.MaterializeResult(asset_key="lake_events", metadata={
        "dagster/row_count": sum(pq.read_metadata(f).num_rows for f in event_files),  # events in the lake
        "dagster/column_schema": column_schema(pq.read_schema(event_files[0]) if event_files else pa.schema([])),
        "files_ingested": len(ctx.ingested),
        "as_of": as_of_value(ctx),
    })


def _observe_unchanged(context: dg.AssetExecutionContext, ctx: RunContext):
    """An observation of each asset carrying the last materialization's metadata forward,
    for a run with nothing to publish: the plots keep their values, the freshness policy sees no publish."""
    for key in [*ingest.keys, *segments_and_audiences.keys]:  # every asset of the job
        latest = context.instance.get_latest_materialization_event(key)
        carried = dict(latest.asset_materialization.metadata) if latest and latest.asset_materialization else {}
        context.log_event(dg.AssetObservation(
            asset_key=key, metadata={**carried, "unchanged_since_run": ctx.unchanged_run_id or ""}))


@dg.multi_asset(
    specs=[
        dg.AssetSpec("segment_membership", deps=["lake_subscribers", "lake_events"], group_name="segments",
                     kinds={"duckdb", "polars", "spark"}, skippable=True,
                     description="Every segment evaluated on the run's snapshot and as_of, in one pass per "
                                 "dependency wave."),
        dg.AssetSpec("segment_history", deps=["segment_membership"], group_name="segments", skippable=True,
                     description="Stays (valid_from/valid_to), entered/exited changes and sizes for this run."),
        dg.AssetSpec("audience_recipients", deps=["segment_membership"], group_name="publish", skippable=True,
                     description="Recipients per audience: any include, minus any exclude, minus every "
                                 "non-active subscriber."),
        dg.AssetSpec(
            "analyst_warehouse", deps=["segment_history", "audience_recipients"], group_name="publish",
            kinds={"duckdb"}, skippable=True,
            description="Atomically publishes the new version: warehouse.duckdb and the audience files.",
            # Freshness of the published tables: warn after 2 hours without a
            # publish (hourly runs), fail after 26 (the nightly run was missed).
            freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26),
                                                            warn_window=timedelta(hours=2))),
    ],
    check_specs=[
        dg.AssetCheckSpec("unique_members", asset="segment_membership", blocking=True,
                          description="Each (segment, subscriber_id) pair appears once."),
        dg.AssetCheckSpec("no_sudden_shrink", asset="segment_membership", blocking=True,
                          description="No segment lost more than the configured share of its members since "
                                      "the last publish."),
        dg.AssetCheckSpec("suppression", asset="audience_recipients", blocking=True,
                          description="No suppressed subscriber or address is a recipient, and no address twice "
                                      "in an audience (derived on its own from the snapshot, its quarantine and "
                                      "the suppression list)."),
    ],
    name="segments",
    pool="warehouse_publish",
)
def segments_and_audiences(context: dg.AssetExecutionContext, segments: SegmentsResource):
    """Evaluate, record history, build recipients, check, publish: one version."""
    paths = segments.paths()
    with _one_line_failure():
        run = Run(paths, workspace_id(context.run))
        evaluation = run.evaluate()
    ctx = run.ctx
    counts = evaluation.counts
    table = "| segment | members |\n|---|---:|\n" + "\n".join(f"| {k} | {v:,} |" for k, v in sorted(counts.items()))
    published = published_segments(paths)
    metadata: dict[str, Any] = {
        "dagster/row_count": sum(counts.values()),  # (segment, subscriber_id) pairs
        "dagster/column_schema": column_schema(schemas.MEMBERSHIP),
        **{f"members/{key}": count for key, count in sorted(counts.items())},
        "segments": dg.MetadataValue.md(table),
        "engine": ctx.params.engine,
        "as_of": as_of_value(ctx),
        # engine/incremental.py: whether only subscribers whose inputs changed were re-evaluated
        "evaluation": ctx.mode,
    }
    # The query of each segment whose definition changed since the published run (every
    # query is in the warehouse's `segments.sql`): not ~1 KB per segment on every run.
    edited = {key for key, s in run.project.segments.items()
              if published.get(key, (0, ""))[1] != s.definition_sha256()}
    changed = {key: sql for key, sql in sorted(evaluation.compiled_sql.items()) if key in edited}
    if changed:
        metadata["compiled_sql"] = dg.MetadataValue.md(
            "\n\n".join(f"**{key}**\n```sql\n{sql}\n```" for key, sql in changed.items()))
    yield dg.MaterializeResult(asset_key="segment_membership", metadata=metadata)

    shrink = checks.no_sudden_shrink(published, counts, segments.max_segment_shrink, segments.block_on_shrink)
    yield from _checked("segment_membership", [("unique_members", checks.unique_members(evaluation.flags)),
                                               ("no_sudden_shrink", shrink)])

    with _one_line_failure():
        history = run.history(evaluation.flags)
        recipients = run.recipients(evaluation.flags)
    sizes = [(r["segment"], r["members"], r["entered"], r["exited"]) for r in history.sizes.to_pylist()]
    rows = [f"| {s} | {m:,} | +{e:,} | -{x:,} |" for s, m, e, x in sizes]
    yield dg.MaterializeResult(asset_key="segment_history", metadata={
        "changes": dg.MetadataValue.md("| segment | members | entered | exited |\n|---|---:|---:|---:|\n"
                                       + "\n".join(rows)),
        # This run's changes; the stays relation's size is not counted, so no dagster/row_count.
        "entered": history.entered,
        "exited": history.exited,
        **{f"entered/{s}": e for s, _, e, _ in sizes},
        **{f"exited/{s}": x for s, _, _, x in sizes},
        "dagster/column_schema": column_schema(schemas.HISTORY),
        "as_of": as_of_value(ctx),
    })

    recipients_file = run.workspace.recipients_file
    held = pq.read_table(recipients_file, columns=["audience"], filters=[("group", "=", "holdout")])
    holdout = {row["values"]: row["counts"] for row in pc.value_counts(held["audience"]).to_pylist()}
    yield dg.MaterializeResult(asset_key="audience_recipients", metadata={
        "dagster/row_count": sum(recipients.values()),  # rows of `recipients`, every audience
        "dagster/column_schema": column_schema(pq.read_schema(recipients_file)),
        **{f"recipients/{key}": n for key, n in sorted(recipients.items())},
        **{f"holdout/{key}": holdout.get(key, 0) for key in sorted(recipients)},
        "audiences": dg.MetadataValue.md("| audience | recipients |\n|---|---:|\n" + "\n".join(
            f"| {a} | {n:,} |" for a, n in sorted(recipients.items()))),
        "as_of": as_of_value(ctx),
    })
    yield from _checked("audience_recipients",
                        [("suppression", checks.suppression(recipients_file, run.subscribers, run.suppressions))])

    with _one_line_failure():
        result = run.publish(evaluation, history, keep_versions=segments.keep_versions)
    relations = relation_schemas(paths)
    yield dg.MaterializeResult(asset_key="analyst_warehouse", metadata={
        "warehouse": dg.MetadataValue.path(str(paths.warehouse)),
        "run_id": run.run_id,
        "as_of": as_of_value(ctx),
        "version": result.version if result is not None else "",
        # The analyst relations' columns, as the published catalog has them.
        "dagster/column_schema": relations.pop("segments", dg.TableSchema(columns=[])),
        **{f"schema/{name}": schema for name, schema in sorted(relations.items())},
    })


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The columns readers see (lake files keep internal `_`-prefixed columns beside them)."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type))
                                   for f in schema if not f.name.startswith("_")])


def as_of_value(ctx: RunContext) -> dg.TimestampMetadataValue:
    """The run's clock (naive UTC) as a timestamp: the UI shows it in the viewer's time zone."""
    return dg.MetadataValue.timestamp(ctx.params.as_of.replace(tzinfo=UTC))


def published_segments(paths: Paths) -> dict[str, tuple[int, str]]:
    """segment -> (members, definition sha256) as last published; empty before the first publish."""
    if not paths.warehouse.exists():
        return {}
    with open_warehouse(paths) as con:
        rows = con.execute("SELECT segment, members, definition_sha256 FROM segments").fetchall()
    return {segment: (members, sha) for segment, members, sha in rows}


def relation_schemas(paths: Paths) -> dict[str, dg.TableSchema]:
    """Column schemas of the published warehouse's relations, as the catalog has them."""
    with open_warehouse(paths) as con:
        rows = con.execute(
            """SELECT table_name, list(column_name ORDER BY ordinal_position),
                      list(data_type ORDER BY ordinal_position)
               FROM information_schema.columns WHERE table_schema = 'main' GROUP BY table_name""").fetchall()
    return {table: dg.TableSchema(columns=[dg.TableColumn(c, k) for c, k in zip(names, kinds, strict=True)])
            for table, names, kinds in rows}
