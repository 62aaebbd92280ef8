"""k-center greedy (Sener & Savarese, ICLR 2018, "Active Learning for CNNs: a core-set
approach"): repeatedly add the candidate farthest from the current centres,

    c_{t+1} = argmax_i min_{c ∈ C_t} ‖x_i − x_c‖²,

a 2-approximation of the minimax facility (k-center) problem. The first centre is drawn
uniformly with the seeded generator. Memory is O(n): each step is one BLAS mat-vec
(‖x‖² − 2 X·x_c + ‖x_c‖²) against the newest centre, never an N×N matrix; time O(n·k·d).
Distances are NumPy mat-vecs rather than FAISS: each step needs the distance of every row
to one new centre (a (n, d)·(d,) product, which BLAS does at memory speed); a FAISS index
would add a copy of X for no saving.

Pools over ``partition.PARTITION_ABOVE`` rows (``partition="auto"``) are cut into k-means
cells, one task per cell (``curate.methods.partition``): each runs the greedy for twice its
size-proportional share of k and records the distance at which each centre was picked (its
first, seeded centre: ∞); the merge keeps the k largest — exactly the greedy for the
cell-restricted distance (a row is covered only by centres in its own cell), a
2-approximation of that k-center problem (Gonzalez 1985) whose radius bounds the true one
from above, unless a cell used up its oversampled picks (``info["parts_exhausted"]``).
O(n·k·d / cells) in all instead of O(n·k·d). Picks are ordered by that distance, largest
first, across cells.
"""

from __future__ import annotations

import numpy as np

from curate.inputs import SelectionInput
from curate.methods.partition import PART_SIZE, check_partition, partitioned
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
    lazy_embeddings = True

    def __init__(self, *, partition: str = "auto", part_size: int = PART_SIZE) -> None:
        self.partition = partition
        self.part_size = part_size

    def _check_params(self) -> None:
        check_partition(self.name, self.partition, self.part_size)

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        positions, dist, info, _ = partitioned(
            self, data, k, rng, solve_part, per_class=False, partition=self.partition,
            part_size=int(self.part_size), merge="gains",
            kw=lambda r, rows: {"first": int(r.integers(rows))})
        # merged (or one greedy's) pick order: farthest first. The last finite distance is
        # the (cell-restricted) radius before the last pick — an upper bound on the radius
        # after it unless a cell ran dry (info["parts_exhausted"] > 0: its next distance is
        # unknown)
        finite = dist[np.isfinite(dist)]
        info["cover_radius"] = float(finite.min()) if len(finite) else None
        return Picks(positions=positions, scores=np.where(np.isfinite(dist), dist, 0.0),
                     info=info)


def solve_part(X: np.ndarray, q: int, *, first: int) -> tuple[np.ndarray, np.ndarray]:
    """One part: k-center greedy from a seeded first centre; distances (not squared), the
    first centre's ∞ (it had no centre to be far from: without it the cell is uncovered)."""
    picked, gaps = kcenter_greedy(X, q, first)
    dist = np.sqrt(np.maximum(gaps, 0.0))
    dist[0] = np.inf
    return picked, dist
