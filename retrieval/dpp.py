"""``dpp``: greedy MAP inference for a determinantal point process over the query's candidate
pool — fast greedy DPP (Chen, Zhang & Zhou, "Fast Greedy MAP Inference for Determinantal Point
Process to Improve Recommendation Diversity", NeurIPS 2018, Algorithm 1), the diversity
baseline vector databases do not ship.

Kernel over the P candidates (unit vectors x_i, relevance r_i = cos(q, x_i), or a learned
relevance model's r(q, x_i) in [0, 1], ``retrieval.relevance``):

    L = Diag(e^{α r}) · S · Diag(e^{α r}),   S_ij = x_i · x_j (+ 1e-6 on the diagonal),
    α = θ / (2 (1 − θ)),   so   log det L_Y = (θ / (1 − θ)) Σ_{i∈Y} r_i + log det S_Y

(the paper's §4 relevance–diversity trade-off: θ = 0 is pure diversity, θ → 1 pure relevance).
Greedy MAP adds j = argmax_i d_i² (the gain in log det is log d_i²) and updates, for every
candidate i, the Cholesky row e_i = (L_ji − ⟨c_j, c_i⟩) / d_j, c_i ← [c_i, e_i],
d_i² ← d_i² − e_i²: O(P k) per step after the O(P²) kernel. When every remaining d_i² falls
below 1e-10 (the set already spans the pool) the rest are filled by relevance. Vectorised over
the batch: (B, P, P) kernels, (B, P, k) Cholesky rows, a loop over the k picks.
"""

from __future__ import annotations

import numpy as np

from core.deadline import checkpoint
from core.errors import InvalidParameterError
from retrieval.baselines import PoolRetriever, candidates

EPS = 1e-10


def greedy_dpp(L: np.ndarray, k: int, valid: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """(B, k) positions chosen by fast greedy MAP for kernels L (B, P, P); ``valid`` (B, P)
    marks pickable candidates, ``fallback`` (B, P) orders the rest once the kernel is spent
    (higher first). −1 where fewer than k candidates are valid."""
    B, P, _ = L.shape
    k_eff = min(k, P)
    C = np.zeros((B, P, k_eff))
    d2 = np.where(valid, np.einsum("bii->bi", L), -np.inf)
    chosen = ~valid.copy()
    out = np.full((B, k), -1, dtype=np.int64)
    ar = np.arange(B)
    for t in range(k_eff):
        checkpoint("a DPP pick")
        gain = np.where(chosen, -np.inf, d2)
        spent = gain.max(1) < EPS
        pick = np.where(spent, np.where(chosen, -np.inf, fallback).argmax(1), gain.argmax(1))
        ok = ~chosen[ar, pick]
        out[ok, t] = pick[ok]
        chosen[ar, pick] = True
        dj = np.sqrt(np.clip(d2[ar, pick], EPS, None))
        e = (L[ar, pick] - np.einsum("bpt,bt->bp", C[:, :, :t], C[ar, pick, :t])) / dj[:, None]
        e[spent] = 0.0
        C[:, :, t] = e
        d2 = d2 - e ** 2
    return out


class DPPRetriever(PoolRetriever):
    name = "dpp"
    summary = "greedy MAP of a quality×similarity DPP over the query's top `pool` (θ: relevance)"
    theta: float = 0.7

    def _check_trade_off(self) -> None:
        if not 0 <= self.theta < 1:
            raise InvalidParameterError(f"dpp: theta must be in [0, 1); got {self.theta!r}")

    def _retrieve(self, V, k, weights, seed, exclude):
        rel, rows, X = candidates(self, V[:, 0], max(k, self.pool), exclude)
        rel = self._relevance(V, rows, rel)
        valid = np.isfinite(rel)
        r = np.where(valid, rel, 0.0)
        alpha = self.theta / (2 * (1 - self.theta))
        quality = np.exp(alpha * (r - r.max(1, keepdims=True)))   # scale-free: det ratio
        X64 = X.astype(np.float64)
        S = X64 @ X64.transpose(0, 2, 1)
        S[:, np.arange(S.shape[1]), np.arange(S.shape[1])] += 1e-6
        L = quality[:, :, None] * S * quality[:, None, :]
        pos = greedy_dpp(L, k, valid, np.where(valid, rel, -np.inf))
        picked = np.where(pos >= 0, np.take_along_axis(rows, np.clip(pos, 0, None), axis=1), -1)
        return picked, np.full((len(V), k), -1)
