"""Herding (Welling, ICML 2009; the exemplar rule of iCaRL, Rebuffi et al., CVPR 2017).

Within each class (or globally), pick samples so the running mean of the picks tracks the
class mean μ:  p_t = argmin_{x ∉ P} ‖ t·μ − Σ_{s<t} p_s − x ‖².  Each step is one BLAS
mat-vec (O(n·d) time, O(n) memory). Per-class quotas use largest remainder.
Score = the residual ‖μ − mean(P_t)‖ after each pick (falls as the subset fills in).
"""

from __future__ import annotations

import numpy as np

from curate.budget import class_groups
from curate.checks import check_bool
from curate.inputs import SelectionInput
from curate.selector import Needs, Picks, Selector, register


def herd(X: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in X) of q herded samples, and the residual after each pick."""
    X = np.asarray(X, dtype=np.float64)
    mu = X.mean(axis=0)
    sq = np.einsum("ij,ij->i", X, X)
    taken = np.zeros(len(X), dtype=bool)
    total = np.zeros(X.shape[1])
    out = np.empty(q, dtype=np.int64)
    resid = np.empty(q)
    for t in range(1, q + 1):
        target = t * mu - total
        d = sq - 2.0 * (X @ target)
        d[taken] = np.inf
        j = int(np.argmin(d))
        out[t - 1], taken[j] = j, True
        total += X[j]
        resid[t - 1] = float(np.linalg.norm(mu - total / t))
    return out, resid


@register("herding")
class HerdingSelector(Selector):
    """Herding: picks whose running mean tracks the (class) mean embedding."""

    needs = Needs(embeddings=True)

    def __init__(self, *, per_class: bool = True):
        self.per_class = per_class

    def _check_params(self) -> None:
        check_bool(self.name, "per_class", self.per_class)

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        groups = (class_groups(data.labels, k) if self.per_class and data.labels is not None
                  else [(np.arange(data.n), k)])
        pos, res = [], []
        for idx, q in groups:
            p, r = herd(data.embeddings[idx], q)
            pos.append(idx[p])
            res.append(r)
        return Picks(positions=np.concatenate(pos), scores=np.concatenate(res))
