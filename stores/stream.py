"""Streaming ingest: a file (or a folder of shards) into a dataset, one record batch at a time.

Sources: Parquet (a file, or a folder of ``*.parquet`` shards in name order), CSV, JSONL and a
Hugging Face ``save_to_disk`` folder of Arrow files. Two passes, neither holding the table:

1. **Keys.** Only the id, label and split columns are read (a column projection for Parquet)
   and validated exactly as an in-memory ingest would (``prepare_samples``: nulls, duplicate
   ids, split values) and the stratified split is assigned — the same rows get the same
   split as ``Store.add_dataset`` would give them.
2. **Rows.** Every batch is read whole; its vector column (if any) becomes float32 straight
   from the Arrow buffers (``stores.vectors``) and is appended to ``vectors.npy``; the other
   columns, with ``row_idx``/``sample_id``/``split`` from pass 1, are appended to
   ``samples.parquet``. Text columns are checked per batch (strings, no nulls).

Everything is written into the dataset's staged folder and published under the store lock
only after the last batch passed, so bad input at any shard leaves the store unchanged.
Peak memory: one batch of every column plus the key columns of all rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import EmptyDatasetError, SchemaError
from stores.ingest import FORMATS, IngestSpec, check_columns, prepare_samples
from stores.vectors import NpyWriter, arrow_vectors, open_rows, preallocate_npy

BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Source:
    """A readable input: its format, its files in order, and its Arrow schema."""

    path: Path
    fmt: str
    files: tuple[Path, ...]
    schema: pa.Schema
    n_rows: int | None  # known up front for Parquet (footer metadata), else None

    def batches(self, columns: list[str] | None = None,
                batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Record batches in row order (file by file), optionally only ``columns``."""
        for f in self.files:
            try:
                yield from _file_batches(f, self.fmt, columns, batch_rows)
            except (pa.ArrowException, OSError) as exc:
                raise SchemaError(f"cannot read {f} as {self.fmt}: "
                                  f"{str(exc).splitlines()[0]}") from None


def open_source(path: str | Path) -> Source:
    """Find the files and the schema of ``path``; refuse what cannot be read, in one line."""
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"cannot ingest {path}: no such file")
    if path.is_dir():
        shards = sorted(path.glob("*.parquet")) or sorted(path.glob("*.pq"))
        fmt = "parquet"
        if not shards:
            shards, fmt = sorted(path.glob("*.arrow")), "arrow"
        if not shards:
            raise SchemaError(f"cannot ingest {path}: folder has no .parquet shards or .arrow "
                              "files (a Hugging Face dataset saved with save_to_disk)")
    else:
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise SchemaError(f"cannot ingest {path}: unknown format {path.suffix!r}; "
                              f"allowed: {', '.join(sorted(FORMATS))}")
        if path.stat().st_size == 0:
            raise EmptyDatasetError(f"cannot ingest {path}: the file is empty")
        shards = [path]
    schema = None
    for f in shards:
        try:
            s = _file_schema(f, fmt)
        except (pa.ArrowException, OSError) as exc:
            raise SchemaError(f"cannot read {f} as {fmt}: {str(exc).splitlines()[0]}") \
                from None
        if schema is None:
            schema = s
        elif s.names != schema.names:
            raise SchemaError(f"cannot ingest {path}: shard {f.name} has columns "
                              f"{', '.join(s.names)}, the first shard "
                              f"{', '.join(schema.names)}")
    n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in shards) \
        if fmt == "parquet" else None
    return Source(path=path, fmt=fmt, files=tuple(shards), schema=schema, n_rows=n_rows)


def read_table(path: str | Path) -> pl.DataFrame:
    """A whole (small) table — a calibration pool, a sets file — from any ingest source."""
    source = open_source(path)
    batches = list(source.batches())
    if not batches:
        raise EmptyDatasetError(f"cannot read {path}: it has no rows")
    return pl.from_arrow(pa.Table.from_batches(batches))


