"""Embeddings on disk: one folder per version, ``embeddings/<model>@<hex>/`` holding
``vectors.npy`` (float32, N×d, row-aligned by ``row_idx``) and ``embedding.json`` (model name,
dim, normalised, fingerprint of inputs). A new version is published beside the old one and
the catalog switched to it in one transaction, so a crash never leaves vectors that disagree
with their catalog row. Stores written before versioning hold ``embeddings/<model>.npy`` with
a ``<model>.json`` sidecar; ``read_embeddings`` reads both layouts.

The array is memory-mapped on read, so a 1M×384 matrix costs no RAM until it is touched.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import SchemaError
from stores import files
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
    #: how the vectors were made (e.g. {"backend": "onnx-int8", "onnxruntime": "1.31.1"});
    #: None for ingested vectors and for stores written before backends existed
    backend: dict | None = None

    def to_json(self) -> dict:
        return asdict(self)


VECTORS = "vectors.npy"
SIDECAR = "embedding.json"


def write_embeddings(folder: Path, array: np.ndarray, meta: EmbeddingMeta) -> None:
    """Validate ``array`` (N×d) and write it with its sidecar into ``folder`` (a staged
    version folder)."""
    if array.ndim != 2 or array.shape != (meta.n_rows, meta.dim):
        raise SchemaError(f"embeddings for {meta.model!r} must have shape "
                          f"({meta.n_rows}, {meta.dim}); got {array.shape}")
    check_finite(array, f"embeddings {meta.model!r}")
    files.write_npy(folder / VECTORS, np.ascontiguousarray(array, dtype=np.float32))
    files.write_json(folder / SIDECAR, meta.to_json())


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
