"""Embeddings on disk: ``embeddings/<model>.npy`` (float32, N×d, row-aligned by ``row_idx``)
plus a JSON sidecar ``<model>.json`` (model name, dim, normalised, fingerprint of inputs).

The array is memory-mapped on read, so a 1M×384 matrix costs no RAM until it is touched.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stores import files
from stores.errors import SchemaError
from stores.ingest import check_finite

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

    def to_json(self) -> dict:
        return asdict(self)


def write_embeddings(folder: Path, array: np.ndarray, meta: EmbeddingMeta) -> Path:
    """Validate and write ``array`` (N×d) and its sidecar atomically; return the .npy path."""
    if array.ndim != 2 or array.shape != (meta.n_rows, meta.dim):
        raise SchemaError(f"embeddings for {meta.model!r} must have shape "
                          f"({meta.n_rows}, {meta.dim}); got {array.shape}")
    check_finite(array, f"embeddings {meta.model!r}")
    folder.mkdir(parents=True, exist_ok=True)
    stem = file_stem(meta.model)
    npy = files.write_npy(folder / f"{stem}.npy", np.ascontiguousarray(array, dtype=np.float32))
    files.write_json(folder / f"{stem}.json", meta.to_json())
    return npy


def read_embeddings(folder: Path, model: str,
                    mmap: bool = True) -> tuple[np.ndarray, EmbeddingMeta]:
    stem = file_stem(model)
    meta = EmbeddingMeta(**files.read_json(folder / f"{stem}.json"))
    arr = np.load(folder / f"{stem}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
    return arr, meta
