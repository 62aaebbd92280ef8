"""Exact k-nearest-neighbour search in shards, one executor task per shard, merged exactly.

    knn_search(X, rows, kk, executor) -> (sims (n, kk) float32, ids (n, kk) int64)

The database (the rows ``rows`` of ``X``, L2-normalised: inner product = cosine) is cut into
shards of ``SHARD_ROWS``; each task builds a FAISS ``IndexFlatIP`` over its shard and
searches every query against it, returning its (n, kk) best; the driver keeps, per query,
the kk best of all shards' answers (ties: lower id first). An exact search's top kk is among
the union of every shard's top kk, so the merge is exact — the same neighbours as one flat
index over all rows, whatever the number of shards or workers. Shards are merged a round
of ``executor.workers`` at a time, so the driver holds O(n·kk·workers), not O(n·kk·shards).
Cost O(n²·d) in all: the path for a cluster (``--executor ray``), where the shards run in
parallel; on one machine ``facility_location`` uses HNSW or k-means cells instead.
"""

from __future__ import annotations

import faiss
import numpy as np

SHARD_ROWS = 50_000
QUERY_ROWS = 1 << 16


def _normalised(X, rows: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(X[rows], dtype=np.float32)
    faiss.normalize_L2(out)
    return out


def _shard_task(item: tuple[int, int], shared: dict) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = item
    rows, kk = shared["rows"], shared["kk"]
    index = faiss.IndexFlatIP(shared["X"].shape[1])
    index.add(_normalised(shared["X"], rows[lo:hi]))
    k = min(kk, hi - lo)
    sims = np.empty((len(rows), k), dtype=np.float32)
    ids = np.empty((len(rows), k), dtype=np.int64)
    for q in range(0, len(rows), QUERY_ROWS):
        s, i = index.search(_normalised(shared["X"], rows[q:q + QUERY_ROWS]), k)
        sims[q:q + len(s)], ids[q:q + len(s)] = s, i + lo
    return sims, ids


def merge_topk(sims: np.ndarray, ids: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the kk largest ``sims`` (ties: lower id), both (n, ≥kk) arrays."""
    order = np.lexsort((ids, -sims), axis=1)[:, :kk]
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(ids, order, axis=1)


def knn_search(X, rows: np.ndarray, kk: int, executor,
               shard_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN of the rows ``rows`` of ``X`` among themselves; ids are positions
    into ``rows``. See the module docstring."""
    n = len(rows)
    kk = min(kk, n)
    shard_rows = shard_rows or SHARD_ROWS
    shards = [(lo, min(lo + shard_rows, n)) for lo in range(0, n, shard_rows)]
    shared = {"X": X, "rows": np.asarray(rows, dtype=np.int64), "kk": kk}
    best_s = np.full((n, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((n, 0), dtype=np.int64)
    step = max(1, executor.workers)
    for r in range(0, len(shards), step):
        parts = executor.map(_shard_task, shards[r:r + step], shared=shared,
                             desc="kNN shards" if len(shards) > 1 else "")
        best_s, best_i = merge_topk(np.hstack([best_s, *[p[0] for p in parts]]),
                                    np.hstack([best_i, *[p[1] for p in parts]]), kk)
    return best_s, best_i
