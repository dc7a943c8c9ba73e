"""Segment references as a graph: cycles (each reported once) and dependents."""

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
