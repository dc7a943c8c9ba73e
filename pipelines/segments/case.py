"""Case folding for case-insensitive matching (spec rule 4), the same on every engine.

Each engine lower-cases with its own Unicode tables, and they disagree on two
characters that real names use:

- 'İ' (Turkish capital I with dot): DuckDB gives 'i'; Python, Polars and Java
  (Spark) give 'i' plus a combining dot. It becomes 'i' before lower-casing.
- the final sigma: Python, Polars and Java give 'ς' at the end of a word,
  DuckDB 'σ'. Every 'ς' becomes 'σ' after lower-casing (as Unicode case folding does).

So `ΟΔΟΣ`, `οδος` and `οδοσ` all match each other, and `İzmir` matches `izmir`.
Characters assigned after Unicode 15 (2022) may still be lower-cased by one
engine and not another.
"""

from __future__ import annotations

BEFORE_LOWER = ("İ", "i")
AFTER_LOWER = ("ς", "σ")


def fold(text: str) -> str:
    """The folded form of `text`, as the engines compute it."""
    return text.replace(*BEFORE_LOWER).lower().replace(*AFTER_LOWER)
