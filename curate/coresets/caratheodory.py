"""Carathéodory's theorem as an algorithm, and its fast version.

Given n weighted points P (n, d) with weights u ≥ 0, find at most d+1 of them with new
weights w ≥ 0 such that Σ w = Σ u and Σ w·p = Σ u·p exactly (up to float round-off).

- ``caratheodory``: the classic elimination. While more than d+1 points remain, the d+1-or-more
  vectors p_i − p_0 are linearly dependent; take a null-space vector v (Σ v_i (p_i − p_0) = 0,
  prepend v_0 = −Σ v_i so Σ v = 0 and Σ v·p = 0), move the weights along −v until one hits
  zero (α = min_{v_i>0} u_i / v_i), drop it. O(n²·d²).
- ``fast_caratheodory`` (Maalouf, Jubran & Feldman, NeurIPS 2019): cut the points into k
  chunks, run ``caratheodory`` on the chunks' weighted means, keep only the points of the
  surviving chunks (their weights scaled by the chunk's new/old weight ratio), repeat.
  O(n·d + log n · k·d²·…); the result is the same guarantee.
"""

from __future__ import annotations

import numpy as np


def caratheodory(P: np.ndarray, u: np.ndarray,
                 tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """(indices into P, new weights) with ≤ d+1 points and the same weighted sum."""
    P = np.asarray(P, dtype=np.float64)
    w = np.asarray(u, dtype=np.float64).copy()
    idx = np.flatnonzero(w > tol)
    d = P.shape[1]
    while len(idx) > d + 1:
        A = (P[idx[1:]] - P[idx[0]]).T                         # (d, m-1)
        v_rest = np.linalg.svd(A, full_matrices=True)[2][-1]   # A @ v_rest ≈ 0
        v = np.concatenate([[-v_rest.sum()], v_rest])
        if not (v > tol).any():
            v = -v
        pos = v > tol
        ratio = np.where(pos, w[idx] / np.where(pos, v, 1.0), np.inf)
        j = int(np.argmin(ratio))
        wi = w[idx] - ratio[j] * v
        wi[j] = 0.0                                            # the point that hit zero
        wi[wi < tol] = 0.0
        w[idx] = wi
        idx = idx[wi > 0]
    return idx, w[idx]


def fast_caratheodory(P: np.ndarray, u: np.ndarray | None = None,
                      chunks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fast Carathéodory: ≤ d+1 points of P whose weighted sum equals Σ u·p."""
    P = np.asarray(P, dtype=np.float64)
    n, d = P.shape
    w = np.ones(n) if u is None else np.asarray(u, dtype=np.float64).copy()
    idx = np.flatnonzero(w > 0)
    k = chunks or 2 * (d + 1)
    while len(idx) > d + 1:
        if len(idx) <= k:
            sub, sw = caratheodory(P[idx], w[idx])
            return idx[sub], sw
        parts = np.array_split(idx, k)
        weight = np.array([w[p].sum() for p in parts])
        means = np.stack([(w[p, None] * P[p]).sum(0) / w[p].sum() for p in parts])
        keep, new_weight = caratheodory(means, weight)
        nxt = []
        for j, nw in zip(keep, new_weight, strict=True):
            w[parts[j]] *= nw / weight[j]
            nxt.append(parts[j])
        idx = np.concatenate(nxt)
    return idx, w[idx]