def _file_schema(f: Path, fmt: str) -> pa.Schema:
    if fmt == "parquet":
        return pq.read_schema(f)
    first = next(_file_batches(f, fmt, None, 1024), None)
    if first is None:
        raise pa.ArrowInvalid("no rows")
    return first.schema


def _file_batches(f: Path, fmt: str, columns: list[str] | None,
                  batch_rows: int) -> Iterator[pa.RecordBatch]:
    if fmt == "parquet":
        yield from pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=columns)
        return
    if fmt == "csv":
        import pyarrow.csv as pcsv

        conv = pcsv.ConvertOptions(include_columns=columns) if columns else None
        reader = pcsv.open_csv(f, read_options=pcsv.ReadOptions(block_size=64 << 20),
                               convert_options=conv)
    elif fmt == "jsonl":
        import pyarrow.json as pjson

        reader = pjson.open_json(f, read_options=pjson.ReadOptions(block_size=64 << 20))
    else:  # Arrow IPC (stream, as HF writes it, or file)
        src = pa.memory_map(str(f))
        try:
            reader = pa.ipc.open_stream(src)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(src)
            for i in range(reader.num_record_batches):
                b = reader.get_batch(i)
                yield b.select(columns) if columns else b
            return
    for b in reader:
        yield b.select(columns) if columns and fmt != "csv" else b


def stream_ingest(source: Source, spec: IngestSpec, samples_path: Path,
                  vectors_path: Path | None = None, batch_rows: int = BATCH_ROWS,
                  progress=None, executor=None) -> tuple[int, int]:
    """Write the sample table of ``source`` to ``samples_path`` (Parquet) and, if
    ``spec.vector_column``, its vectors to ``vectors_path`` (``.npy``); return
    (rows, vector dimension or 0).

    With a distributed ``executor`` (``ray``) and Parquet shards, the vectors — the bulk of
    the bytes — are converted one shard per task, each writing its rows in place into a
    preallocated ``.npy`` (offsets from the shards' footers), while this process streams the
    other columns; the file is byte-identical to the one-process path. Workers write only
    into the staged folder, so a failed task leaves the store unchanged."""
    where = str(source.path)
    check_columns(source.schema.names, spec, where)
    if spec.text_column is not None:
        t = source.schema.field(spec.text_column).type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t)):
            raise SchemaError(f"cannot ingest {where}: text column {spec.text_column!r} has "
                              f"type {t}, expected strings")
    key_cols = [c for c in (spec.id_column, spec.label_column,
                            spec.split_column if spec.split_column in source.schema.names
                            else None) if c is not None]
    key_cols = list(dict.fromkeys(key_cols))
    keys = _read_keys(source, key_cols, batch_rows)
    n = keys.height
    samples = prepare_samples(keys, replace(spec, text_column=None, vector_column=None),
                              where)
    meta = samples.select("row_idx", "sample_id", "split")
    drop = {c for c in (spec.vector_column,) if c}
    drop |= {c for c in (spec.id_column,) if c in ("row_idx", "sample_id")}
    drop |= {"split"}
    spread = (spec.vector_column is not None and executor is not None
              and executor.name != "local" and source.fmt == "parquet")
    dim_spread = _spread_vectors(source, spec, vectors_path, n, batch_rows, executor) \
        if spread else 0
    vec = NpyWriter(vectors_path) if spec.vector_column and not spread else None
    read_cols = None if not spread else [c for c in source.schema.names
                                         if c != spec.vector_column]
    writer = None
    offset = 0
    try:
        for batch in source.batches(read_cols, batch_rows):
            m = batch.num_rows
            if offset + m > n:
                raise SchemaError(f"cannot ingest {where}: it changed while being read")
            if spec.text_column is not None:
                nulls = batch.column(spec.text_column).null_count
                if nulls:
                    raise SchemaError(f"cannot ingest {where}: text column "
                                      f"{spec.text_column!r} has null value(s) in rows "
                                      f"{offset}..{offset + m - 1}")
            if vec is not None:
                vec.append(arrow_vectors(batch.column(spec.vector_column),
                                         column=spec.vector_column, source=where,
                                         offset=offset, dim=vec.dim))
            table = _samples_batch(batch, meta.slice(offset, m), drop)
            if writer is None:
                writer = pq.ParquetWriter(samples_path, table.schema, write_statistics=False)
            elif table.schema != writer.schema:
                table = _cast_like(table, writer.schema, where, offset)
            writer.write_table(table)
            offset += m
            if progress is not None:
                progress(m)
        if offset != n:
            raise SchemaError(f"cannot ingest {where}: it changed while being read")
    finally:
        if writer is not None:
            writer.close()
        dim = dim_spread
        if vec is not None:
            vec.close()
            dim = vec.dim or 0
    return n, dim


