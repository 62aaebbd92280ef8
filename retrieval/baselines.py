"""The retrieval baselines, registered as ``topk`` and ``mmr`` (``retrieval.retriever``).

- ``topk``: the k nearest items of the full query (no fan-out).
- ``mmr``: Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998) over the query's
  top ``pool`` candidates: repeatedly add argmax_i λ·rel(q, x_i) − (1 − λ)·max_{j ∈ S}
  cos(x_i, x_j) (the first pick is the most relevant); rel = cos(q, x_i), or a learned
  relevance model's r(q, x_i) in [0, 1] (``retrieval.relevance``). Vectorised over the batch:
  (B, P, P) candidate similarities, a loop over the k picks.

Neither reads the request's objective weights; the reported objectives still use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import InvalidParameterError
from retrieval.retriever import MAX_POOL, FanoutResult, Retriever

__all__ = ["FanoutResult", "MMRRetriever", "PoolRetriever", "TopKRetriever", "candidates",
           "mmr_select"]


def candidates(retriever: Retriever, q: np.ndarray, size: int,
               exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The query's ``size`` nearest items as (cosines (B, P), row ids (B, P), unit vectors
    (B, P, d)); a missing hit (−1) or the excluded row gets cosine −inf and must not be
    picked. Shapes: q (B, d)."""
    n = int(retriever.index.meta["n"])
    scores, rows = retriever.index.search(q, min(n, size + 1), retriever.search_params)
    invalid = rows < 0
    if exclude is not None:
        invalid |= rows == exclude[:, None]
    rel = np.where(invalid, -np.inf, scores).astype(np.float64)
    X = retriever.vectors[np.clip(rows, 0, None)]
    return rel, rows, X


class TopKRetriever(Retriever):
    name = "topk"
    summary = "the k nearest items (no fan-out)"
    search_params: dict[str, Any] | None = None

    def _retrieve(self, V, k, weights, seed, exclude):
        _, rows = self.index.search(V[:, 0], k + (exclude is not None), self.search_params)
        if exclude is not None:                 # drop the excluded row, keep the order
            keep = rows != exclude[:, None]
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
            rows = np.take_along_axis(rows, order, axis=1)
        return rows[:, :k], np.full((len(V), k), -1)


class PoolRetriever(Retriever):
    """Base of the methods that re-rank the query's top ``pool`` candidates (mmr, dpp):
    the pool size and FAISS search parameters, checked once."""

    uses_relevance = True
    pool: int = 200
    search_params: dict[str, Any] | None = None

    def _relevance(self, V: np.ndarray, rows: np.ndarray, rel: np.ndarray) -> np.ndarray:
        """The candidates' relevance: ``rel`` (cosines from ``candidates``) or, with a
        relevance model, its scores (−inf kept where ``rel`` is −inf: never pick)."""
        if self.relevance is None:
            return rel
        return np.where(np.isfinite(rel), self.relevance.score(V, rows, self.vectors), -np.inf)

    def _check_params(self) -> None:
        if not 1 <= self.pool <= MAX_POOL:
            raise InvalidParameterError(f"{self.name}: pool must be in [1, {MAX_POOL}]; got "
                                        f"{self.pool!r}")
        if self.search_params is not None and not isinstance(self.search_params, dict):
            raise InvalidParameterError(f"{self.name}: search_params must be a mapping of "
                                        f"FAISS parameter to value; got {self.search_params!r}")
        self._check_trade_off()

    def _check_trade_off(self) -> None:
        """Check the method's own trade-off parameter (override)."""


class MMRRetriever(PoolRetriever):
    name = "mmr"
    summary = "maximal marginal relevance over the query's top `pool` (λ = relevance weight)"
    lam: float = 0.5

    def _check_trade_off(self) -> None:
        if not 0 <= self.lam <= 1:
            raise InvalidParameterError(f"mmr: lam must be in [0, 1]; got {self.lam!r}")

    def _retrieve(self, V, k, weights, seed, exclude):
        rel, rows, X = candidates(self, V[:, 0], max(k, self.pool), exclude)
        rel = self._relevance(V, rows, rel)
        pos = mmr_select(rel, X @ X.transpose(0, 2, 1), k, self.lam)   # batched BLAS
        picks = np.where(pos >= 0, np.take_along_axis(rows, np.clip(pos, 0, None), 1), -1)
        return picks, np.full((len(V), k), -1)


def mmr_select(rel: np.ndarray, sim: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Greedy MMR: (B, k) positions into the B candidate lists of relevance ``rel`` (B, P)
    (−inf: never pick) and pairwise similarities ``sim`` (B, P, P); each step adds
    argmax_i λ·rel_i − (1 − λ)·max_{j ∈ S} sim_ij, the first the most relevant; −1 once a
    list has no pickable candidate left. Vectorised over the batch, a loop over the k picks."""
    B, P = rel.shape
    max_sim = np.zeros((B, P))
    chosen = np.zeros((B, P), dtype=bool)
    picks = np.full((B, k), -1, dtype=np.int64)
    for t in range(min(k, P)):
        value = lam * rel - (1 - lam) * max_sim if t else rel.copy()
        value[chosen | ~np.isfinite(rel)] = -np.inf
        j = value.argmax(1)
        ok = np.isfinite(value[np.arange(B), j])
        picks[ok, t] = j[ok]
        chosen[np.arange(B)[ok], j[ok]] = True
        max_sim = np.maximum(max_sim, sim[np.arange(B), j])
    return picks
