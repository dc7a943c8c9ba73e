"""Segment model -> Polars expressions, with the same shape as `to_sql.py`.

Each field filter is built by its operator's `polars` builder (operators.py);
a negative operator is `~` of its positive partner after `fill_null(False)`
(spec rule 3), so missing values are in every negative operator and in no
positive one. The builders are tree.py's. Values enter as literals only.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import polars as pl

from . import tree
from .operators import COMPARISONS, PL_TIMESTAMP


def all_of(conditions: Sequence[pl.Expr]) -> pl.Expr:
    return pl.all_horizontal(conditions) if conditions else pl.lit(True)


def any_of(conditions: Sequence[pl.Expr]) -> pl.Expr:
    return pl.any_horizontal(conditions) if conditions else pl.lit(False)


POLARS = tree.Language(
    all=all_of, any=any_of, negate=lambda x: ~x, two_valued=lambda x: x.fill_null(False),
    compare=lambda op, a, b: COMPARISONS[op](a, b), text=lambda v: pl.lit(v, dtype=pl.String),
    number=lambda v: v, moment=lambda v: pl.lit(v, dtype=PL_TIMESTAMP), column=pl.col, builder="polars",
)
# Never-null expressions: one field filter on a column, the event rows a filter
# counts, a segment's membership condition (see tree.py).
field_predicate = partial(tree.field_predicate, POLARS)
event_condition = partial(tree.event_condition, POLARS)
segment_predicate = partial(tree.segment_predicate, POLARS)
