"""Fast string columns built as byte matrices.

pyarrow's `strftime` and `utf8_lpad` + `binary_join` cost seconds per million
values on a small machine; ids and ISO timestamps are fixed-width, so numpy can
write their bytes directly and Arrow can wrap the buffer without copying.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def fixed_width_strings(matrix: np.ndarray) -> pa.Array:
    """A string array whose i-th value is the ASCII bytes of row i of `matrix` (uint8, n x width)."""
    n, width = matrix.shape
    if n * width >= 2**31:
        raise ValueError("fixed_width_strings: more than 2 GiB of text; split the input into blocks")
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix, dtype=np.uint8)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """n x width matrix of the ASCII decimal digits of `values`, zero-padded."""
    out = np.empty((values.size, width), dtype=np.uint8)
    rest = values.astype(np.int64, copy=True)
    for col in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, 10)
        out[:, col] = digit + 48
    return out


def numbered(prefix: str, first: int, count: int, width: int) -> pa.Array:
    """prefix + zero-padded first .. first+count-1, like `f"{prefix}{i:0{width}d}"`:
    numbers wider than `width` keep all their digits."""
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    parts, start, stop = [], first, first + count
    while start < stop:
        # Split the range where the digit count grows, so each piece is fixed-width.
        w = max(width, len(str(start)))
        end = min(stop, 10**w)
        digits = _digits(np.arange(start, end, dtype=np.int64), w)
        parts.append(fixed_width_strings(np.hstack([np.broadcast_to(head, (end - start, head.size)), digits])))
        start = end
    if not parts:
        return pa.array([], pa.string())
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)


def iso_utc(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds as `YYYY-MM-DDTHH:MM:SSZ` (years 1000..9999): Arrow's cast writes
    `YYYY-MM-DD HH:MM:SS`, fixed-width, so numpy swaps the space for `T` and adds `Z`."""
    text = pc.cast(pa.array(seconds, pa.timestamp("s")), pa.string())
    chars = np.frombuffer(text.buffers()[2], dtype=np.uint8, count=19 * len(text)).reshape(-1, 19)
    iso = np.empty((len(text), 20), dtype=np.uint8)
    iso[:, :19] = chars
    iso[:, 10], iso[:, 19] = ord("T"), ord("Z")
    return fixed_width_strings(iso)