def _spread_vectors(source: Source, spec: IngestSpec, path: Path, n: int, batch_rows: int,
                    executor) -> int:
    """Convert the vector column shard by shard on ``executor`` into ``path``; return d."""
    where = str(source.path)
    counts = [pq.ParquetFile(f).metadata.num_rows for f in source.files]
    if sum(counts) != n:
        raise SchemaError(f"cannot ingest {where}: it changed while being read")
    first = next(b for b in source.batches([spec.vector_column], 1) if b.num_rows)
    dim = arrow_vectors(first.column(spec.vector_column), column=spec.vector_column,
                        source=where, offset=0).shape[1]
    preallocate_npy(path, n, dim)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
    items = [(str(f), int(s), int(c)) for f, s, c in zip(source.files, starts, counts,
                                                         strict=True) if c]
    shared = {"column": spec.vector_column, "dim": dim, "path": str(path), "n": n,
              "where": where, "batch_rows": batch_rows}
    executor.map(_vector_task, items, shared=shared, desc="vectors")
    return dim


def _vector_task(item: tuple[str, int, int], shared: dict) -> int:
    """One shard's vectors into rows [start, start + count) of the preallocated file."""
    f, start, count = item
    out = open_rows(Path(shared["path"]), shared["n"], shared["dim"])
    pos = start
    for batch in _file_batches(Path(f), "parquet", [shared["column"]], shared["batch_rows"]):
        v = arrow_vectors(batch.column(shared["column"]), column=shared["column"],
                          source=shared["where"], offset=pos, dim=shared["dim"])
        out[pos:pos + len(v)] = v
        pos += len(v)
    if pos != start + count:
        raise SchemaError(f"cannot ingest {shared['where']}: {f} changed while being read")
    out.flush()
    del out
    return count


def _read_keys(source: Source, cols: list[str], batch_rows: int) -> pl.DataFrame:
    """The key columns of every row (a row count only when there are none)."""
    if not cols:
        n = sum(b.num_rows for b in source.batches(
            [source.schema.names[0]] if source.fmt == "parquet" else None, batch_rows))
        if n == 0:
            raise EmptyDatasetError(f"cannot ingest {source.path}: it has no rows")
        return pl.DataFrame({"__rows": np.zeros(n, dtype=np.int8)})
    parts = [pl.from_arrow(pa.Table.from_batches([b.select(cols)]))
             for b in source.batches(cols, batch_rows) if b.num_rows]
    if not parts:
        raise EmptyDatasetError(f"cannot ingest {source.path}: it has no rows")
    try:
        return pl.concat(parts, how="vertical_relaxed")
    except pl.exceptions.PolarsError as exc:
        raise SchemaError(f"cannot ingest {source.path}: its shards disagree on column "
                          f"types ({str(exc).splitlines()[0]})") from None


def _samples_batch(batch: pa.RecordBatch, meta: pl.DataFrame, drop: set[str]) -> pa.Table:
    user = [c for c in batch.schema.names if c not in drop]
    cols = {"row_idx": meta["row_idx"].to_arrow(), "sample_id": meta["sample_id"].to_arrow(),
            "split": meta["split"].to_arrow()}
    for c in user:
        cols[c] = batch.column(c)
    return pa.table(cols)


def _cast_like(table: pa.Table, schema: pa.Schema, where: str, offset: int) -> pa.Table:
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"cannot ingest {where}: from row {offset} on, columns have other "
                          f"types than before ({str(exc).splitlines()[0]})") from None
