"""What the assets record in Dagster besides their results: column schemas, the
run's clock, which definitions changed, holdout counts. Read-only helpers."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core.settings import Paths
from ..publish.catalog import open_warehouse


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The columns readers see (lake files keep internal `_`-prefixed columns beside them)."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema if not f.name.startswith("_")])


def as_of_value(ctx) -> dg.TimestampMetadataValue:
    """The run's clock as a timestamp (the UI shows it in the viewer's time zone)."""
    as_of = ctx.params.as_of
    return dg.MetadataValue.timestamp(as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))


def event_rows(files: list[Path]) -> int:
    return sum(pq.read_metadata(f).num_rows for f in files)


def edited_segments(paths: Paths, definitions: dict[str, str]) -> set[str]:
    """Keys of `definitions` (segment -> definition sha256) that the published warehouse
    lacks or has with another definition: every key before the first publish."""
    if not Path(paths.warehouse).exists():
        return set(definitions)
    with open_warehouse(paths) as con:
        published = dict(con.execute("SELECT segment, definition_sha256 FROM segments").fetchall())
    return {key for key, sha in definitions.items() if published.get(key) != sha}


def holdout_counts(recipients_file: Path) -> dict[str, int]:
    """Recipients per audience in the `holdout` group."""
    table = pq.read_table(recipients_file, columns=["audience", "group"])
    held = table.filter(pc.equal(table.column("group"), "holdout"))
    counts = held.group_by("audience").aggregate([([], "count_all")])
    return dict(zip(counts.column("audience").to_pylist(), counts.column("count_all").to_pylist(), strict=True))


def relation_schemas(paths: Paths) -> dict[str, dg.TableSchema]:
    """Column schemas of the published warehouse's relations, as the catalog has them."""
    with open_warehouse(paths) as con:
        rows = con.execute(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_schema = 'main' ORDER BY table_name, ordinal_position""").fetchall()
    columns: dict[str, list[dg.TableColumn]] = {}
    for table, column, kind in rows:
        columns.setdefault(table, []).append(dg.TableColumn(column, kind))
    return {table: dg.TableSchema(columns=cols) for table, cols in columns.items()}
