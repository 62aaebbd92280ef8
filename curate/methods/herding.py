"""Herding (Welling, ICML 2009; the exemplar rule of iCaRL, Rebuffi et al., CVPR 2017).

Within each class (or globally), pick samples so the running mean of the picks tracks the
class mean μ:  p_t = argmin_{x ∉ P} ‖ t·μ − Σ_{s<t} p_s − x ‖².  Each step is one BLAS
mat-vec (O(n·d) time, O(n) memory). Per-class quotas use largest remainder.
Score = the residual ‖μ − mean(P_t)‖ after each pick (falls as the subset fills in).

Groups over ``partition.PARTITION_ABOVE`` rows (``partition="auto"``) are cut into k-means
cells; each cell herds twice its size-proportional share towards its own mean, one task per
cell, and a second round herds the q picks out of the cells' candidates towards the whole
group's mean (GreeDi's two rounds; ``curate.methods.partition`` gives the bound and the size
above which round two is skipped).
"""

from __future__ import annotations

import numpy as np

from curate.checks import check_bool
from curate.inputs import SelectionInput
from curate.methods.partition import PART_SIZE, check_partition, partitioned
from curate.selector import Needs, Picks, Selector, register


def herd(X: np.ndarray, q: int, mu: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in X, n × d) of q herded samples and the residual ‖μ − mean(P_t)‖ after
    each pick (q,); μ is X's own mean unless given (the partitioned merge herds a cells'
    candidate union towards the whole group's mean)."""
    X = np.asarray(X, dtype=np.float64)
    mu = X.mean(axis=0) if mu is None else np.asarray(mu, dtype=np.float64)
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

    lazy_embeddings = True

    def __init__(self, *, per_class: bool = True, partition: str = "auto",
                 part_size: int = PART_SIZE):
        self.per_class = per_class
        self.partition = partition
        self.part_size = part_size

    def _check_params(self) -> None:
        check_bool(self.name, "per_class", self.per_class)
        check_partition(self.name, self.partition, self.part_size)

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        positions, residuals, info, _ = partitioned(
            self, data, k, rng, herd, per_class=self.per_class, partition=self.partition,
            part_size=int(self.part_size), merge="union", refine=herd)
        return Picks(positions=positions, scores=residuals, info=info)
