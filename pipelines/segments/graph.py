"""Segment references as a graph: dependency waves and cycle detection.

A segment that filters on another (`{segment: KEY, op: is}`) is evaluated
after it and reads its materialized membership. Waves group segments that can
be evaluated together in one pass: wave 0 references nothing, wave n only
references segments of earlier waves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


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


def dependency_waves(references: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Keys grouped by dependency depth, each wave sorted. Raises ValueError on a cycle;
    references to unknown keys are ignored (validation reports them)."""
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def level(node: str) -> int:
        if node in depth:
            return depth[node]
        if node in visiting:
            raise ValueError(f"reference cycle through '{node}'")
        visiting.add(node)
        refs = [r for r in references.get(node, ()) if r in references]
        depth[node] = 1 + max((level(r) for r in refs), default=-1)
        visiting.discard(node)
        return depth[node]

    for node in references:
        level(node)
    waves: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node, d in depth.items():
        waves[d].append(node)
    return [sorted(w) for w in waves]


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
