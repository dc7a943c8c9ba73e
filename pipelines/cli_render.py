"""Rich (and JSON) output of the `segments` commands. No logic beyond layout.

Names, definitions and subscriber data are untrusted: all of it goes through `escape` (markup
shown as written, control characters as `\\x1b`), so data can neither break the output nor drive the terminal.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date, datetime

from rich import markup
from rich.console import Console
from rich.table import Column, Table

from .core.clock import format_ts

SPARK_BARS = "▁▂▃▄▅▆▇█"

# C0 and C1 controls (ESC, CR, backspace, CSI...) and bidirectional overrides;
# tab and newline are layout, kept in blocks of text but not in one line.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(text: object) -> str:
    """Text with control characters shown as escapes (`\\x1b`), for output without markup."""
    return _CONTROLS.sub(_visible, str(text))


def one_line(text: object) -> str:
    """`plain`, and a newline shown as `\\x0a` too: one line whatever the text holds."""
    return _LINE_CONTROLS.sub(_visible, str(text))


def escape(text: object) -> str:
    """Untrusted text for a Rich markup string or table cell: no markup, no controls."""
    return markup.escape(plain(text))


def sparkline(values: list[int]) -> str:
    """One bar per value, scaled between the smallest and the largest."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return (SPARK_BARS[0] if hi == 0 else SPARK_BARS[3]) * len(values)
    return "".join(SPARK_BARS[round((v - lo) / (hi - lo) * (len(SPARK_BARS) - 1))] for v in values)


def _json_default(value):
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def print_json(data) -> None:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    print(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))


