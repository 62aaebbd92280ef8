"""Vectors without Python objects: Arrow list columns → float32 numpy, and ``.npy`` files
written batch by batch.

``arrow_vectors(chunk, ...)`` turns one Arrow array of a ``list<number>`` or
``fixed_size_list<number, d>`` column into an (n, d) float32 array straight from the Arrow
value buffer (zero-copy for float32 fixed-size lists; one cast per batch otherwise), after
checking, vectorised, that no row is null, every row has d values, no value is null and
every value is finite. Errors name the global row (``offset`` + position in the batch).

``NpyWriter`` appends such batches to a ``.npy`` file whose header is rewritten with the
final row count on ``close()``: the header is padded to a fixed size, so a file of unknown
length (CSV, JSONL) streams to disk without ever holding more than one batch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import SchemaError

_HEADER_BYTES = 128  # magic (6) + version (2) + length (2) + padded dict; multiple of 64


def arrow_vectors(chunk: pa.Array | pa.ChunkedArray, *, column: str, source: str,
                  offset: int = 0, dim: int | None = None) -> np.ndarray:
    """(n, d) float32 from one Arrow list array; ``dim`` (if known) must match."""
    if isinstance(chunk, pa.ChunkedArray):
        chunk = chunk.combine_chunks()
    t = chunk.type
    where = f"cannot ingest {source}: vector column {column!r}"
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        kind = "list"
    elif pa.types.is_fixed_size_list(t):
        kind = "fixed"
    else:
        raise SchemaError(f"{where} has type {t}, expected a list of numbers")
    if not (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        raise SchemaError(f"{where} holds {t.value_type}, expected numbers")
    n = len(chunk)
    if chunk.null_count:
        first = int(np.flatnonzero(~chunk.is_valid().to_numpy(zero_copy_only=False))[0])
        raise SchemaError(f"{where} has a null vector at row {offset + first}")
    if kind == "list":
        lengths = pc.list_value_length(chunk).to_numpy(zero_copy_only=False)
        d = int(lengths[0]) if n else (dim or 0)
        bad = np.flatnonzero(lengths != d)
        if len(bad):
            raise SchemaError(f"{where} has rows of different lengths: row {offset} has {d} "
                              f"values, row {offset + int(bad[0])} has {int(lengths[bad[0]])}")
    else:
        d = t.list_size
    if n and d == 0:
        raise SchemaError(f"{where} holds empty vectors (0 values per row)")
    if dim is not None and d != dim:
        raise SchemaError(f"{where} has {d} values per row from row {offset} on, but "
                          f"{dim} before")
    values = chunk.flatten()
    if values.null_count:
        pos = int(np.flatnonzero(~values.is_valid().to_numpy(zero_copy_only=False))[0])
        raise SchemaError(f"{where} has a null value in row {offset + pos // max(d, 1)}")
    arr = values.to_numpy(zero_copy_only=False)
    if arr.dtype != np.float32:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow → inf, refused below
            arr = arr.astype(np.float32)
    arr = arr.reshape(n, d)
    finite = np.isfinite(arr)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise SchemaError(f"vector column {column!r} of {source} has NaN/inf values in "
                          f"{len(rows)} row(s) of this batch, first at row "
                          f"{offset + int(rows[0])}")
    return arr


class NpyWriter:
    """Append (n, d) float32 batches to a ``.npy`` file; ``close()`` fixes the header."""

    def __init__(self, path: Path, dim: int | None = None):
        self.path = Path(path)
        self.dim = dim
        self.rows = 0
        self._fh = open(self.path, "wb")
        self._fh.write(b"\0" * _HEADER_BYTES)

    def append(self, batch: np.ndarray) -> None:
        if batch.ndim != 2:
            raise SchemaError(f"vectors must be 2-D; got shape {batch.shape}")
        if self.dim is None:
            self.dim = int(batch.shape[1])
        elif batch.shape[1] != self.dim:
            raise SchemaError(f"vectors have {batch.shape[1]} columns from row {self.rows} "
                              f"on, {self.dim} before")
        self._fh.write(np.ascontiguousarray(batch, dtype="<f4").tobytes())
        self.rows += len(batch)

    def close(self) -> int:
        """Write the final header; return the number of rows written."""
        self._fh.seek(0)
        self._fh.write(_header(self.rows, self.dim or 0))
        self._fh.flush()
        self._fh.close()
        return self.rows

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def preallocate_npy(path: Path, rows: int, dim: int) -> None:
    """A ``.npy`` of (rows, dim) float32 with ``NpyWriter``'s header (the same bytes once
    filled), its data a sparse hole that tasks fill in place (``open_rows``)."""
    with open(path, "wb") as fh:
        fh.write(_header(rows, dim))
        fh.truncate(_HEADER_BYTES + rows * dim * 4)


def open_rows(path: Path, rows: int, dim: int) -> np.memmap:
    """The data of a ``preallocate_npy`` file, mapped for writing."""
    return np.memmap(path, dtype="<f4", mode="r+", offset=_HEADER_BYTES, shape=(rows, dim))


def _header(rows: int, dim: int) -> bytes:
    body = repr({"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
    room = _HEADER_BYTES - 10 - 1
    if len(body) > room:
        raise SchemaError(f"vector file too large for the header: shape ({rows}, {dim})")
    text = (body + " " * (room - len(body)) + "\n").encode("latin1")
    return b"\x93NUMPY" + bytes([1, 0]) + (len(text)).to_bytes(2, "little") + text


def _read_shape(path: Path) -> tuple[int, int]:  # for tests
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_BYTES)
    return ast.literal_eval(head[10:].decode("latin1").strip())["shape"]
