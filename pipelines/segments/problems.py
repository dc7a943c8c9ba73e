"""Problems found in definition files, printed as `PATH:LINE:COLUMN: message`. Rules
report into a `ProblemLog` instead of raising, so one pass collects everything wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong at a 1-based line and column of a definition file."""

    path: str
    line: int
    col: int
    message: str

    def __post_init__(self) -> None:
        # Messages quote user text (keys, values); a problem must still print as one line.
        printable = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in self.message)
        object.__setattr__(self, "message", printable)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class ProblemLog:
    """Collects the problems of one file; positions come from YAML nodes or marks."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def at(self, line: int, col: int, message: str) -> None:
        self.problems.append(Problem(self.path, max(line, 1), max(col, 1), message))

    def node(self, node: object, message: str) -> None:
        """Report at a ruamel node (its start mark is 0-based); None means the file start."""
        mark = getattr(node, "start_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        self.at(line, col, message)
