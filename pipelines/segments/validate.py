"""`segments validate`: every problem in every definition file, in one pass.

The rules live next to what they check:
- `yaml_tree.py`: YAML syntax, duplicate keys, non-text keys;
- `model.py`: segments and audiences, validated by their pydantic models;
- `definition_rules.py`: `_fields.yaml`;
- `value_rules.py`: the `value` of each operator;
- `project_rules.py`: keys from file names, duplicate keys, reference cycles.
Unknown segment references are checked while reading, against all segment keys.
"""

from __future__ import annotations

import os

from .loader import load_project
from .problems import Problem


def validate_defs(defs_dir: str | os.PathLike) -> list[Problem]:
    """All problems of a definitions folder, sorted by path, line and column.
    Raises UserError when the folder does not exist."""
    _, problems = load_project(defs_dir)
    return problems
