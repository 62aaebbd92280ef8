"""k-center greedy (Sener & Savarese, ICLR 2018, "Active Learning for CNNs: a core-set
approach"): repeatedly add the candidate farthest from the current centres,

    c_{t+1} = argmax_i min_{c ∈ C_t} ‖x_i − x_c‖²,

a 2-approximation of the minimax facility (k-center) problem. The first centre is drawn
uniformly with the seeded generator. Memory is O(n): each step is one BLAS mat-vec
(‖x‖² − 2 X·x_c + ‖x_c‖²) against the newest centre, never an N×N matrix; time O(n·k·d).
"""

from __future__ import annotations

import numpy as np

from curate.inputs import SelectionInput
from curate.selector import Needs, Picks, Selector, register


def kcenter_greedy(X: np.ndarray, k: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of k centres in pick order, and each one's distance² when picked."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    sq = np.einsum("ij,ij->i", X, X)
    picked = np.empty(k, dtype=np.int64)
    gaps = np.empty(k, dtype=np.float64)
    picked[0], gaps[0] = first, np.inf
    min_d = np.maximum(sq - 2.0 * (X @ X[first]) + sq[first], 0.0)
    min_d[first] = -1.0
    for t in range(1, k):
        j = int(np.argmax(min_d))
        picked[t], gaps[t] = j, float(min_d[j])
        np.minimum(min_d, np.maximum(sq - 2.0 * (X @ X[j]) + sq[j], 0.0), out=min_d)
        min_d[picked[: t + 1]] = -1.0
    return picked, gaps


@register("kcenter")
class KCenterSelector(Selector):
    """k-center greedy on the embeddings (coverage of the feature space)."""

    needs = Needs(embeddings=True)

    def __init__(self) -> None:
        pass

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        picked, gaps = kcenter_greedy(data.embeddings, k, int(rng.integers(data.n)))
        scores = np.where(np.isfinite(gaps), gaps, np.nan)
        scores[0] = scores[1] if k > 1 else 0.0
        return Picks(positions=picked, scores=np.sqrt(np.maximum(scores, 0.0)),
                     info={"cover_radius": float(np.sqrt(max(gaps[-1], 0.0))) if k > 1
                           else None})
