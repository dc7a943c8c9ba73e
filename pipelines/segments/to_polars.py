"""Segment model -> Polars expressions, with the same shape as `to_sql.py`.

Each field filter is built by its operator's `polars` builder (operators.py);
a negative operator is `~` of its positive partner after `fill_null(False)`
(spec rule 3), so missing values are in every negative operator and in no
positive one. The builders are tree.py's. Values enter as literals only.
"""

from __future__ import annotations

from functools import partial

import polars as pl

from . import tree
from .operators import COMPARISONS, PL_TIMESTAMP

POLARS = tree.Language(
    all=lambda parts: pl.all_horizontal(parts) if parts else pl.lit(True),
    any=lambda parts: pl.any_horizontal(parts) if parts else pl.lit(False),
    negate=lambda x: ~x, two_valued=lambda x: x.fill_null(False), compare=lambda op, a, b: COMPARISONS[op](a, b),
    text=lambda v: pl.lit(v, dtype=pl.String),
    number=lambda v: v, moment=lambda v: pl.lit(v, dtype=PL_TIMESTAMP), column=pl.col, builder="polars",
)
# Never-null expressions: one field filter on a column, the event rows a filter
# counts, a segment's membership condition (see tree.py).
field_predicate = partial(tree.field_predicate, POLARS)
event_condition = partial(tree.event_condition, POLARS)
segment_predicate = partial(tree.segment_predicate, POLARS)
