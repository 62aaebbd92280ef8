"""FAISS indices over a dataset's embeddings, persisted in the store.

``build_index`` takes a FAISS factory string (``"Flat"``, ``"IVF256,Flat"``, ``"HNSW32"``, …),
L2-normalises the vectors and uses inner product (= cosine), trains IVF-style indices on a
seeded sample, adds every row with FAISS ids = ``row_idx``, and writes
``indices/<name>/index.faiss`` + ``index.json`` (factory, metric, dim, n, dataset, embedding,
fingerprint). ``VectorIndex.search`` is batched and takes per-call search parameters
(``{"nprobe": 16}``, ``{"efSearch": 128}``) applied through ``faiss.ParameterSpace``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.errors import InvalidParameterError, SchemaError
from stores import Store, files
from stores.store import check_name

#: rows normalised at a time (bounds the temporaries: one float per row, plus a chunk's rows
#: where a squared norm overflows float32)
NORMALISE_CHUNK = 1 << 16


def normalise(X: np.ndarray) -> np.ndarray:
    """A float32 copy of X (n, d) with unit rows (a zero row stays zero); NaN/inf refused.

    numpy, in place, ``NORMALISE_CHUNK`` rows at a time — one arithmetic whatever the batch
    size, so a query normalises to the same bits alone and in a batch. Not FAISS's
    ``normalize_L2``: each FAISS call releases the GIL and must take it back, which under a
    loaded server costs a wait for the switch interval (``retrieval.batching``); numpy's few
    µs on a request's vectors hold it instead. A row whose squared norm overflows float32 is
    normalised in float64."""
    X = np.array(X, dtype=np.float32, order="C")                  # always a copy
    if X.ndim != 2:
        raise SchemaError(f"vectors must be 2-D (n, d); got shape {X.shape}")
    for lo in range(0, len(X), NORMALISE_CHUNK):
        part = X[lo:lo + NORMALISE_CHUNK]                          # a view: written in place
        norms = np.sqrt(np.einsum("ij,ij->i", part, part))
        bad = ~np.isfinite(norms)
        if bad.any():
            if not np.isfinite(part[bad]).all():
                raise SchemaError("vectors contain NaN or inf")
            wide = part[bad].astype(np.float64)
            part[bad] = wide / np.linalg.norm(wide, axis=1, keepdims=True)
            norms[bad] = 1.0
        part *= (1.0 / np.where(norms > 0, norms, 1.0))[:, None]
    return X


@dataclass
class VectorIndex:
    """A loaded FAISS index whose ids are the dataset's ``row_idx``."""

    index: faiss.Index
    meta: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int,
               params: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores (q, k) cosine, row_idx (q, k); −1 where fewer than k exist)."""
        Q = normalise(np.atleast_2d(queries))
        if Q.shape[1] != self.dim:
            raise SchemaError(f"query has dimension {Q.shape[1]}; the index has {self.dim}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidParameterError(f"k must be an integer ≥ 1; got {k!r}")
        if params:
            space = faiss.ParameterSpace()
            for key, value in params.items():
                try:
                    space.set_index_parameter(self.index, key, value)
                except RuntimeError as exc:
                    raise InvalidParameterError(f"search parameter {key}={value!r} does not "
                                                f"apply to {self.meta.get('factory')}: "
                                                f"{str(exc).splitlines()[0]}") from None
        return self.index.search(Q, int(k))


def ground(index: VectorIndex, sub: np.ndarray, per: int = 20,
           exclude: np.ndarray | None = None) -> np.ndarray:
    """(B, k, d) sub-queries → (B, k) distinct row_idx: slot j takes its best hit not taken by
    slots < j (nor ``exclude`` (B,), one row per set never taken; −1: none).

    Each sub-query's ``max(per, k + 2)`` nearest items are searched (``sub_query_hits``),
    which always holds an unused one (at most k − 1 earlier picks + 1 excluded row are taken),
    so every slot gets a valid, distinct row whenever the index returns its hits (an
    approximate index that returns fewer leaves −1, which
    ``retrieval.retriever.complete`` refills)."""
    return assign_nearest(sub_query_hits(index, sub, per), exclude)


def sub_query_hits(index: VectorIndex, sub: np.ndarray, per: int = 20) -> np.ndarray:
    """(B, k, P) row ids of each sub-query's P = min(n, max(per, k + 2)) nearest items, best
    first (−1 where the index returned fewer); one batched search over the B·k sub-queries
    (B, k, d)."""
    B, k, d = sub.shape
    n = int(index.index.ntotal)
    _, rows = index.search(sub.reshape(B * k, d), min(n, max(per, k + 2)))
    return rows.reshape(B, k, -1)


def distinct_rows(rows: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """(B, P') the distinct ids of each row of ``rows`` (B, P) but −1 and ``exclude`` (B,),
    in ascending order, −1 padded, P' the most any row has. A sort per row marks repeats."""
    srt = np.sort(np.asarray(rows, dtype=np.int64), axis=1)
    dup = np.zeros_like(srt, dtype=bool)
    dup[:, 1:] = srt[:, 1:] == srt[:, :-1]
    if exclude is not None:
        dup |= srt == np.asarray(exclude, dtype=np.int64)[:, None]
    srt = np.where(dup | (srt < 0), np.iinfo(np.int64).max, srt)
    out = np.sort(srt, axis=1)                          # valid ids first, ascending
    width = int((out < np.iinfo(np.int64).max).sum(1).max()) if len(out) else 0
    out = out[:, :width]
    return np.where(out == np.iinfo(np.int64).max, -1, out)


def assign_nearest(hits: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """(B, k) rows from hits (B, k, P): slot j takes its first hit that no slot < j took and
    that is not ``exclude`` (B,) (−1 when all are). Vectorised over the batch; the loop runs
    over the k slots."""
    B, k, _ = hits.shape
    out = np.full((B, k + 1), -1, dtype=np.int64)          # column k: the excluded row
    if exclude is not None:
        out[:, k] = np.asarray(exclude, dtype=np.int64)
    for j in range(k):
        cand = hits[:, j]                                   # (B, P)
        taken = (cand[:, :, None] == out[:, None, :]).any(2) | (cand < 0)
        has = ~taken.all(1)
        first = np.argmax(~taken, axis=1)
        out[has, j] = cand[has, first[has]]
    return out[:, :k]


def build_index(store: Store, dataset: str | None = None, *, factory: str = "Flat",
                name: str | None = None, embedding: str | None = None,
                train_size: int = 100_000, seed: int = 0) -> dict[str, Any]:
    info = store.dataset_info(dataset)
    X, emb = store.embeddings(info.name, embedding)
    Xn = normalise(np.asarray(X))
    name = check_name(name or f"{info.name}-{factory.replace(',', '-').lower()}", "index")
    try:
        base = faiss.index_factory(Xn.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise InvalidParameterError(f"bad FAISS factory string {factory!r}: "
                                    f"{str(exc).splitlines()[0]}") from None
    try:
        nlist = faiss.extract_index_ivf(base).nlist
    except RuntimeError:  # not an IVF index
        nlist = None
    if nlist is not None and not 1 <= nlist <= len(Xn):
        raise InvalidParameterError(f"FAISS factory {factory!r} asks for {nlist} inverted lists; "
                                    f"it must be in [1, {len(Xn)}] (the number of vectors)")
    index = faiss.IndexIDMap2(base) if not isinstance(base, faiss.IndexIDMap) else base
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        sample = Xn[rng.choice(len(Xn), min(train_size, len(Xn)), replace=False)]
        base.train(sample)
    index.add_with_ids(Xn, np.arange(len(Xn), dtype=np.int64))
    meta = {"factory": factory, "metric": "inner_product", "normalized": True,
            "dim": int(Xn.shape[1]), "n": int(len(Xn)), "dataset": info.name,
            "embedding": emb.model, "encoder_backend": (emb.backend or {}).get("backend"),
            "dataset_fingerprint": info.fingerprint, "seed": seed, "ids": "row_idx"}

    def write(folder: Path) -> None:
        files.atomic_write(folder / "index.faiss",
                           lambda p: faiss.write_index(index, str(p)))

    store.write_index(name, write, meta)
    return {"index": name, **meta}


def load_index(store: Store, name: str) -> VectorIndex:
    path = store.index_path(name)
    return VectorIndex(faiss.read_index(str(path / "index.faiss")),
                       files.read_json(path / "index.json"))
