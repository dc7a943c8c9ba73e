"""One reader per landing format, all yielding `SourceBatch`es of the same shape.

A reader finds only what makes a *record* unusable (a CSV row with the wrong
number of cells, a JSONL line that is not a JSON object) or the whole *file*
unreadable (FileRejected); the row rules are normalize.py's.

Row numbers (quarantine's `row_number`), 1-based:
- CSV: the data record number (the header is record 0; blank lines are not
  records; a quoted value spanning several lines is one record).
- JSONL: the physical line number (blank lines are counted but skipped).
- Parquet: the row's position in the file.

A UTF-8 byte order mark at the start of a CSV or JSONL file is dropped
(spreadsheet tools write one); any other invalid UTF-8 rejects the file.

Raw text: the original line for JSONL and for CSV rows with the wrong number of
cells; for other CSV rows the cells as read (untrimmed), re-joined as one
RFC 4180 line; for Parquet the row as a JSON object.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import json
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..core.settings import IngestLimits
from ..segments.fields import arrow_type
from .columns import ROW_COLUMN, TableSpec, check_required_columns, match_header
from .problems import FileRejected, RecordTooLarge

# CSV blocks: large enough that a record rarely straddles two of them (the
# reader then retries with the bigger size), small enough to bound memory.
CSV_BLOCK_SIZES = (8 << 20, 256 << 20)
_HEADER_BLOCK = 1 << 20
JSONL_CHUNK_ROWS = 20_000
JSONL_CHUNK_BYTES = 32 << 20  # long lines: a chunk of 20,000 of them must not fill memory
PARQUET_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class BrokenRecord:
    """A record that never became a row (wrong cell count, not a JSON object)."""

    row_number: int
    reason: str
    raw: str


@dataclass
class SourceBatch:
    columns: dict[str, pa.Array]  # canonical name -> values (CSV: untrimmed text)
    row_numbers: np.ndarray  # int64, one per row
    raw: Callable[[np.ndarray], list[str]]  # raw text of the rows at these batch positions
    problems: dict[int, dict[str, str]] = field(default_factory=dict)  # position -> column -> message
    broken: list[BrokenRecord] = field(default_factory=list)


class SourceReader:
    """Iterate `batches()` once, then call `finish()` for checks that need the whole file."""

    def __init__(self, path: Path, spec: TableSpec, limits: IngestLimits = IngestLimits()) -> None:  # noqa: B008
        self.path = path
        self.spec = spec
        self.limits = limits
        self.columns: list[str] = []

    def batches(self) -> Iterator[SourceBatch]:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> None:
        """Raise FileRejected for problems only visible at the end of the file."""


def open_reader(path: Path, fmt: str, spec: TableSpec, block_size: int, limits: IngestLimits) -> SourceReader:
    # The only size bound on a JSONL file (its reader bounds lines); CSV also counts while it reads.
    if fmt in ("csv", "jsonl") and path.stat().st_size > limits.max_file_bytes:
        raise too_large(limits)
    if fmt in ("csv", "csv.gz"):
        return CsvReader(path, spec, compressed=fmt == "csv.gz", block_size=block_size, limits=limits)
    return {"jsonl": JsonlReader, "parquet": ParquetReader}[fmt](path, spec, limits)


def csv_block_sizes(limits: IngestLimits) -> tuple[int, ...]:
    """Smallest first; a record must fit one block, so the last is the record limit."""
    return tuple(dict.fromkeys(min(size, limits.max_record_bytes) for size in CSV_BLOCK_SIZES))


def _bytes(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):,.4g} {unit}"
    return f"{size:,} bytes"


def too_large(limits: IngestLimits) -> FileRejected:
    return FileRejected(f"the file is larger than {_bytes(limits.max_file_bytes)} once decompressed "
                        f"(ingest limit max_file_bytes)")


def _check_columns(count: int, limits: IngestLimits) -> None:
    if count > limits.max_columns:
        raise FileRejected(f"the file has more than {limits.max_columns:,} columns "
                           f"(ingest limit max_columns; it has {count:,})")


class _CheckedStream(io.RawIOBase):
    """Pass bytes through, counting `"` (RFC 4180 quoting always pairs them) and adding a final
    newline when the file lacks one (Arrow rejects a header-only file without it)."""

    def __init__(self, inner: io.BufferedIOBase, max_bytes: int = IngestLimits.max_file_bytes) -> None:
        self._inner = inner
        self.quotes = 0
        self.size = 0
        self.max_bytes = max_bytes
        self.over_limit = False  # ends the stream early: the caller rejects the file
        self._last = b"\n"
        self._padded = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - memoryview from io
        if self.over_limit:
            return 0
        data = self._inner.read(len(buffer))
        self.size += len(data)
        if self.size > self.max_bytes:  # a gzip bomb stops here, not at the end of its output
            self.over_limit = True
            return 0
        if not data:
            if self._padded or self._last in (b"\n", b"\r"):
                return 0
            self._padded = True
            data = b"\n"
        self.quotes += data.count(b'"')
        self._last = data[-1:]
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
_ROW_IN_MESSAGE = re.compile(r"Row #(\d+)")


class CsvReader(SourceReader):
    def __init__(self, path: Path, spec: TableSpec, *, compressed: bool, block_size: int,
                 limits: IngestLimits = IngestLimits()) -> None:  # noqa: B008 - frozen
        super().__init__(path, spec, limits)
        self.compressed = compressed
        self.block_size = block_size
        self._stream: _CheckedStream | None = None
        self._invalid_rows: list[int] = []  # data row numbers of broken records, increasing
        self._pending: list[BrokenRecord] = []

    def _open(self) -> _CheckedStream:
        raw = gzip.open(self.path, "rb") if self.compressed else open(self.path, "rb")  # noqa: SIM115
        return _CheckedStream(raw, self.limits.max_file_bytes)

    def _on_invalid_row(self, row) -> str:  # noqa: ANN001 - pyarrow.csv.InvalidRow
        # Arrow numbers records from 1 with the header as record 1.
        number = row.number - 1
        bisect.insort(self._invalid_rows, number)
        reason = f"the row has {row.actual_columns} cells but the header has {row.expected_columns} columns"
        self._pending.append(BrokenRecord(number, reason, row.text))
        return "skip"

    def _arrow_reader(self, stream: _CheckedStream, column_types: dict | None,
                      on_invalid: Callable[..., str], block_size: int) -> pcsv.CSVStreamingReader:
        return pcsv.open_csv(
            stream, read_options=pcsv.ReadOptions(use_threads=False, block_size=block_size),
            parse_options=pcsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True,
                                            escape_char=False, newlines_in_values=True,
                                            invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(column_types=column_types, strings_can_be_null=False,
                                                quoted_strings_can_be_null=False))

    def _header(self, block_size: int = _HEADER_BLOCK) -> list[str]:
        # A small first block is quick to parse; broken rows are recorded by the real pass.
        block_size = min(block_size, self.block_size)
        try:
            with self._open() as stream:
                return self._arrow_reader(stream, None, lambda row: "skip", block_size).schema.names
        except pa.ArrowInvalid as exc:
            if "straddling" not in str(exc) or block_size == self.block_size:
                raise
        return self._header(self.block_size)

    def batches(self) -> Iterator[SourceBatch]:
        try:
            yield from self._batches()
        except pa.ArrowInvalid as exc:
            if self._stream is not None and self._stream.over_limit:
                raise too_large(self.limits) from None
            raise self._explain(exc) from None
        except _GZIP_ERRORS as exc:
            raise FileRejected(f"the file cannot be decompressed as gzip ({exc})") from None
        except UnicodeDecodeError:  # Arrow hands header names over as raw bytes
            raise FileRejected("the file is not valid UTF-8 (in the header row)") from None

    def _batches(self) -> Iterator[SourceBatch]:
        header = self._header()
        _check_columns(len(header), self.limits)
        self.columns = match_header(header, self.spec)
        types = {name: pa.string() for name in header}
        next_row = 1
        with self._open() as stream:
            self._stream = stream
            reader = self._arrow_reader(stream, types, self._on_invalid_row, self.block_size)
            for record_batch in reader:
                n = record_batch.num_rows
                numbers, next_row = self._number_rows(next_row, n)
                yield SourceBatch(
                    columns={canon: record_batch.column(i) for i, canon in enumerate(self.columns)},
                    row_numbers=numbers,
                    raw=partial(_csv_lines, record_batch),
                    broken=self._drain(),
                )
        if stream.over_limit:
            raise too_large(self.limits)
        rest = self._drain()
        if rest:
            yield SourceBatch({}, np.zeros(0, dtype=np.int64), lambda idx: [], broken=rest)

    def _drain(self) -> list[BrokenRecord]:
        pending, self._pending = self._pending, []
        return pending

    def _number_rows(self, start: int, n: int) -> tuple[np.ndarray, int]:
        """Row numbers of the next n good rows: the records from `start` on, minus broken ones
        (Arrow reports a block's broken records before it hands out the batch)."""
        invalid = self._invalid_rows[bisect.bisect_left(self._invalid_rows, start):]
        candidates = np.arange(start, start + n + len(invalid), dtype=np.int64)
        numbers = candidates[~np.isin(candidates, invalid)][:n]
        return numbers, int(numbers[-1]) + 1 if n else start

    def finish(self) -> None:
        if self._stream is not None and self._stream.quotes % 2:
            raise FileRejected(
                "the CSV quoting is broken: a quoted value is never closed (odd number of '\"' characters)"
            )

    def _explain(self, exc: pa.ArrowInvalid) -> Exception:
        message = str(exc)
        if "straddling" in message:
            if self.block_size < csv_block_sizes(self.limits)[-1]:
                return RecordTooLarge(message)
            return FileRejected(f"a CSV record is larger than {_bytes(self.block_size)} "
                                f"(ingest limit max_record_bytes)")
        if "Empty CSV file" in message:
            return FileRejected("the file is empty: no header row")
        if "UTF8" in message or "UTF-8" in message:
            row = _ROW_IN_MESSAGE.search(message)
            where = f" (first bad bytes in row {int(row.group(1)) - 1})" if row else ""
            return FileRejected(f"the file is not valid UTF-8{where}")
        return FileRejected(f"the file cannot be parsed as CSV ({message.splitlines()[0]})")


def _csv_lines(batch: pa.RecordBatch, positions: np.ndarray) -> list[str]:
    out = []
    for row in batch.take(pa.array(positions, pa.int64())).to_pylist():
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(row.values())
        out.append(buffer.getvalue())
    return out


class JsonlReader(SourceReader):
    """One JSON object per line. Values must have the JSON kind of the field type:
    strings for string/date/timestamp fields, numbers for integer/number,
    true/false for boolean, an array of strings (or a `|`-separated string) for
    lists. A wrong kind quarantines the row: `"postal_code": 2134` would already
    have lost its leading zero, so it is not silently accepted."""

    def __init__(self, path: Path, spec: TableSpec, limits: IngestLimits) -> None:
        super().__init__(path, spec, limits)
        self._objects = 0
        self._lines = 0
        self._canonical: dict[str, str] = {}

    def batches(self) -> Iterator[SourceBatch]:
        rows: list[tuple[int, str, dict]] = []
        broken: list[BrokenRecord] = []
        chunk_bytes = 0
        limit, line_number = self.limits.max_record_bytes, 0
        with open(self.path, "rb") as handle:
            # A line longer than the record limit rejects the file before more than the limit is in memory.
            while line := handle.readline(limit + 1):
                line_number += 1
                if len(line.rstrip(b"\r\n")) > limit:
                    raise FileRejected(f"line {line_number} is longer than {_bytes(limit)} "
                                       f"(ingest limit max_record_bytes)")
                if len(rows) >= JSONL_CHUNK_ROWS or chunk_bytes >= JSONL_CHUNK_BYTES:  # broken lines count too
                    yield self._batch(rows, broken)
                    rows, broken, chunk_bytes = [], [], 0
                if line_number == 1:
                    line = line.removeprefix(b"\xef\xbb\xbf")
                try:
                    text = line.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise FileRejected(f"the file is not valid UTF-8 (line {line_number})") from None
                if not text.strip():
                    continue
                self._lines += 1
                chunk_bytes += len(line)
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    broken.append(BrokenRecord(line_number, f"the line is not valid JSON ({exc.msg} at "
                                                            f"column {exc.colno})", text))
                    continue
                except ValueError:  # Python's own bound on the digits of an integer it parses
                    broken.append(BrokenRecord(line_number, "the line is not valid JSON (a number of more "
                                                            f"than {sys.get_int_max_str_digits():,} digits)", text))
                    continue
                if not isinstance(obj, dict):
                    broken.append(BrokenRecord(line_number, f"the line is {_json_kind(obj)}, not a JSON object",
                                               text))
                    continue
                self._objects += 1
                rows.append((line_number, text, obj))
        if rows or broken:
            yield self._batch(rows, broken)

    def finish(self) -> None:
        if self._lines == 0:  # an export of no rows (an empty file, or blank lines only)
            return
        if self._objects == 0:
            raise FileRejected("no line of the file is a JSON object")
        check_required_columns(self.columns, self.spec)

    def _name(self, key: str) -> str:
        name = self._canonical.get(key)
        if name is None:
            name = self._canonical[key] = self.spec.canonical(key)
            if name and name not in self.columns:
                self.columns.append(name)
                _check_columns(len(self.columns), self.limits)
            _check_columns(len(self._canonical), self.limits)  # keys that are no column count too
        return name

    def _batch(self, rows: list[tuple[int, str, dict]], broken: list[BrokenRecord]) -> SourceBatch:
        values: list[dict[str, object]] = []
        problems: dict[int, dict[str, str]] = {}
        for position, (_, _, obj) in enumerate(rows):
            converted: dict[str, object] = {}
            for key, value in obj.items():
                name = self._name(key)
                if not name or name == ROW_COLUMN:
                    problems.setdefault(position, {})["<key>"] = f"the object has a key {key!r} that cannot be a column"
                    continue
                if name in converted:
                    problems.setdefault(position, {})[name] = f"column '{name}' is given twice (as different keys)"
                    continue
                ok, problem = _from_json(name, self.spec.fields.get(name), value)
                converted[name] = ok
                if problem:
                    problems.setdefault(position, {})[name] = problem
            values.append(converted)
        columns = {
            name: pa.array([row.get(name) for row in values],
                           pa.list_(pa.string()) if self.spec.fields.get(name) == "list" else pa.string())
            for name in self.columns if any(name in row for row in values)
        }
        texts = [text for _, text, _ in rows]
        return SourceBatch(
            columns=columns,
            row_numbers=np.array([number for number, _, _ in rows], dtype=np.int64),
            raw=lambda idx: [texts[i] for i in idx],
            problems=problems,
            broken=broken,
        )


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return f"a JSON {kinds.get(type(value), 'object')}"


def _from_json(name: str, field_type: str | None, value: object) -> tuple[object, str | None]:
    """A JSON value as the text (or list) the text rules then parse, or a problem."""
    if value is None:
        return None, None
    if field_type is None:  # undeclared column: kept as text
        return (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)), None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if field_type in ("string", "date", "timestamp") and isinstance(value, str):
        return value, None
    # (an int is tested as it is: float() of one with 400 digits overflows)
    if field_type == "integer" and is_number and isinstance(value, int | float) \
            and (isinstance(value, int) or value.is_integer()):
        return str(int(value)), None
    if field_type == "number" and is_number:
        return repr(value), None
    if field_type == "boolean" and isinstance(value, bool):
        return ("true" if value else "false"), None
    if field_type == "list":
        if isinstance(value, str):
            return value.split("|"), None
        if isinstance(value, list) and all(isinstance(item, str) or item is None for item in value):
            return value, None
    expected = {"string": "a string", "date": "a date string", "timestamp": "a timestamp string",
                "integer": "an integer", "number": "a number", "boolean": "true or false",
                "list": "an array of strings"}[field_type]
    text = json.dumps(value, ensure_ascii=False)
    shown = text if len(text) <= 60 else text[:57] + "..."
    return None, f"column '{name}': expected {expected}, got {_json_kind(value)} {shown}"


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