def _ts(value) -> str:
    return format_ts(value) if isinstance(value, datetime) else ("" if value is None else str(value))


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def display_value(value) -> str:
    """A subscriber value as people read it: missing values are explicit."""
    if value is None:
        return "(missing)"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]" if value else "[] (empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_ts(value)
    return str(value)


def _signed(value: int | None) -> str:
    return "" if value is None else f"{value:+,}"


def print_table(console: Console, rows, *columns: Column | str, **options) -> None:
    """A rich Table of `columns` (a header is a plain left-aligned column) and `rows`."""
    table = Table(*columns, **options)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _right(*headers: str, **options) -> list[Column]:
    return [Column(header, justify="right", **options) for header in headers]


def _notes(console: Console, notes: list[str]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def _text_block(console: Console, title: str, text: str, lexer: str) -> None:
    console.rule(f"[bold]{escape(title)}", align="left")
    if console.is_terminal:
        from rich.syntax import Syntax

        console.print(Syntax(plain(text.rstrip("\n")), lexer, background_color="default", word_wrap=True))
    else:  # plain text, as written (but for control characters), for pipes and files
        console.print(plain(text.rstrip("\n")), markup=False, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- list


def render_list(rows: list[dict], console: Console) -> None:
    cells = []
    for row in rows:
        published = row["members"] is not None
        new = published and row["change"] is None and row["previous_run_id"]
        cells.append((escape(row["segment"]), escape(row["name"] or ""),
                      f"{row['members']:,}" if published else "", "new" if new else _signed(row["change"]),
                      _ts(row["last_run_as_of"]),
                      "" if row["definition"] == "unchanged" else escape(row["definition"] or "")))
    # Keys and timestamps are never cut (a pipe gets 80 columns): the name gives way.
    key_width = max([len(r["segment"]) for r in rows] + [7])
    print_table(console, cells, Column("segment", overflow="fold", min_width=key_width),
                Column("name", overflow="fold"), *_right("members", "change", overflow="fold"),
                Column("last run (as_of)", overflow="fold", min_width=20),
                Column("definition", overflow="fold"), title="Segments")


# --------------------------------------------------------------------------- show


def render_show(result, console: Console) -> None:
    console.print(f"[bold]{escape(result.segment)}[/]" + (f" — {escape(result.name)}" if result.name else ""))
    if result.description:
        console.print(escape(result.description))
    if result.path:
        console.print(f"file: {escape(result.path)}")
    console.print("members now: not published yet" if result.members is None else
                  f"members now: [bold]{result.members:,}[/] (run {escape(str(result.run_id))}, "
                  f"as_of {_ts(result.run_as_of)})")
    if result.sizes:
        values = [p.members for p in result.sizes]
        console.print(
            f"size over the last {len(values)} run(s): {sparkline(values)}  "
            f"{values[0]:,} → {values[-1]:,} (min {min(values):,}, max {max(values):,}; "
            f"{_ts(result.sizes[0].as_of)} … {_ts(result.sizes[-1].as_of)})"
        )
    if result.depends_on:
        console.print(f"reads: {escape(', '.join(result.depends_on))}")
    if result.used_by:
        console.print(f"used by: {escape(', '.join(result.used_by))}")
    _notes(console, result.notes)
    if result.definition is not None:
        _text_block(console, f"Definition ({result.path})", result.definition, "yaml")
    for problem in result.problems:
        console.print(f"[red]{escape(problem)}[/]")
    if result.sql:
        _text_block(console, f"Compiled SQL (duckdb, as_of {_ts(result.sql_as_of)})", result.sql, "sql")


# --------------------------------------------------------------------------- preview


def render_preview(result, console: Console) -> None:
    what = "saved segment" if result.saved else "draft"
    console.print(f"[bold]Preview[/] of {what} [bold]{escape(result.segment)}[/] — {escape(result.name)} "
                  f"({escape(result.source)})")
    console.print(f"as_of {_ts(result.as_of)} · snapshot {escape(result.snapshot)} · engine {escape(result.engine)}")
    line = (f"members: [bold]{result.members:,}[/] of {result.subscribers:,} subscribers "
            f"({_pct(result.share) or 'n/a'})")
    if result.published_members is not None:
        line += f" · published now: {result.published_members:,}"
    console.print(line)
    if result.sample:
        columns = result.sample_columns
        print_table(console, [[escape(display_value(r.get(c))) for c in columns] for r in result.sample],
                    *(Column(escape(c), overflow="fold") for c in columns),
                    title=f"Sample of members ({len(result.sample)} of {result.members:,})")
    if result.overlaps:
        print_table(console, [(escape(o.segment), f"{o.members:,}", f"{o.shared:,}", _pct(o.share_of_preview),
                               _pct(o.share_of_segment)) for o in result.overlaps],
                    Column("segment", overflow="fold"),
                    *_right("members", "shared", "% of preview", "% of segment", overflow="fold"),
                    title="Overlap with the largest published segments "
                          f"(run {escape(result.overlap_run_id)})")
    _notes(console, result.notes)


# --------------------------------------------------------------------------- explain

_MATCH = {"all": "all of these must hold", "any": "at least one must hold", "none": "none may hold"}
_HOLDS = {True: "[green]✓ holds[/]", False: "[red]✗ fails[/]"}


def render_explain(result, console: Console) -> None:
    console.print(f"[bold]Why subscriber {escape(result.subscriber_id)}[/] is "
                  f"{'' if result.member else 'not '}in [bold]{escape(result.segment)}[/] — {escape(result.name)}")
    console.print(f"as_of {_ts(result.as_of)} · snapshot {escape(result.snapshot)} · status "
                  f"{escape(str(result.status))}")
    for group in result.groups:
        print_table(console, [(escape(f.text), escape(f.value), _HOLDS[f.held]) for f in group.filters],
                    Column("filter", overflow="fold"), Column("this subscriber", overflow="fold"), "result",
                    title=f"Group {group.number} ({_MATCH[group.match]}): "
                          f"{'holds' if group.held else 'does not hold'}", title_justify="left")
    combine = "all groups must hold" if result.match == "all" else "at least one group must hold"
    verdict = "[bold green]IS a member[/]" if result.member else "[bold red]is NOT a member[/]"
    console.print(f"Segment ({combine}): {escape(result.subscriber_id)} {verdict}")
    if result.published_member is not None:
        console.print(f"last published run {escape(str(result.published_run_id))}: "
                      f"{'member' if result.published_member else 'not a member'}")
    _notes(console, result.notes)


# --------------------------------------------------------------------------- diff


def render_diff(result, console: Console) -> None:
    c = result.change
    console.print(f"[bold]{escape(result.segment)}[/]: the working-tree definition against published run "
                  f"{escape(result.run_id)} (as_of {_ts(result.as_of)}, snapshot {escape(result.snapshot)})")
    status = {"changed": "edited since that run", "unchanged": "definition unchanged since that run",
              "new": "new: not in that run", "deleted": "deleted: no definition file"}[result.status]
    console.print(f"definition: {status}")
    console.print(f"members: {c.before:,} → [bold]{c.after:,}[/] "
                  f"([green]+{c.entered:,} would enter[/], [red]-{c.exited:,} would leave[/])")
    for verb, sample, total in (("enter", result.entered_sample, c.entered),
                                ("leave", result.exited_sample, c.exited)):
        if sample:
            print_table(console, [(escape(str(r["subscriber_id"])), escape(str(r["email"] or "")))
                                  for r in sample],
                        Column("subscriber_id", overflow="fold"), Column("email", overflow="fold"),
                        title=f"Would {verb} (sample of {len(sample)} of {total:,})", title_justify="left")
    if result.dependants:
        print_table(console, [(escape(d.segment), f"{d.before:,}", f"{d.after:,}", f"+{d.entered:,}",
                               f"-{d.exited:,}") for d in result.dependants],
                    "segment", *_right("members", "would be", "enter", "leave"),
                    title="Segments that read it (evaluated again)", title_justify="left")
    if result.audiences:
        print_table(console, [(escape(a.audience), f"{a.before:,}", f"{a.after:,}", _signed(a.change),
                               f"+{a.added:,}", f"-{a.removed:,}") for a in result.audiences],
                    "audience", *_right("recipients", "would be", "change", "added", "removed"),
                    title="Audiences (recipients after suppression)", title_justify="left")
    else:
        console.print("audiences: none reads this segment or the segments that read it")
    _notes(console, result.notes)

