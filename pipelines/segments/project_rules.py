"""Rules across files: keys, duplicates, reference cycles (and dependents), and what stays
runnable. They run after every file was read on its own: all problems come out of one pass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ruamel.yaml.nodes import Node

from .definition_rules import KEY_PATTERN
from .model import Audience, Segment
from .problems import Problem, ProblemLog


def check_keys(files: Iterable[tuple[str, str]], kind: str) -> tuple[dict[str, str], list[Problem]]:
    """(key, path) pairs in discovery order -> the path that owns each valid key. A key
    comes from the file name: its problem is at 1:1. Of files sharing a key the first
    (sorted relative path) keeps it; every later one is reported, naming the first."""
    owners: dict[str, str] = {}
    problems: list[Problem] = []
    for key, path in files:
        if not KEY_PATTERN.match(key):
            problems.append(Problem(path, 1, 1, f"invalid {kind} key '{key}' (from the file name): use lowercase "
                                                f"letters, digits and _, starting with a letter, at most 63 "
                                                f"characters"))
        elif key in owners:
            problems.append(Problem(path, 1, 1, f"duplicate {kind} key '{key}': already defined in {owners[key]}"))
        else:
            owners[key] = path
    return owners, problems


def find_cycles(references: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first search, each as a closed path
    `[a, b, a]`, reported once (rotated to start at its smallest key)."""
    cycles: dict[tuple[str, ...], list[str]] = {}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for ref in references.get(node, ()):
            if ref not in references:
                continue  # unknown references are reported elsewhere
            if state.get(ref) == 1:
                loop = stack[stack.index(ref):]
                start = loop.index(min(loop))
                canonical = tuple(loop[start:] + loop[:start])
                cycles.setdefault(canonical, [*canonical, canonical[0]])
            elif state.get(ref) is None:
                visit(ref)
        stack.pop()
        state[node] = 2

    for node in sorted(references):
        if node not in state:
            visit(node)
    return list(cycles.values())


def dependents_of(references: Mapping[str, Sequence[str]], key: str) -> list[str]:
    """Keys that reference `key`, directly or through others (sorted)."""
    out: set[str] = set()
    frontier = [key]
    while frontier:
        current = frontier.pop()
        for node, refs in references.items():
            if current in refs and node not in out:
                out.add(node)
                frontier.append(node)
    return sorted(out)


def check_cycles(references: Mapping[str, Sequence[tuple[str, Node | None]]], paths: Mapping[str, str],
                 start: str | None = None) -> tuple[set[str], list[Problem]]:
    """(keys on a reported cycle, problems): each cycle once, as `a -> b -> a` on the filter
    in `a` pointing at `b`; `a` is `start` (only cycles through it count), else the smallest key."""
    graph = {key: [ref for ref, _ in refs] for key, refs in references.items()}
    on_cycle: set[str] = set()
    problems: list[Problem] = []
    for cycle in find_cycles(graph):
        if start is not None:
            if start not in cycle:
                continue
            loop = cycle[:-1]
            cycle = [*loop[loop.index(start):], *loop[:loop.index(start)], start]
        on_cycle.update(cycle)
        node = next(n for ref, n in references[cycle[0]] if ref == cycle[1])
        log = ProblemLog(paths[cycle[0]])
        log.node(node, f"reference cycle: {' -> '.join(cycle)}")
        problems.extend(log.problems)
    return on_cycle, problems


def runnable_segments(segments: Mapping[str, Segment]) -> dict[str, Segment]:
    """Drop, transitively, segments that reference one that is not runnable (invalid, on a
    cycle, missing), silently: the cause is reported in its own file, one cause one line."""
    kept = dict(segments)
    while broken := [key for key, seg in kept.items() if any(ref not in kept for ref in seg.references())]:
        for key in broken:
            del kept[key]
    return dict(sorted(kept.items()))


def runnable_audiences(audiences: Mapping[str, Audience], segments: Mapping[str, Segment]) -> dict[str, Audience]:
    """Audiences whose include/exclude segments are all runnable (others dropped, as above)."""
    return {key: audience for key, audience in sorted(audiences.items())
            if all(ref in segments for ref in (*audience.include, *audience.exclude))}
