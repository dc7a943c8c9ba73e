"""Input and output tables of an evaluation, as Arrow.

Inputs are typed by the field catalog; `conform` makes a table carry every
catalog column an evaluation reads, with the catalog's Arrow type, so both
engines see exactly the same data whatever the producer did (e.g. a column of
an optional field absent from the landing file is all missing; `large_string`
from Polars becomes `string`). Extra columns are dropped: nothing reads them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from ..errors import UserError

MEMBERSHIP_SCHEMA = pa.schema([("segment", pa.string()), ("subscriber_id", pa.string())])


def empty_membership() -> pa.Table:
    return MEMBERSHIP_SCHEMA.empty_table()


def conform(table: pa.Table, schema: pa.Schema, columns: Iterable[str], required: Iterable[str], what: str,
            *, keep_dictionaries: bool = False) -> pa.Table:
    """`table` reduced to `columns` (in order), each cast to its type in `schema`.

    A missing column of `required` is an error; a missing optional one is all NULL.
    `keep_dictionaries`: a dictionary-encoded column of the right value type stays
    encoded (engine/encoded.py reads its dictionary instead of hashing the rows).
    """
    wanted = list(dict.fromkeys(columns))
    arrays = []
    fields = []
    for name in wanted:
        target = schema.field(name).type
        if name in table.column_names:
            column = table.column(name)
            if keep_dictionaries and pa.types.is_dictionary(column.type) and column.type.value_type == target:
                arrays.append(column)
                fields.append(pa.field(name, column.type))
                continue
            if column.type != target:
                try:
                    column = column.cast(target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                    raise UserError(f"{what} column '{name}' has type {column.type}, expected {target}") from err
            arrays.append(column)
        elif name in set(required):
            raise UserError(f"{what} table has no '{name}' column")
        else:
            arrays.append(pa.chunked_array([pa.nulls(table.num_rows, target)], target))
        fields.append(schema.field(name))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def decode_dictionaries(table: pa.Table, columns: Iterable[str] | None = None) -> pa.Table:
    """`table` with its dictionary-encoded columns (or those of `columns`) as plain values."""
    names = set(table.column_names if columns is None else columns)
    for index, field in enumerate(table.schema):
        if field.name in names and pa.types.is_dictionary(field.type):
            table = table.set_column(index, pa.field(field.name, field.type.value_type),
                                     table.column(index).cast(field.type.value_type))
    return table


def membership_table(table: pa.Table) -> pa.Table:
    """(segment, subscriber_id) with the published types; engines sort (binary
    string order, i.e. by code point, on every engine)."""
    return table.select(["segment", "subscriber_id"]).cast(MEMBERSHIP_SCHEMA).combine_chunks()
