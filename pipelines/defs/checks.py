"""Asset checks. The blocking ones stop a bad state from being published."""


import dagster as dg

from .. import refresh
from ..publish.catalog import open_warehouse
from .assets import audience_recipients, count_nonunique, segment_membership, workspace_id
from .resources import SegmentsResource


def _workspace(context, segments: SegmentsResource) -> tuple[refresh.RunContext, refresh.RunWorkspace]:
    ws = refresh.RunWorkspace(segments.paths(), workspace_id(context.run))
    return ws.load_context(), ws


@dg.asset_check(asset="lake_subscribers",
                description="Share of quarantined rows in each landing file this run ingested (the worst file).")
def quarantine_rate(context: dg.AssetCheckExecutionContext, segments: SegmentsResource) -> dg.AssetCheckResult:
    ctx, _ = _workspace(context, segments)
    # Per file: a small export with most rows bad must not hide behind a large good snapshot.
    rates = {name: quarantined / (loaded + quarantined)
             for name, (loaded, quarantined) in ctx.row_counts.items() if loaded + quarantined}
    worst = max(rates, key=rates.get) if rates else None
    rate = rates[worst] if worst else 0.0
    passed = rate <= segments.max_quarantine_rate
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if passed else (f"{rate:.0%} of the rows of {worst} were quarantined "
                                         f"(threshold {segments.max_quarantine_rate:.0%}); see the quarantine relation"),
        metadata={"quarantined_rows": ctx.quarantined_rows, "rate": rate, "worst_file": worst or "",
                  "threshold": segments.max_quarantine_rate},
    )


@dg.asset_check(asset=segment_membership, blocking=True,
                description="Each (segment, subscriber_id) pair appears once.")
def unique_members(context: dg.AssetCheckExecutionContext, segments: SegmentsResource) -> dg.AssetCheckResult:
    from ..engine.flags import flags_to_membership, is_sorted_unique

    ctx, ws = _workspace(context, segments)
    if ctx.unchanged:
        return dg.AssetCheckResult(passed=True, metadata={"unchanged": True})
    flags = ws.load_flags()
    # Flags hold one row per subscriber: pairs can only repeat if subscriber ids do.
    duplicates = 0 if is_sorted_unique(flags.column("subscriber_id")) else count_nonunique(
        flags_to_membership(flags), ["segment", "subscriber_id"])
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_pairs": duplicates})


@dg.asset_check(asset=segment_membership, blocking=True,
                description="No segment lost more than the configured share of its members since the last publish.")
def no_sudden_shrink(context: dg.AssetCheckExecutionContext, segments: SegmentsResource) -> dg.AssetCheckResult:
    ctx, ws = _workspace(context, segments)
    severity = dg.AssetCheckSeverity.ERROR if segments.block_on_shrink else dg.AssetCheckSeverity.WARN
    paths = segments.paths()
    if ctx.unchanged or not paths.warehouse.exists():
        return dg.AssetCheckResult(passed=True, severity=severity)
    with open_warehouse(paths) as con:
        before = dict(con.execute("SELECT segment, members FROM segments").fetchall())
    from ..engine.flags import member_counts

    now = member_counts(ws.load_flags())
    shrunk = {
        key: (old, now.get(key, 0))
        for key, old in before.items()
        if old > 0 and key in now and now[key] < old * (1 - segments.max_segment_shrink)
    }
    listing = ", ".join(f"{k}: {a:,} -> {b:,}" for k, (a, b) in sorted(shrunk.items()))
    return dg.AssetCheckResult(
        passed=not shrunk,
        severity=severity,
        description=f"segments that shrank: {listing}" if shrunk else None,
        metadata={"shrunk_segments": len(shrunk), "threshold": segments.max_segment_shrink},
    )


@dg.asset_check(asset=audience_recipients, blocking=True,
                description="No suppressed subscriber or address is a recipient, and no address twice in an "
                            "audience (derived on its own from the snapshot, its quarantine and the "
                            "suppression list).")
def suppression(context: dg.AssetCheckExecutionContext, segments: SegmentsResource) -> dg.AssetCheckResult:
    from ..publish.audiences import suppression_violations

    ctx, ws = _workspace(context, segments)
    if ctx.unchanged:
        return dg.AssetCheckResult(passed=True, metadata={"unchanged": True})
    project = refresh.load_valid_project(segments.paths())
    subscribers = refresh.run_subscribers(segments.paths(), ctx, project, ["subscriber_id", "status", "email"])
    violations = suppression_violations(ws.recipients_file, subscribers, refresh.run_suppressions(segments.paths(), ctx))
    return dg.AssetCheckResult(passed=violations == 0, metadata={"suppressed_recipients": violations})


ALL_CHECKS = [quarantine_rate, unique_members, no_sudden_shrink, suppression]