_PARQUET_FITS: dict[str, Callable[[pa.DataType], bool]] = {
    "string": _is_text,
    "integer": pa.types.is_integer,
    "number": lambda kind: pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind),
    "boolean": pa.types.is_boolean,
    "date": pa.types.is_date,
    "timestamp": lambda kind: pa.types.is_timestamp(kind) or pa.types.is_date(kind),
    # a `|`-separated text column (as in CSV), or a list of strings
    "list": lambda kind: _is_text(kind) or ((pa.types.is_list(kind) or pa.types.is_large_list(kind))
                                            and (_is_text(kind.value_type) or pa.types.is_null(kind.value_type))),
}


class ParquetReader(SourceReader):
    """Columns must already have a type that fits the catalog (an integer
    column for an integer field, and so on); a column that does not rejects
    the file. Timestamps with a time zone are converted to UTC; naive ones are
    UTC already; nanoseconds are truncated to microseconds."""

    def batches(self) -> Iterator[SourceBatch]:
        try:
            parquet = pq.ParquetFile(self.path)
            schema = parquet.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise FileRejected(f"the file is not readable Parquet ({first_line(exc)})") from None
        _check_columns(len(schema.names), self.limits)
        metadata = parquet.metadata
        if sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)) \
                > self.limits.max_file_bytes:
            raise too_large(self.limits)
        self.columns = match_header(schema.names, self.spec)
        wrong = [
            f"column '{name}' has Parquet type {schema.field(i).type}, but the catalog declares "
            f"{self.spec.fields[name]}"
            for i, name in enumerate(self.columns)
            if name in self.spec.fields and not pa.types.is_null(schema.field(i).type)
            and not _PARQUET_FITS[self.spec.fields[name]](schema.field(i).type)
        ]
        if wrong:
            raise FileRejected("; ".join(wrong))
        offset = 0
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                columns = {
                    name: _from_parquet(name, batch.column(i), self.spec.fields.get(name))
                    for i, name in enumerate(self.columns)
                }
                yield SourceBatch(
                    columns=columns,
                    row_numbers=np.arange(offset + 1, offset + batch.num_rows + 1, dtype=np.int64),
                    raw=partial(_parquet_rows, batch),
                )
                offset += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise FileRejected(f"the Parquet file cannot be read past row {offset} ({first_line(exc)})") from None


