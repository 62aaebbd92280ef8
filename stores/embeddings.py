"""Embeddings on disk: one folder per version, ``embeddings/<model>@<hex>/`` holding
``vectors.npy`` (float32, N×d, row-aligned by ``row_idx``) and ``embedding.json`` (model name,
dim, normalised, fingerprint of inputs). A new version is published beside the old one and
the catalog switched to it in one transaction, so a crash never leaves vectors that disagree
with their catalog row. Stores written before versioning hold ``embeddings/<model>.npy`` with
a ``<model>.json`` sidecar; ``read_embeddings`` reads both layouts.

Vectors are written as a stream of row batches (``write_embeddings``), so an embedding of
100M rows never sits in memory whole; they are memory-mapped on read, so a 1M×384 matrix
costs no RAM until it is touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import SchemaError
from stores import files
from stores.ingest import check_finite
from stores.vectors import NpyWriter

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(model: str) -> str:
    """A filesystem-safe name for a model (``org/model`` → ``org_model``)."""
    return _SAFE.sub("_", model)


@dataclass(frozen=True)
class EmbeddingMeta:
    model: str
    dim: int
    n_rows: int
    normalized: bool
    source_fingerprint: str  # fingerprint of the samples these vectors were computed from
    created_at: str
    #: how the vectors were made (e.g. {"backend": "onnx-int8", "onnxruntime": "1.31.1"});
    #: None for ingested vectors and for stores written before backends existed
    backend: dict | None = None

    def to_json(self) -> dict:
        return asdict(self)


VECTORS = "vectors.npy"
SIDECAR = "embedding.json"


def write_embeddings(folder: Path, batches: Iterable[np.ndarray], meta: EmbeddingMeta) -> None:
    """Write ``batches`` — (n_i, d) arrays whose rows, in order, are the embedding — and the
    sidecar into ``folder`` (a staged version folder), one batch in memory at a time: each
    is checked (2-D, ``meta.dim`` columns, finite; errors name the global row) and appended
    to ``vectors.npy``; the row count must come to ``meta.n_rows``. The sidecar is written
    last, so a folder without one is an unfinished write."""
    what = f"embeddings for {meta.model!r}"
    writer = NpyWriter(folder / VECTORS, meta.dim)
    try:
        for batch in batches:
            batch = np.asarray(batch)
            if batch.ndim != 2 or batch.shape[1] != meta.dim:
                raise SchemaError(f"{what} must have shape ({meta.n_rows}, {meta.dim}); got "
                                  f"a batch of shape {batch.shape} at row {writer.rows}")
            check_finite(batch, what, offset=writer.rows)
            writer.append(batch)
        rows = writer.close()
    finally:
        writer.abort()
    if rows != meta.n_rows:
        raise SchemaError(f"{what} must have {meta.n_rows} rows (one per sample); got {rows}")
    files.write_json(folder / SIDECAR, meta.to_json())


def array_batches(array: np.ndarray, rows: int = 65_536) -> Iterator[np.ndarray]:
    """An (N, d) array (a memory map included) as row slices of ``rows``: views, no copy."""
    for lo in range(0, len(array), rows):
        yield array[lo:lo + rows]


def embedding_files(path: Path) -> tuple[Path, Path]:
    """(vectors, sidecar) of a version folder, or of a legacy ``<model>.npy`` file."""
    if path.suffix == ".npy":
        return path, path.with_suffix(".json")
    return path / VECTORS, path / SIDECAR


def read_embeddings(path: Path, mmap: bool = True) -> tuple[np.ndarray, EmbeddingMeta]:
    npy, sidecar = embedding_files(path)
    meta = EmbeddingMeta(**files.read_json(sidecar))
    arr = np.load(npy, mmap_mode="r" if mmap else None, allow_pickle=False)
    return arr, meta
