"""Vector summarisation: a small weighted subset whose weighted sum of rows approximates
(or equals) the sum of all rows of V (n, q) — here the rows of AutoCoreset's loss matrix.

- ``caratheodory``: exact, at most q+1 points (fast Carathéodory); when the budget is below
  q+1 it falls back to ``uniform`` (it cannot go lower and stay exact).
- ``uniform``: best of ``n_draws`` uniform samples of size m (weights n/m), the one whose
  weighted sum is closest (L2) to the true sum.
- ``sensitivity``: importance sampling with s_i = max_j v_ij / Σ_i v_ij + 1/n, t = Σ s,
  m i.i.d. draws with p_i = s_i/t and weight t/(s_i·m); repeated draws merge (weights add),
  so the result can have fewer than m distinct points.

Each returns (positions into V, weights); weights sum to about n (each point stands for
w_i points of the data).
"""

from __future__ import annotations

import numpy as np

from curate.coresets.caratheodory import fast_caratheodory

SUMMARISERS = ("caratheodory", "uniform", "sensitivity")


def summarise(V: np.ndarray, m: int, rng: np.random.Generator, method: str,
              n_draws: int = 100) -> tuple[np.ndarray, np.ndarray]:
    n, q = V.shape
    if m >= n:
        return np.arange(n), np.ones(n)
    if method == "caratheodory" and m >= q + 1:
        idx, w = fast_caratheodory(V)
        return idx, w
    if method == "sensitivity":
        col = V.sum(axis=0)
        col[col <= 0] = 1.0
        s = (V / col).max(axis=1) + 1.0 / n
        t = s.sum()
        draws = rng.choice(n, size=m, replace=True, p=s / t)
        idx, counts = np.unique(draws, return_counts=True)
        return idx, counts * t / (s[idx] * m)
    target = V.sum(axis=0)
    best, best_err = None, np.inf
    for _ in range(n_draws):
        idx = rng.choice(n, size=m, replace=False)
        err = float(np.linalg.norm(V[idx].sum(axis=0) * (n / m) - target))
        if err < best_err:
            best, best_err = idx, err
    return np.sort(best), np.full(m, n / m)