def _parquet_rows(batch: pa.RecordBatch, positions: np.ndarray) -> list[str]:
    return [json.dumps(row, ensure_ascii=False, default=str)
            for row in batch.take(pa.array(positions, pa.int64())).to_pylist()]


def first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _from_parquet(name: str, arr: pa.Array, field_type: str | None) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if field_type is None:  # undeclared column: kept as text
        if pa.types.is_nested(arr.type) or pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
            return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                             for v in arr.to_pylist()], pa.string())
        return arr.cast(pa.string())
    if pa.types.is_null(arr.type):
        return arr
    if field_type == "string" or (field_type == "list" and _is_text(arr.type)):
        return arr.cast(pa.string())  # the text rules apply (trim, empty = missing, `|`)
    if field_type == "timestamp":
        if pa.types.is_date(arr.type):
            return arr.cast(pa.timestamp("us"))
        # Arrow keeps timestamps as UTC instants; dropping the zone keeps the UTC value.
        naive = pa.timestamp(arr.type.unit)
        arr = pc.cast(arr.view(pa.int64()), naive) if arr.type.tz else arr
        return arr.cast(pa.timestamp("us"), safe=False)
    try:
        return arr.cast(arrow_type(field_type))
    except pa.ArrowInvalid:
        raise FileRejected(f"column '{name}' has values that do not fit a 64-bit {field_type}") from None

