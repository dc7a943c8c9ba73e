"""Field filters evaluated once per distinct value (dictionary encoding).

String and list (tag) columns have few distinct values next to their rows, and
lower-casing and comparing every row for every filter is most of an evaluation's
cost. So each such column is dictionary-encoded once; the engine itself (the same
compiled predicate) evaluates each string filter on the distinct values plus one
NULL, and each tag a list filter names on the distinct elements (a one-element
`has_any`); the results reach the rows through the dictionary codes (for lists, a
bitmask of the named tags per subscriber, tested by the operator's `tags` rule).

The results are never-null boolean columns the engine's predicate builders read
instead of the filter (`precomputed=` in `to_sql`/`to_polars`): semantics stay the
engine's. Columns with many distinct values (e-mails) and operators without
`per_value` (`is_set`) are left to the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core.flags import bitmap
from ..segments.model import FieldFilter
from ..segments.operators import OPERATORS

# (field name, field type, filters on it, one-column table of values named after
# the field) -> one never-null boolean numpy array per filter, aligned with the values.
ValueEvaluator = Callable[[str, str, list[FieldFilter], pa.Table], list[np.ndarray]]

PRECOMPUTED_PREFIX = "filter:"
# Dictionary-encode a column only when a sample of it repeats values this much.
_SAMPLE_ROWS = 65_536
_MAX_DISTINCT_SHARE = 0.25


@dataclass
class Precomputed:
    """Boolean columns (aligned with a table's rows) holding field filters' results."""

    columns: dict[str, pa.Array] = field(default_factory=dict)
    by_filter: dict[FieldFilter, str] = field(default_factory=dict)

    def append_to(self, table: pa.Table) -> pa.Table:
        for name, column in self.columns.items():
            table = table.append_column(name, column)
        return table


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array; a dictionary-encoded column stays encoded, with one dictionary."""
    if isinstance(column, pa.ChunkedArray):
        if pa.types.is_dictionary(column.type):
            column = column.unify_dictionaries()
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    return column


def _repetitive(array: pa.Array) -> bool:
    if pa.types.is_dictionary(array.type) or len(array) <= _SAMPLE_ROWS:
        return True  # small: encoding is cheap either way
    sample = array.slice(0, _SAMPLE_ROWS)
    if pa.types.is_list(sample.type):
        sample = pc.list_flatten(sample)
    return pc.count_distinct(sample).as_py() <= _MAX_DISTINCT_SHARE * max(len(sample), 1)


def _codes(encoded: pa.DictionaryArray) -> np.ndarray:
    """Dictionary indices with NULL mapped to one past the last value."""
    indices = encoded.indices
    if indices.null_count:
        indices = pc.fill_null(indices, len(encoded.dictionary))
    return indices.to_numpy(zero_copy_only=False)


def precompute(table: pa.Table, field_types: dict[str, str], filters: Iterable[FieldFilter],
               evaluate_values: ValueEvaluator) -> Precomputed:
    """Evaluate the encodable `filters` over `table` (columns typed by `field_types`)."""
    by_field: dict[str, list[FieldFilter]] = {}
    for f in dict.fromkeys(filters):
        op, field_type = OPERATORS[f.op], field_types.get(f.field)
        encodable = op.per_value and field_type in op.types and (field_type != "list" or op.tags is not None)
        if encodable and f.field in table.column_names:
            by_field.setdefault(f.field, []).append(f)
    out = Precomputed()
    for name, field_filters in by_field.items():
        array = _plain(table.column(name))
        if not _repetitive(array):
            continue
        if field_types[name] == "list":
            results = _list_filters(name, array, field_filters, evaluate_values)
        else:
            encoded = array if pa.types.is_dictionary(array.type) else pc.dictionary_encode(array)
            values = pa.concat_arrays([encoded.dictionary, pa.nulls(1, encoded.dictionary.type)])
            luts = evaluate_values(name, field_types[name], field_filters, pa.table({name: values}))
            results = gather_luts(luts, _codes(encoded))
        for f, values in zip(field_filters, results, strict=True):
            column = f"{PRECOMPUTED_PREFIX}{len(out.columns)}"
            out.columns[column] = bitmap(values)
            out.by_filter[f] = column
    return out


def _packed(luts: list[np.ndarray]) -> list[np.ndarray]:
    """The luts (booleans per value) as the bits of one integer per value, one
    word per 64 luts, each as narrow as its luts fit."""
    words = []
    for first in range(0, len(luts), 64):
        group = luts[first:first + 64]
        dtype: type = np.uint8 if len(group) <= 8 else np.uint16 if len(group) <= 16 else \
            np.uint32 if len(group) <= 32 else np.uint64
        packed: np.ndarray = np.zeros(len(group[0]), dtype=dtype)
        for j, lut in enumerate(group):
            packed |= np.asarray(lut, dtype=bool).astype(dtype) << dtype(j)
        words.append(packed)
    return words


def gather_luts(luts: list[np.ndarray], codes: np.ndarray) -> list[np.ndarray]:
    """`lut[codes]` for every lut (a boolean per distinct value). The luts are packed
    as the bits of one integer per value, so the rows are gathered once per 64
    filters, not once per filter (4-7x less time on 1.5M rows and 14 filters)."""
    if len(luts) == 1:
        return [np.asarray(luts[0], dtype=bool)[codes]]
    results: list[np.ndarray] = []
    for w, packed in enumerate(_packed(luts)):
        gathered = packed[codes]
        width = len(luts[64 * w:64 * w + 64])
        results += [(gathered & gathered.dtype.type(1 << j)) != 0 for j in range(width)]
    return results


def _list_filters(name: str, array: pa.Array, filters: list[FieldFilter],
                  evaluate_values: ValueEvaluator) -> list[np.ndarray]:
    """Per subscriber, a bitmask of the filter values (tags) they carry."""
    wanted = list(dict.fromkeys(v for f in filters for v in f.value))
    elements = pc.list_flatten(array)  # null lists contribute nothing
    encoded = elements if pa.types.is_dictionary(elements.type) else pc.dictionary_encode(elements)
    one_each = pa.ListArray.from_arrays(pa.array(np.arange(len(encoded.dictionary) + 1, dtype=np.int32)),
                                        encoded.dictionary)
    probes = [FieldFilter(field=name, op="has_any", value=(v,)) for v in wanted]
    element_luts = evaluate_values(name, "list", probes, pa.table({name: one_each}))
    codes = _codes(encoded)  # a NULL element (code len(dictionary)) matches nothing: the appended False
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    empty = lengths == 0

    masks: list[np.ndarray] = []  # one word per 64 wanted values
    for bits in _packed([np.append(lut, False) for lut in element_luts]):
        # A sentinel element: the starts of trailing empty rows stay in range.
        per_element = np.append(bits[codes], bits.dtype.type(0))
        per_row = np.bitwise_or.reduceat(per_element, starts) if len(starts) else np.zeros(0, bits.dtype)
        per_row[empty] = 0
        masks.append(per_row)

    position = {v: i for i, v in enumerate(wanted)}
    results = []
    for f in filters:
        any_hit = np.zeros(len(array), dtype=bool)
        all_hit = np.ones(len(array), dtype=bool)
        for word, mask in enumerate(masks):
            chosen = [position[v] - 64 * word for v in f.value if 64 * word <= position[v] < 64 * (word + 1)]
            if not chosen:
                continue
            want = mask.dtype.type(sum(1 << j for j in set(chosen)))
            hit = mask & want
            any_hit |= hit != 0
            all_hit &= hit == want
        op = OPERATORS[f.op]
        hit = all_hit if op.tags == "all" else any_hit
        results.append(~hit if op.negation_of else hit)  # a missing list is empty
    return results
