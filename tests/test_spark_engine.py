"""The `spark` engine on real Spark (local mode): the same membership as DuckDB and
the pure-Python reference, on the engine tests' fixtures and on random
definitions, through the whole Dagster job, and from Parquet files.

One Spark session at a time (`spark` fixture, `local[1]`, one shuffle
partition, no UI); the JVM only runs its quick compiler tier (C1) and the serial
GC, which halves Spark's warm-up on a small machine and changes nothing Spark
computes. The tests that take `spark` run twice: on an in-process session, then
through a Spark Connect server the test session starts (issue 23; skipped, with
the reason, without the Connect client). Every Spark evaluation here puts many segments (and,
for the random ones, several scenarios) into ONE evaluation: a Spark query
costs the same for one segment or a hundred.

The dialect gaps each have a test: list overlap (`ARRAYS_OVERLAP`, not `&&`),
lambdas (`TRANSFORM(tags, tag -> LOWER(tag))`), case-insensitive comparison
(Spark's `lower` over the generators' alphabet), timestamp windows and UTC dates
(edges to the microsecond; independent of the session time zone), literal `%`
and `_` (no `LIKE` anywhere), `COUNT(*) FILTER (WHERE ...)`, and lists holding
NULL elements (Spark's `ARRAYS_OVERLAP` returns NULL there; the compiled
`COALESCE` keeps the logic two-valued).

Skipped, with the reason, only when pyspark is not installed (`make setup-spark`
installs it with the `spark` extra); the tests of the missing-pyspark error and
of the session settings always run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import date, datetime

import dagster as dg
import duckdb
import pyarrow as pa
import pytest
import test_engine_differential as differential
import test_engine_operators as operators
from conftest import AS_OF as PIPELINE_AS_OF
from conftest import EVENTS_CSV, write_project
from engine_support import (
    CATALOG,
    EventFilter,
    FieldFilter,
    Group,
    Segment,
    SegmentFilter,
    engine_membership,
    event_table,
    one_filter_segment,
    project_of,
    subscriber_table,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import reference_membership
from typer.testing import CliRunner

from pipelines.engine import ALL_ENGINES, evaluate
from pipelines.engine.spark_session import (
    DEFAULT_MASTER,
    ENV_MASTER,
    ENV_REMOTE,
    INSTALL_HINT,
    get_spark_session,
    spark_settings,
)
from pipelines.errors import UserError
from pipelines.segments.model import Project
from pipelines.segments.plan import build_plan

SPARK_TEST_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.ui.enabled": "false",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


# Both start a JVM, so every test that takes `spark` is `slow` (left out by `-m "not slow"`).
@pytest.fixture(scope="session", params=[pytest.param("classic", marks=pytest.mark.slow),
                                         pytest.param("connect", marks=pytest.mark.slow)])
def spark(request):
    """The process's Spark session: first in-process (`local[1]`), then, for the same
    tests, a Spark Connect session on a server the test session starts
    (conftest.spark_connect_url), reached the way production is told to:
    SEGMENTS_SPARK_REMOTE. The engine code is the same on both."""
    pytest.importorskip("pyspark", reason="pyspark is not installed: `make setup-spark` (pip install -e '.[dev,spark]')")
    if request.param == "classic":
        session = get_spark_session(master="local[1]", conf=SPARK_TEST_CONF)
        yield session
        session.stop()  # the next get_spark_session builds a new one
        return
    url = request.getfixturevalue("spark_connect_url")
    with pytest.MonkeyPatch.context() as env:
        env.delenv(ENV_MASTER, raising=False)
        env.setenv(ENV_REMOTE, url)
        session = get_spark_session()
        assert type(session).__module__.startswith("pyspark.sql.connect"), type(session)
        yield session
        session.stop()  # the next get_spark_session builds a new one


Membership = set[tuple[str, str]]


def spark_and_duckdb(project: Project, subscribers: list[dict], events: list[dict], as_of: datetime,
                     reference: bool = True) -> Membership:
    """Membership from Spark, asserting DuckDB (and the reference) give exactly the same."""
    subs, evs = subscriber_table(subscribers, project.catalog), event_table(events, project.catalog)
    got = engine_membership(project, subs, evs, as_of, "spark")
    expected = {"duckdb": engine_membership(project, subs, evs, as_of, "duckdb")}
    if reference:
        expected["reference"] = reference_membership(project, subscribers, events, as_of)
    for name, want in expected.items():
        assert got == want, (f"spark disagrees with {name}:\n  missing {sorted(want - got)}\n"
                             f"  extra   {sorted(got - want)}")
    return got


def rows(table: pa.Table) -> Membership:
    return set(zip(table.column("segment").to_pylist(), table.column("subscriber_id").to_pylist(), strict=True))


def members_of(membership: Membership, key: str) -> set[str]:
    return {sid for segment, sid in membership if segment == key}


# --------------------------------------------------------------------------- the operator tables, in one pass

def operator_segments(fields: set[str] | None = None) -> tuple[list[Segment], dict[str, set[str]]]:
    """Every case of tests/test_engine_operators.py as one segment, with its
    hand-worked members (at operators.AS_OF). With `fields`: only the field cases on
    those fields, and the event cases (a smaller query for the narrower tests)."""
    segments, expected = [], {}
    for i, (name, op, value, members) in enumerate(operators.FIELD_CASES):
        if fields is not None and name not in fields:
            continue
        segments.append(one_filter_segment(f"field_{i}", FieldFilter(field=name, op=op, value=value)))
        expected[f"field_{i}"] = members
    for i, (spec, members) in enumerate(operators.EVENT_CASES):
        f = EventFilter(**{"event": "purchase", "op": "performed", **spec})
        segments.append(one_filter_segment(f"event_{i}", f))
        expected[f"event_{i}"] = members
    if fields is not None:
        return segments, expected
    ny, over_30 = operators.NY, operators.OVER_30
    for match, members in (("all", {"bob"}), ("any", {"ann", "bob"}), ("none", {"cy", "dee"})):
        segments.append(operators.segment(f"group_{match}", Group(match=match, filters=(ny, over_30))))
        expected[f"group_{match}"] = members
    segments += [
        one_filter_segment("ny", ny),
        one_filter_segment("not_ny", SegmentFilter(segment="ny", op="is_not")),
        operators.segment("older_not_ny", Group(filters=(
            SegmentFilter(segment="not_ny", op="is"), FieldFilter(field="age", op="lt", value=30)))),
        operators.segment("either", Group(match="any", filters=(
            SegmentFilter(segment="ny", op="is"), SegmentFilter(segment="older_not_ny", op="is")))),
    ]
    expected.update(ny={"ann", "bob"}, not_ny={"cy", "dee"}, older_not_ny={"cy"}, either={"ann", "bob", "cy"})
    return segments, expected


def test_operator_tables_agree_with_duckdb_and_the_hand_worked_members(spark):
    segments, expected = operator_segments()
    project = project_of(*segments)
    assert len(build_plan(project, operators.AS_OF).waves) == 4  # references really span waves
    membership = spark_and_duckdb(project, operators.SUBSCRIBERS, operators.EVENTS, operators.AS_OF)
    wrong = {key: (members_of(membership, key), want) for key, want in expected.items()
             if members_of(membership, key) != want}
    assert not wrong, wrong


def test_operator_tables_at_a_midnight_as_of(spark):
    # as_of - N days lands exactly on midnight: date values sit on the window edge.
    segments, _ = operator_segments({"birthday", "created_at", "last_login"})
    membership = spark_and_duckdb(project_of(*segments), operators.SUBSCRIBERS, operators.EVENTS,
                                  datetime(2026, 3, 1))
    assert "bob" in members_of(membership, "field_" + str(operators.FIELD_CASES.index(
        ("birthday", "in_last_days", 31, {"bob"}))))


def test_integers_beyond_doubles_compare_exactly(spark):
    """Issue 18 (9): the cases of tests/test_engine_operators.py, Spark against DuckDB and the reference."""
    segments = [one_filter_segment(f"big_{i}", FieldFilter(field=name, op=op, value=value))
                for i, (name, op, value, _members) in enumerate(operators.BIG_CASES)]
    membership = spark_and_duckdb(project_of(*segments), operators.BIG_SUBSCRIBERS, [], operators.AS_OF)
    for i, (_name, _op, _value, members) in enumerate(operators.BIG_CASES):
        assert members_of(membership, f"big_{i}") == members, operators.BIG_CASES[i]


# --------------------------------------------------------------------------- random definitions

def _renamed(segment: Segment, prefix: str) -> Segment:
    groups = tuple(
        g.model_copy(update={"filters": tuple(
            f.model_copy(update={"segment": prefix + f.segment}) if isinstance(f, SegmentFilter) else f
            for f in g.filters)})
        for g in segment.groups
    )
    return segment.model_copy(update={"key": prefix + segment.key, "name": prefix + segment.key, "groups": groups})


@st.composite
def merged_scenarios(draw):
    """1-5 scenarios of tests/test_engine_differential.py (same generators: NULLs, empty
    lists, mixed case, unicode, quotes, %, _, window edges, events after as_of, ...)
    at one as_of, merged into one project: subscriber and event ids and segment keys
    get a per-scenario prefix. Every segment is evaluated over everyone."""
    as_of = draw(st.sampled_from(differential.AS_OFS))
    subscribers: list[dict] = []
    events: list[dict] = []
    segments: dict[str, Segment] = {}
    for j in range(draw(st.integers(1, 5))):
        subs = draw(differential.subscriber_rows(as_of))
        evs = draw(differential.event_rows(as_of, [s["subscriber_id"] for s in subs]))
        project = draw(differential.projects(as_of, subs, evs))
        subscribers += [{**s, "subscriber_id": f"{j}:{s['subscriber_id']}"} for s in subs]
        events += [{**e, "event_id": f"{j}:{e['event_id']}", "subscriber_id": f"{j}:{e['subscriber_id']}"}
                   for e in evs]
        for seg in project.segments.values():
            renamed = _renamed(seg, f"x{j}_")
            segments[renamed.key] = renamed
    return Project(catalog=CATALOG, segments=segments), subscribers, events, as_of


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(scenario=merged_scenarios())
def test_random_definitions_agree(spark, scenario):
    project, subscribers, events, as_of = scenario
    spark_and_duckdb(project, subscribers, events, as_of)


# --------------------------------------------------------------------------- dialect gaps, one by one

def test_spark_text_uses_spark_forms(spark):
    from pipelines.engine.spark_engine import spark_flags_sql

    project = project_of(
        one_filter_segment("a", FieldFilter(field="tags", op="has_any", value=("VIP",))),
        one_filter_segment("b", FieldFilter(field="tags", op="has_all", value=("VIP", "x"))),
        one_filter_segment("c", FieldFilter(field="first_name", op="contains", value="5%_")),
        one_filter_segment("d", FieldFilter(field="first_name", op="starts_with", value="a_")),
        one_filter_segment("e", FieldFilter(field="created_at", op="on", value=date(2026, 3, 1))),
        one_filter_segment("f", EventFilter(event="purchase", op="performed", in_last_days=30)),
    )
    text = spark_flags_sql(project, build_plan(project, operators.AS_OF))
    assert "ARRAYS_OVERLAP(TRANSFORM(tags, tag -> REPLACE(TRANSLATE(REPLACE(tag, 'İ', 'i'), 'ABC" in text
    assert "LOWER(" not in text  # the JVM's Unicode tables are newer than case.py's
    assert "&&" not in text and "@>" not in text
    assert "LIKE" not in text.upper() and "ESCAPE" not in text.upper()
    assert "COUNT(*) FILTER(WHERE" in text
    assert "CAST('2026-03-01 12:00:00' AS TIMESTAMP_NTZ)" in text
    assert "CAST(created_at AS DATE)" in text
    spark_and_duckdb(project, operators.SUBSCRIBERS, operators.EVENTS, operators.AS_OF)  # and it runs


# The same JVM string functions on both kinds of session; 140k rows: run once.
@pytest.mark.slow  # an explicit `spark` parameter drops the fixture's marks
@pytest.mark.parametrize("spark", ["classic"], indirect=True)
def test_spark_folds_case_like_the_other_engines(spark):
    """Case-insensitive matching folds text in Spark as in DuckDB, Polars and the
    reference (pipelines/segments/case.py), over the differential generators'
    alphabet, the characters the engines' own lower-casing disagrees on, and every
    character of the first two Unicode planes."""
    from reference import fold
    from sqlglot import exp

    from pipelines.segments.dialects import fold_sql, render

    # Every code point up to U+1FFFF: 'Ꟛ' (U+A7CB, Unicode 16) was lower-cased by Spark only (issue 18, 10).
    letters = [chr(c) for c in range(0x20000) if not 0xD800 <= c <= 0xDFFF]
    samples = [*differential.ALPHABET, *differential.WORDS, *differential.TAGS, "İ", "ΑΣ", "ΑΣ Β", "ς", *letters,
               *(f"Α{c}" for c in letters[:0x2000])]
    frame = spark.createDataFrame(pa.table({"i": list(range(len(samples))), "s": samples}))
    folded = render(fold_sql(exp.column("s")), "spark")
    lowered = [row[0] for row in frame.selectExpr(folded, "i").orderBy("i").collect()]
    assert lowered == [fold(s) for s in samples]


NULL_LISTS = [
    {"subscriber_id": "only_null", "email": "a@x", "status": "active", "tags": [None]},
    {"subscriber_id": "null_and_vip", "email": "b@x", "status": "active", "tags": [None, "VIP"]},
    {"subscriber_id": "null_and_other", "email": "c@x", "status": "active", "tags": ["other", None]},
    {"subscriber_id": "empty", "email": "d@x", "status": "active", "tags": []},
    {"subscriber_id": "missing", "email": "e@x", "status": "active", "tags": None},
    {"subscriber_id": "vip", "email": "f@x", "status": "active", "tags": ["vip", "Other"]},
]


def test_lists_with_null_elements_stay_two_valued(spark):
    """Spark's ARRAYS_OVERLAP is NULL when there is no common element and a NULL
    element; ARRAY_EXCEPT keeps b's elements missing from a NULL-holding a. Both engines
    must still put every subscriber in exactly one of has_any / has_none."""
    ops = [("has_any", ("vip",)), ("has_none", ("vip",)), ("has_all", ("vip", "other")),
           ("has_any", ("other", "nope")), ("has_none", ("other", "nope")), ("is_set", None), ("is_not_set", None)]
    project = project_of(*(one_filter_segment(f"s{i}", FieldFilter(field="tags", op=op, value=value))
                           for i, (op, value) in enumerate(ops)))
    # The reference drops NULL elements before is_set; the engines count them (size 1):
    # compare the engines with each other here, and with the reference without is_set.
    membership = spark_and_duckdb(project, NULL_LISTS, [], operators.AS_OF, reference=False)
    everyone = {r["subscriber_id"] for r in NULL_LISTS}
    for positive, negative in (("s0", "s1"), ("s3", "s4"), ("s5", "s6")):
        pos, neg = members_of(membership, positive), members_of(membership, negative)
        assert pos | neg == everyone and not pos & neg, (positive, pos, neg)
    assert members_of(membership, "s0") == {"null_and_vip", "vip"}
    assert members_of(membership, "s2") == {"vip"}
    assert members_of(membership, "s3") == {"null_and_other", "vip"}
    without_is_set = project_of(*(s for s in project.segments.values() if s.key not in ("s5", "s6")))
    spark_and_duckdb(without_is_set, NULL_LISTS, [], operators.AS_OF)


def test_result_does_not_depend_on_the_session_time_zone(spark):
    """Timestamps are TIMESTAMP_NTZ end to end, so even a session someone switched to
    another zone gives the UTC answers (dates and windows at the edges)."""
    cases = [c for c in operators.FIELD_CASES if c[0] in ("created_at", "last_login", "birthday")]
    project = project_of(*(one_filter_segment(f"t{i}", FieldFilter(field=n, op=o, value=v))
                           for i, (n, o, v, _) in enumerate(cases)))
    subs, evs = subscriber_table(operators.SUBSCRIBERS), event_table(operators.EVENTS)
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    try:
        got = engine_membership(project, subs, evs, operators.AS_OF, "spark")
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    for i, (_, _, _, want) in enumerate(cases):
        assert members_of(got, f"t{i}") == want, cases[i]


def test_concurrent_evaluations_do_not_share_views(spark):
    """Each evaluation registers its own temporary views on the shared session."""
    project = project_of(one_filter_segment("ny", operators.NY))
    inputs = {
        "first": [{"subscriber_id": "a", "email": "a@x", "status": "active", "state": "NY"}],
        "second": [{"subscriber_id": "b", "email": "b@x", "status": "active", "state": "ny"},
                   {"subscriber_id": "c", "email": "c@x", "status": "active", "state": "CA"}],
    }
    results: dict[str, pa.Table] = {}

    def run(name: str) -> None:
        results[name] = evaluate(project, subscriber_table(inputs[name]), event_table([]), operators.AS_OF,
                                 engine="spark")

    threads = [threading.Thread(target=run, args=(name,)) for name in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["first"].column("subscriber_id").to_pylist() == ["a"]
    assert results["second"].column("subscriber_id").to_pylist() == ["b"]
    assert not [t.name for t in spark.catalog.listTables() if t.name.startswith("segments_")]


def test_flags_shape(spark):
    """The wide shape: subscriber_id sorted, one never-NULL boolean column per segment in
    key order; its long form is the membership DuckDB gives."""
    from pipelines.engine import evaluate_flags

    segments, _ = operator_segments({"state", "tags"})
    project = project_of(*segments, one_filter_segment("ny", operators.NY),
                         one_filter_segment("a_not_ny", SegmentFilter(segment="ny", op="is_not")))
    subs, evs = subscriber_table(operators.SUBSCRIBERS), event_table(operators.EVENTS)
    flags = evaluate_flags(project, subs, evs, operators.AS_OF, engine="spark")
    keys = sorted(project.segments)
    assert flags.column_names == ["subscriber_id", *(f"segment:{k}" for k in keys)]
    ids = flags.column("subscriber_id").to_pylist()
    assert ids == sorted({r["subscriber_id"] for r in operators.SUBSCRIBERS})
    assert all(flags.column(c).type == pa.bool_() and flags.column(c).null_count == 0 for c in flags.column_names[1:])
    long = {(k, sid) for k in keys for sid, flag in zip(ids, flags.column(f"segment:{k}").to_pylist(), strict=True)
            if flag}
    assert long == engine_membership(project, subs, evs, operators.AS_OF, "duckdb")
    only_ids = evaluate_flags(Project(catalog=CATALOG), subs, evs, operators.AS_OF, engine="spark")
    assert only_ids.column_names == ["subscriber_id"] and only_ids.column(0).to_pylist() == ids


def test_empty_inputs_and_empty_project(spark):
    project = project_of(one_filter_segment("ny", operators.NY),
                         one_filter_segment("buyers", EventFilter(event="purchase", op="performed")))
    none = evaluate(project, subscriber_table([]), event_table([]), operators.AS_OF, engine="spark")
    assert none.schema.names == ["segment", "subscriber_id"] and none.num_rows == 0
    empty = evaluate(Project(catalog=CATALOG), subscriber_table([]), event_table([]), operators.AS_OF,
                     engine="spark")
    assert empty.num_rows == 0


# --------------------------------------------------------------------------- the whole pipeline

WAREHOUSE_QUERIES = {
    "segment_membership": "SELECT segment, subscriber_id FROM segment_membership ORDER BY ALL",
    "segments": "SELECT segment, name, definition_sha256, members, sql FROM segments ORDER BY ALL",
    "history": "SELECT segment, subscriber_id, valid_from, valid_to FROM segment_membership_history ORDER BY ALL",
    "changes": "SELECT as_of, segment, subscriber_id, change FROM membership_changes ORDER BY ALL",
    "sizes": "SELECT as_of, segment, members, entered, exited FROM segment_sizes ORDER BY ALL",
    "recipients": "SELECT * EXCLUDE (run_id) FROM recipients ORDER BY ALL",
    "subscribers": "SELECT * FROM subscribers ORDER BY subscriber_id",
}


def warehouse_state(paths) -> dict[str, list[tuple]]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return {name: con.execute(sql).fetchall() for name, sql in WAREHOUSE_QUERIES.items()}


def test_refresh_job_on_spark_publishes_what_duckdb_publishes(spark, tmp_path, monkeypatch):
    from pipelines import engine
    from pipelines.engine.spark_engine import evaluate_spark
    from pipelines.runner import execute_refresh

    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        return evaluate_spark(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate_spark", spy)  # what engine.evaluate calls
    duck_paths = write_project(tmp_path / "duckdb")
    spark_paths = write_project(tmp_path / "spark")
    with dg.instance_for_test() as instance:
        assert execute_refresh(duck_paths, as_of=PIPELINE_AS_OF, engine="duckdb", instance=instance).status \
            == "published"
        summary = execute_refresh(spark_paths, as_of=PIPELINE_AS_OF, engine="spark", instance=instance)
        assert summary.status == "published"
        assert instance.get_run_by_id(summary.ctx.params.run_id).is_success
    assert len(calls) == 1  # Spark really evaluated the run
    duck, spark_state = warehouse_state(duck_paths), warehouse_state(spark_paths)
    assert spark_state["segment_membership"] and spark_state["recipients"]  # not vacuous
    for name in WAREHOUSE_QUERIES:
        assert spark_state[name] == duck[name], name


def test_an_empty_events_file_between_others_loses_no_events(spark, tmp_path):
    """Regression (operations soak, seed 101, first run): a 0-row events file landed
    between others made every event filter see no events on Spark (pyspark dropped the
    rows after a 0-row Arrow batch), while DuckDB counted them. Real landing files of
    every size, the real job, `--full`: Spark publishes what DuckDB publishes."""
    import gzip

    from pipelines.runner import execute_refresh

    header, *lines = EVENTS_CSV.strip().splitlines()
    states = {}
    for engine in ("duckdb", "spark"):
        paths = write_project(tmp_path / engine, events="\n".join([header, *lines[:3]]) + "\n")
        landing = paths.data / "landing" / "events"
        (landing / "events_20261127T051000Z.csv.gz").write_bytes(gzip.compress((header + "\n").encode()))
        (landing / "events_20261127T052000Z.csv").write_text("\n".join([header, lines[3]]) + "\n")
        (landing / "events_20261127T053000Z.csv").write_text("\n".join([header, *lines[4:]]) + "\n")
        with dg.instance_for_test() as instance:
            assert execute_refresh(paths, as_of=PIPELINE_AS_OF, full=True, engine=engine,
                                   instance=instance).status == "published"
        states[engine] = warehouse_state(paths)
    members = {segment for segment, _ in states["duckdb"]["segment_membership"]}
    assert {"active_users", "engaged_subscribers"} <= members  # event filters with members: not vacuous
    for name in WAREHOUSE_QUERIES:
        assert states["spark"][name] == states["duckdb"][name], name


# --------------------------------------------------------------------------- without pyspark, settings

def test_missing_pyspark_is_one_clear_line(tmp_path, monkeypatch):
    """No pyspark: `evaluate(engine="spark")` and `segments run --engine spark` fail
    with one UserError line telling how to install it (no traceback)."""
    from pipelines.cli import app

    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` now raises ImportError
    project = project_of(one_filter_segment("ny", operators.NY))
    with pytest.raises(UserError) as error:
        evaluate(project, subscriber_table(operators.SUBSCRIBERS), event_table([]), operators.AS_OF, engine="spark")
    assert str(error.value) == INSTALL_HINT
    assert "spark" in ALL_ENGINES

    paths = write_project(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    result = CliRunner().invoke(app, ["run", "--engine", "spark", "--as-of", PIPELINE_AS_OF,
                                      "--defs", str(paths.defs), "--data", str(paths.data)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install" in lines[0] and "pyspark" in lines[0], result.stderr


def test_session_settings_from_environment():
    local = spark_settings(env={})
    assert local.master == DEFAULT_MASTER and local.remote is None and local.is_local
    assert local.conf["spark.sql.session.timeZone"] == "UTC"
    assert local.conf["spark.sql.shuffle.partitions"] == "4"

    cluster = spark_settings(env={ENV_MASTER: "spark://head:7077"})
    assert cluster.master == "spark://head:7077" and not cluster.is_local
    assert "spark.sql.shuffle.partitions" not in cluster.conf  # the cluster's own default
    assert spark_settings(env={ENV_MASTER: "yarn"}).master == "yarn"
    assert spark_settings(env={ENV_MASTER: "k8s://https://k8s.example:443"}).master.startswith("k8s://")

    # Under spark-submit (it sets PYSPARK_GATEWAY_PORT), its --master and --conf decide.
    launched = spark_settings(env={"PYSPARK_GATEWAY_PORT": "40000"})
    assert launched.master is None and launched.remote is None and not launched.is_local
    assert launched.conf == {"spark.sql.session.timeZone": "UTC", "spark.sql.parser.escapedStringLiterals": "false"}
    assert spark_settings(env={"PYSPARK_GATEWAY_PORT": "40000", ENV_MASTER: "yarn"}).master == "yarn"

    remote = spark_settings(env={ENV_REMOTE: "sc://spark.example:15002"})
    assert remote.remote == "sc://spark.example:15002" and remote.master is None

    # Arguments win over the environment; the time zone cannot be configured away.
    chosen = spark_settings(master="local[1]", conf={"spark.sql.session.timeZone": "Europe/Paris",
                                                     "spark.sql.shuffle.partitions": 1},
                            env={ENV_MASTER: "yarn"})
    assert chosen.master == "local[1]" and chosen.conf["spark.sql.session.timeZone"] == "UTC"
    assert chosen.conf["spark.sql.shuffle.partitions"] == "1"

    with pytest.raises(UserError, match="not both"):
        spark_settings(env={ENV_MASTER: "yarn", ENV_REMOTE: "sc://x:15002"})
    with pytest.raises(UserError, match="not a master URL"):
        spark_settings(env={ENV_MASTER: "http://head:8080"})
    with pytest.raises(UserError, match="sc://"):
        spark_settings(env={ENV_REMOTE: "head:15002"})


def test_one_session_per_process(spark):
    assert get_spark_session() is spark
    assert get_spark_session(master="yarn") is spark  # later arguments do not rebuild it
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.parser.escapedStringLiterals") == "false"


def test_spark_connect_problems_are_one_user_error(tmp_path):
    """SEGMENTS_SPARK_REMOTE without the Connect client (or without a server) is one
    UserError line (a fresh process: this one already has a classic session)."""
    pytest.importorskip("pyspark", reason="pyspark is not installed: `make setup-spark` (pip install -e '.[dev,spark]')")
    script = tmp_path / "connect.py"
    script.write_text(
        "from pipelines.engine.spark_session import get_spark_session\n"
        "from pipelines.errors import UserError\n"
        "try:\n"
        "    get_spark_session()\n"
        "except UserError as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, ENV_REMOTE: "sc://127.0.0.1:9"}  # port 9 (discard): nothing listens
    env.pop(ENV_MASTER, None)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert "pip install 'pyspark[connect]" in line or line.startswith("could not start Spark on sc://"), line
