"""Fan-out baselines behind one interface: ``retrieve(queries (B, d), k) -> FanoutResult``.

- ``topk``: the k nearest items (no fan-out).
- ``mmr``: Maximal Marginal Relevance (Carbonell & Goldstein, 1998) over the top ``pool``
  candidates: repeatedly add argmax_i λ·cos(q, x_i) − (1 − λ)·max_{j ∈ S} cos(x_i, x_j).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.errors import InvalidParameterError
from retrieval.index import VectorIndex, normalise


@dataclass(frozen=True)
class FanoutResult:
    row_idx: np.ndarray     # (B, k) int64
    scores: np.ndarray      # (B, k) cosine to the query
    source: np.ndarray      # (B, k) which sub-query found each item (−1: the query itself)


class TopKRetriever:
    name = "topk"

    def __init__(self, index: VectorIndex, params: dict | None = None):
        self.index, self.params = index, params

    def retrieve(self, queries: np.ndarray, k: int) -> FanoutResult:
        scores, rows = self.index.search(queries, k, self.params)
        return FanoutResult(rows, scores, np.full(rows.shape, -1))


class MMRRetriever:
    name = "mmr"

    def __init__(self, index: VectorIndex, vectors: np.ndarray, *, lam: float = 0.5,
                 pool: int = 200, params: dict | None = None):
        if not 0 <= lam <= 1:
            raise InvalidParameterError(f"mmr: lambda must be in [0, 1]; got {lam!r}")
        self.index, self.vectors, self.lam, self.pool, self.params = \
            index, vectors, lam, pool, params

    def retrieve(self, queries: np.ndarray, k: int) -> FanoutResult:
        Q = normalise(np.atleast_2d(queries))
        scores, rows = self.index.search(Q, max(k, self.pool), self.params)
        out_rows = np.full((len(Q), k), -1, dtype=np.int64)
        out_scores = np.zeros((len(Q), k), dtype=np.float32)
        for b in range(len(Q)):
            valid = rows[b] >= 0
            cand, rel = rows[b][valid], scores[b][valid]
            X = normalise(self.vectors[cand])
            sim = X @ X.T
            chosen: list[int] = []
            max_sim = np.full(len(cand), -np.inf)
            for _ in range(min(k, len(cand))):
                red = np.where(np.isfinite(max_sim), max_sim, 0.0)
                value = self.lam * rel - (1 - self.lam) * red
                value[chosen] = -np.inf
                j = int(np.argmax(value))
                chosen.append(j)
                max_sim = np.maximum(max_sim, sim[j])
            out_rows[b, : len(chosen)] = cand[chosen]
            out_scores[b, : len(chosen)] = rel[chosen]
        return FanoutResult(out_rows, out_scores, np.full(out_rows.shape, -1))
