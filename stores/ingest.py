"""Validate a table against an ``IngestSpec`` and build the store's sample table.

Reading files (Parquet, a folder of shards, CSV, JSONL, a Hugging Face ``save_to_disk``
folder) is ``stores.stream``'s job; this module holds the rules. The result is a frame
with ``row_idx`` (dense, 0..N-1), ``sample_id`` (stable string), ``split``
(train/val/test) and the user's columns.
Anything silently wrong (missing columns, duplicate ids, empty files, null labels,
NaN/inf vectors) is refused with one line that says what and where.

Checked, before anything is written (``check_spec`` and ``prepare_samples``):
- the spec: column names are strings or None, ``val_fraction``/``test_fraction`` finite
  numbers in [0, 1) with a sum below 1, ``seed`` an integer in [0, 2**63) (``check_seed``);
- the table: at least one row; ``row_idx``/``sample_id`` reserved (unless the id column), and
  ``split`` too unless it is the split column (it would be silently replaced); the named
  columns exist; labels, ids and splits are scalar (no list/struct) and not null, float
  labels not NaN; text is strings without nulls; ids unique;
- vectors (``extract_vectors``): a list/array column of numbers (not strings or bools, which
  would be coerced), every row the same length ≥ 1, no null, NaN or inf once in float32.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import polars as pl

from core.checks import check_seed
from core.errors import EmptyDatasetError, InvalidParameterError, SchemaError

RESERVED = ("row_idx", "sample_id")
SPLITS = ("train", "val", "test")
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".arrow": "arrow"}


@dataclass(frozen=True)
class IngestSpec:
    """What the columns of an input mean. ``None`` means "not present"."""

    text_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    vector_column: str | None = None
    split_column: str | None = "split"
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0


def check_spec(spec: IngestSpec) -> None:
    """Types and ranges of an ``IngestSpec`` (``InvalidParameterError``), before any I/O."""
    if not isinstance(spec, IngestSpec):
        raise InvalidParameterError(f"spec must be an IngestSpec; got {type(spec).__name__}")
    for field in ("text_column", "label_column", "id_column", "vector_column", "split_column"):
        value = getattr(spec, field)
        if value is not None and not isinstance(value, str):
            raise InvalidParameterError(f"IngestSpec.{field} must be a column name (a string) "
                                        f"or None; got {value!r}")
    check_fractions(spec.val_fraction, spec.test_fraction)
    check_seed(spec.seed, "IngestSpec.seed")


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(f, (bool, np.bool_)) or not isinstance(f, numbers.Real) \
                or not 0 <= float(f) < 1:
            raise InvalidParameterError(f"{name} must be a number in [0, 1); got {f!r}")
    if val_fraction + test_fraction >= 1:
        raise InvalidParameterError("val_fraction + test_fraction must be below 1; got "
                                    f"{val_fraction + test_fraction}")


def _scalar(frame: pl.DataFrame, col: str, role: str, source: str) -> None:
    dtype = frame[col].dtype
    if dtype.is_nested() or dtype in (pl.Object, pl.Null, pl.Binary):
        raise SchemaError(f"cannot ingest {source}: {role} column {col!r} has type {dtype}; "
                          "expected one scalar value (string, integer, boolean) per row")


def prepare_samples(frame: pl.DataFrame, spec: IngestSpec, source: str) -> pl.DataFrame:
    """Validate ``frame`` against ``spec`` and return the normalised sample table."""
    check_spec(spec)
    if frame.height == 0:
        raise EmptyDatasetError(f"cannot ingest {source}: it has no rows")
    check_columns(frame.columns, spec, source)
    if spec.label_column is not None:
        _scalar(frame, spec.label_column, "label", source)
        labels = frame[spec.label_column]
        n_null = labels.null_count()
        if labels.dtype.is_float():
            n_null += int(labels.is_nan().sum())
        if n_null:
            raise SchemaError(f"cannot ingest {source}: label column {spec.label_column!r} "
                              f"has {n_null} null or NaN value(s)")
    if spec.text_column is not None:
        if frame[spec.text_column].dtype != pl.String:
            raise SchemaError(f"cannot ingest {source}: text column {spec.text_column!r} has "
                              f"type {frame[spec.text_column].dtype}, expected strings")
        n_null = frame[spec.text_column].null_count()
        if n_null:
            raise SchemaError(f"cannot ingest {source}: text column {spec.text_column!r} has "
                              f"{n_null} null value(s)")
    if spec.split_column and spec.split_column in frame.columns:
        _scalar(frame, spec.split_column, "split", source)

    if spec.id_column is not None:
        _scalar(frame, spec.id_column, "id", source)
        ids = frame[spec.id_column].cast(pl.String)
        if ids.null_count():
            raise SchemaError(f"cannot ingest {source}: id column {spec.id_column!r} has "
                              f"{ids.null_count()} null value(s)")
        dup = ids.filter(ids.is_duplicated())
        if dup.len():
            raise SchemaError(f"cannot ingest {source}: id column {spec.id_column!r} has "
                              f"{dup.n_unique()} duplicated id(s), e.g. {dup[0]!r}")
    else:
        ids = pl.int_range(0, frame.height, eager=True).cast(pl.String).str.zfill(8)

    # vectors live in embeddings/*.npy, never in the sample table
    drop = [c for c in (spec.vector_column,) if c is not None]
    drop += [c for c in (spec.id_column,) if c is not None and c in RESERVED]
    out = frame.drop(drop)
    out = out.with_columns(sample_id=ids)
    out = out.with_columns(split=_splits(out, spec, source))
    out = out.with_row_index("row_idx").with_columns(pl.col("row_idx").cast(pl.Int64))
    first = ["row_idx", "sample_id", "split"]
    return out.select(first + [c for c in out.columns if c not in first])


def _splits(frame: pl.DataFrame, spec: IngestSpec, source: str) -> pl.Series:
    if spec.split_column and spec.split_column in frame.columns:
        split = frame[spec.split_column].cast(pl.String)
        bad = split.filter(~split.is_in(list(SPLITS)) | split.is_null())
        if bad.len():
            raise SchemaError(f"cannot ingest {source}: split column {spec.split_column!r} "
                              f"has value {bad[0]!r}; allowed: {', '.join(SPLITS)}")
        return split
    labels = frame[spec.label_column] if spec.label_column else None
    codes = split_codes(frame.height, labels, spec.val_fraction, spec.test_fraction, spec.seed)
    return pl.Series("split", codes).replace_strict(dict(enumerate(SPLITS)),
                                                    return_dtype=pl.String)


def assign_splits(n: int, labels: pl.Series | None, val_fraction: float,
                  test_fraction: float, seed: int) -> np.ndarray:
    """Stratified (per label) random split into train/val/test; every class keeps ≥1 train row.

    Each class gets ``round(n_c * fraction)`` rows in val and in test, drawn at random with
    ``numpy.random.default_rng(seed)``. The fractions (numbers in [0, 1), sum below 1) and
    the seed (an integer in [0, 2**63)) are checked first (``InvalidParameterError``).
    """
    return np.asarray(SPLITS)[split_codes(n, labels, val_fraction, test_fraction, seed)]


def split_codes(n: int, labels: pl.Series | None, val_fraction: float,
                test_fraction: float, seed: int) -> np.ndarray:
    """``assign_splits`` as int8 codes into ``SPLITS`` (0 train, 1 val, 2 test), vectorised:
    one stable sort groups the rows by class (a loop over classes, never over rows)."""
    check_fractions(val_fraction, test_fraction)
    rng = np.random.default_rng(check_seed(seed))
    out = np.zeros(n, dtype=np.int8)
    groups = (np.zeros(n, dtype=np.int64) if labels is None
              else labels.cast(pl.String).rank("dense").to_numpy().astype(np.int64))
    order = np.argsort(groups, kind="stable")  # members of each class in row order
    starts = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0]) if n else []
    for start, stop in zip(starts, [*starts[1:], n], strict=True):
        members = rng.permutation(order[start:stop])
        n_val = int(round(len(members) * val_fraction))
        n_test = int(round(len(members) * test_fraction))
        if n_val + n_test >= len(members):  # tiny class: keep one row for training
            n_test = max(0, min(n_test, len(members) - 1 - n_val))
            n_val = max(0, min(n_val, len(members) - 1))
        out[members[:n_val]] = 1
        out[members[n_val:n_val + n_test]] = 2
    return out


def extract_vectors(frame: pl.DataFrame, column: str, source: str) -> np.ndarray:
    """An in-memory frame's list column as (N, d) float32, by the same Arrow path (and the
    same checks) as the streaming ingest (``stores.vectors.arrow_vectors``)."""
    from stores.vectors import arrow_vectors

    if column not in frame.columns:
        raise SchemaError(f"cannot ingest {source}: vector column {column!r} not found; "
                          f"columns are {', '.join(frame.columns)}")
    return arrow_vectors(frame[column].to_arrow(), column=column, source=source)


#: rows checked per chunk by ``check_finite`` (a 2-D check's temporaries are chunk × d)
FINITE_CHUNK = 1 << 16


def check_finite(arr: np.ndarray, what: str, offset: int = 0) -> None:
    """Refuse NaN/inf, naming how many rows and the first (``offset`` + its position: the
    global row when ``arr`` is one batch of a stream). Memory O(chunk × d), so a
    memory-mapped 10M × 384 array is never doubled by a full-size mask: each chunk's float64
    sum is finite iff the chunk is (a float32 chunk cannot overflow it; a float64 one that
    does is checked value by value)."""
    if np.asarray(arr[:0]).dtype.kind not in "fc":
        return                                   # integers and booleans are finite
    bad_rows: list[np.ndarray] = []
    for lo in range(0, len(arr), FINITE_CHUNK):
        part = np.asarray(arr[lo:lo + FINITE_CHUNK])
        with np.errstate(over="ignore", invalid="ignore"):
            total = part.sum(dtype=np.float64)
        if np.isfinite(total):
            continue
        bad = ~np.isfinite(part).reshape(len(part), -1).all(axis=1)
        bad_rows.append(lo + np.flatnonzero(bad))
    rows = np.concatenate(bad_rows) if bad_rows else np.empty(0, np.int64)
    if len(rows):
        raise SchemaError(f"{what} has NaN/inf values in {len(rows)} row(s), "
                          f"first at row {offset + int(rows[0])}")


def check_columns(columns: list[str], spec: IngestSpec, source: str) -> None:
    """The checks that need only the column names: reserved names, and every named column
    present (used by the streaming ingest before it reads a row)."""
    if not columns:
        raise EmptyDatasetError(f"cannot ingest {source}: it has no columns")
    for col in RESERVED:
        if col in columns and col != spec.id_column:
            raise SchemaError(f"cannot ingest {source}: column {col!r} is reserved by Curate; "
                              "rename it or pass it as --id-column")
    for role, col in (("text", spec.text_column), ("label", spec.label_column),
                      ("vector", spec.vector_column), ("split", spec.split_column)):
        if col in RESERVED:     # it would be dropped (or renamed) with the id column
            raise SchemaError(f"cannot ingest {source}: column {col!r} is reserved by Curate; "
                              f"it can be the id column only, not the {role} column")
    if "split" in columns and spec.split_column != "split":
        raise SchemaError(f"cannot ingest {source}: column 'split' would be replaced by the "
                          "split Curate assigns; rename it or pass it as the split column")
    for role, col in (("text", spec.text_column), ("label", spec.label_column),
                      ("id", spec.id_column), ("vector", spec.vector_column)):
        if col is not None and col not in columns:
            raise SchemaError(f"cannot ingest {source}: {role} column {col!r} not found; "
                              f"columns are {', '.join(columns)}")
