"""YAML text -> ruamel node tree, with a position on every node. The *composed* graph
(`YAML.compose`), not constructed objects, keeps every scalar's mark, source text
(`02134` stays "02134") and resolved tag, and lets duplicate keys be reported.
`to_data` turns it into the dicts and lists the models validate, keeping nodes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from .problems import ProblemLog

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
TIMESTAMP = "tag:yaml.org,2002:timestamp"


# A definition is a few KB; a bigger file is a mistake or an attack (validate reads it whole).
MAX_DEFINITION_BYTES = 1 << 20
ANCHOR_MESSAGE = ("YAML anchors and aliases (&name, *name) are not allowed in definitions: "
                  "write the value out (an alias can expand to billions of nodes)")


def read_text(path: Path, log: ProblemLog) -> str | None:
    """The file's text (UTF-8, a BOM is allowed), or None after reporting why not."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        log.at(1, 1, f"cannot read file: {exc.strerror or exc}")
        return None
    if len(raw) > MAX_DEFINITION_BYTES:
        log.at(1, 1, f"file is larger than {MAX_DEFINITION_BYTES >> 20} MiB: not a segment definition")
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        log.at(line, col, "file is not valid UTF-8 text")
        return None


def _first_anchor(root: Node | None):
    """The first anchored or aliased node of a ruamel tree. Only an alias shares a node,
    and it shares an anchored one, so the walk stops before visiting any node twice."""
    pending = [root] if root is not None else []
    while pending:
        node = pending.pop()
        if getattr(node, "anchor", None) is not None:
            return node
        if isinstance(node, MappingNode):
            pending.extend(item for pair in reversed(node.value) for item in reversed(pair))
        elif isinstance(node, SequenceNode):
            pending.extend(reversed(node.value))
    return None


def parse_yaml(text: str, log: ProblemLog) -> tuple[bool, Data | None]:
    """(parsed, root as `to_data` gives it). An empty document parses to None;
    syntax errors are reported at the parser's mark and give (False, None)."""
    try:
        root = YAML(typ="safe", pure=True).compose(text)  # rt would also gather comments: ~3x slower
        anchored = _first_anchor(root)
        if anchored is not None:
            log.node(anchored, ANCHOR_MESSAGE)
            return False, None
        return True, None if root is None else to_data(root)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.problem and "another document" in exc.problem:
            message = "a definition file holds one YAML document; remove the second '---' document"
        else:
            detail = exc.problem or exc.context or "syntax error"
            if exc.problem and exc.context:
                detail = f"{exc.problem} ({exc.context})"
            message = f"invalid YAML: {' '.join(detail.split())}"
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        log.at(line, col, message)
    except ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        col = exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        log.at(line, col, f"invalid YAML: character U+{char:04X} is not allowed")
    except RecursionError:
        log.at(1, 1, "invalid YAML: nesting is too deep")
    except Exception as exc:  # the parser's last word must still be one line, not a traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.at(1, 1, f"invalid YAML: {first}")
    return False, None


# -- node kinds ---------------------------------------------------------------


def is_null(node: object) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == NULL)


def describe(node: object) -> str:
    """A short phrase for messages: what the user actually wrote."""
    node = node_of(node)
    if node is None or is_null(node):
        return "an empty value"
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "an empty list" if not node.value else "a list"
    assert isinstance(node, ScalarNode)
    kind = {STR: "the text", INT: "the number", FLOAT: "the number", BOOL: "the boolean",
            TIMESTAMP: "the date"}.get(str(node.tag), f"a {node.tag} value")
    text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    return f"{kind} {text!r}" if node.tag == STR else f"{kind} {text}"


def text_of(node: object) -> str | None:
    """The text of a scalar for a string slot, or None if it is not text. Plain scalars
    YAML would type as numbers, booleans or dates keep their source text (`postal_code
    is 02134` means "02134"): the slot's declared type decides, as at ingest."""
    if isinstance(node, ScalarNode) and node.tag in (STR, INT, FLOAT, BOOL, TIMESTAMP):
        return node.value
    return None


# -- mappings -------------------------------------------------------------------


class YamlMap(dict):
    """A mapping's entries (key text -> value), its node, each key's node and its key problems
    (reported by whoever reads it as a mapping: one given as a value is reported once, as such)."""

    __slots__ = ("key_nodes", "key_problems", "node")
    key_nodes: dict[str, Node]
    key_problems: list[tuple[Node, str]]
    node: MappingNode

    def report_keys(self, log: ProblemLog) -> None:
        for node, message in self.key_problems:
            log.node(node, message)


class YamlSeq(list):
    """A sequence's items with its node."""

    __slots__ = ("node",)
    node: SequenceNode


Data = YamlMap | YamlSeq | ScalarNode


def to_data(node: Node) -> Data:
    """Mappings as YamlMap, sequences as YamlSeq, scalars stay nodes (tag and source text
    decide how a slot reads them). The first of duplicate keys is kept; non-text keys are not."""
    if isinstance(node, ScalarNode):
        return node
    if isinstance(node, SequenceNode):
        items = YamlSeq(to_data(item) for item in node.value)
        items.node = node
        return items
    assert isinstance(node, MappingNode)
    out = YamlMap()
    out.node, out.key_nodes, out.key_problems = node, {}, []
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode) or is_null(key_node):
            out.key_problems.append((key_node, f"a key must be plain text, not {describe(key_node)}"))
        elif key_node.value in out:
            first = out.key_nodes[key_node.value].start_mark.line + 1
            out.key_problems.append((key_node, f"duplicate key '{key_node.value}' (first given on line {first})"))
        else:
            out[key_node.value], out.key_nodes[key_node.value] = to_data(value_node), key_node
    return out


def node_of(data: object) -> Any:
    """The YAML node behind a value of `to_data`."""
    return getattr(data, "node", data)


def unknown_key(key: str, allowed: tuple[str, ...]) -> str:
    hint = did_you_mean(key, allowed) or f" (expected one of: {', '.join(allowed)})"
    return f"unknown key '{key}'{hint}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """" — did you mean 'x'?" or "" (an em dash, as the spec's examples)."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{match[0]}'?" if match else ""
