"""Pause Python's cyclic garbage collector around bulk model and AST building: the pydantic
models and sqlglot nodes (parent links make cycles) of 1,000 definitions trigger collections
that took a third of validate + compile. The next collection after the pause frees them."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
