"""Facility location by lazy greedy on a sparse kNN graph (as in CRAIG, Mirzasoleiman et
al., ICML 2020; apricot's ``FacilityLocationSelection``).

    F(S) = Σ_i max_{j ∈ S} s_ij,   s_ij = max(0, cos(x_i, x_j)) for j ∈ kNN(i) ∪ {i}, else 0

F is monotone submodular, so greedy is a (1 − 1/e)-approximation and lazy evaluation
(Minoux 1978: a stale upper bound on a gain is re-checked only when it tops the heap) is
exact. The graph is built with FAISS (exact ``IndexFlatIP`` up to ``exact_max`` rows,
``HNSW32`` above) on L2-normalised embeddings: memory O(n·neighbors), never N×N.
With ``per_class`` (default) each class is solved on its own graph with a largest-remainder
quota. Score = the marginal gain when picked. Before the graph is built, its size —
(neighbors + 1) entries for each row of the largest part — is checked with
``check_memory``.

Large groups (over ``partition.PARTITION_ABOVE`` rows with ``partition="auto"``) are cut into
k-means cells, solved one task per cell and merged by gains (``curate.methods.partition``:
the guarantee and what it costs). The initial gains are the graph's column sums (one
vectorised pass), so no Python runs per row; the pick loop runs per pick.

``graph``: ``auto`` (exact up to 50k rows a part, HNSW above), ``hnsw``, or ``exact`` with
``partition="none"`` — one exact kNN graph per group whose search is sharded over the
executor and merged exactly (``curate.methods.knn``): the path for a cluster.
"""

from __future__ import annotations

import heapq

import faiss
import numpy as np
from scipy import sparse

from curate.budget import class_groups
from curate.checks import check_bool, check_choice, check_int, check_memory
from curate.errors import InvalidParameterError
from curate.inputs import SelectionInput
from curate.methods.knn import knn_search
from curate.methods.partition import (
    PART_SIZE,
    PARTITION_ABOVE,
    check_partition,
    partitioned,
)
from curate.selector import Needs, Picks, Selector, register

GRAPHS = ("auto", "exact", "hnsw")


def knn_graph(X: np.ndarray, neighbors: int, exact_max: int = 50_000) -> sparse.csc_matrix:
    """(n, n) sparse similarities, row i = client, column j = facility (self included)."""
    X = np.ascontiguousarray(X, dtype=np.float32).copy()
    faiss.normalize_L2(X)
    n, d = X.shape
    kk = min(neighbors + 1, n)
    if n <= exact_max:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, 2 * kk)
    index.add(X)
    sims, nbrs = index.search(X, kk)
    return graph_from_neighbours(sims, nbrs)


def graph_from_neighbours(sims: np.ndarray, nbrs: np.ndarray) -> sparse.csc_matrix:
    """The (n, n) facility-location graph from each row's (n, kk) neighbours."""
    n, kk = nbrs.shape
    rows = np.repeat(np.arange(n), kk)
    ok = nbrs.ravel() >= 0
    W = sparse.csr_matrix((np.maximum(sims.ravel()[ok], 0.0), (rows[ok], nbrs.ravel()[ok])),
                          shape=(n, n))
    W = W.maximum(sparse.identity(n, format="csr"))  # a facility always covers itself
    return W.tocsc()


def lazy_greedy(W: sparse.csc_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Lazy greedy maximisation of facility location over the columns of W."""
    cur = np.zeros(W.shape[0])
    indptr, indices, data = W.indptr, W.indices, W.data

    def gain(j: int) -> float:
        lo, hi = indptr[j], indptr[j + 1]
        return float(np.maximum(data[lo:hi] - cur[indices[lo:hi]], 0.0).sum())

    # with nothing picked a column's gain is its sum: one vectorised pass, not n calls
    first = np.asarray(W.sum(axis=0)).ravel()
    heap = list(zip((-first).tolist(), range(W.shape[1]), strict=True))
    heapq.heapify(heap)
    picked, gains = [], []
    while len(picked) < k and heap:
        _, j = heapq.heappop(heap)
        g = gain(j)
        if heap and g < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-g, j))
            continue
        picked.append(j)
        gains.append(g)
        lo, hi = indptr[j], indptr[j + 1]
        rows = indices[lo:hi]
        cur[rows] = np.maximum(cur[rows], data[lo:hi])
    return np.asarray(picked, dtype=np.int64), np.asarray(gains)


@register("facility_location")
class FacilityLocationSelector(Selector):
    """Facility location (lazy greedy on a FAISS kNN graph): representative coverage."""

    needs = Needs(embeddings=True)

    lazy_embeddings = True

    def __init__(self, *, neighbors: int = 10, per_class: bool = True,
                 partition: str = "auto", part_size: int = PART_SIZE, graph: str = "auto"):
        self.neighbors = neighbors
        self.per_class = per_class
        self.partition = partition
        self.part_size = part_size
        self.graph = graph

    def _check_params(self) -> None:
        check_int(self.name, "neighbors", self.neighbors)
        check_bool(self.name, "per_class", self.per_class)
        check_partition(self.name, self.partition, self.part_size)
        check_choice(self.name, "graph", self.graph, GRAPHS)
        if self.graph == "exact" and self.partition != "none":
            raise InvalidParameterError("facility_location: graph=exact builds one exact kNN "
                                        "graph per group (sharded on the executor); it needs "
                                        "partition=none")

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        groups = (class_groups(data.labels, k) if self.per_class and data.labels is not None
                  else [(np.arange(data.n), k)])
        largest = max(len(idx) for idx, _ in groups)
        if self.partition == "cells" or (self.partition == "auto"
                                         and largest > PARTITION_ABOVE):
            largest = min(largest, 4 * int(self.part_size))  # k-means cells are uneven
        # the kNN graph holds (neighbours + 1) entries per row: ~40 bytes each while built
        check_memory(f"facility_location: neighbors={self.neighbors} for {largest} rows",
                     40.0 * largest * min(self.neighbors + 1, largest), "use fewer neighbors")
        if self.graph == "exact":  # one exact graph per group, its kNN search sharded
            positions, scores, info = self._exact(data, groups)
        else:
            exact_max = 0 if self.graph == "hnsw" else PARTITION_ABOVE
            positions, scores, info, _ = partitioned(
                self, data, k, rng, solve_part, per_class=self.per_class,
                partition=self.partition, part_size=int(self.part_size), merge="gains",
                kw=lambda *_: {"neighbors": int(self.neighbors), "exact_max": exact_max})
        order = np.argsort(-scores, kind="stable")
        return Picks(positions=positions[order], scores=scores[order], info=info)


    def _exact(self, data: SelectionInput, groups) -> tuple[np.ndarray, np.ndarray, dict]:
        pos, gains = [], []
        for idx, q in groups:
            sims, nbrs = knn_search(data.embeddings, idx, int(self.neighbors) + 1,
                                    self.executor)
            p, g = lazy_greedy(graph_from_neighbours(sims, nbrs), q)
            pos.append(idx[p])
            gains.append(g)
        return np.concatenate(pos), np.concatenate(gains), {"parts": len(groups),
                                                             "graph": "exact (sharded)"}


def solve_part(X: np.ndarray, q: int, *, neighbors: int,
               exact_max: int = PARTITION_ABOVE) -> tuple[np.ndarray, np.ndarray]:
    """One part: lazy greedy on its own kNN graph (positions into X, gains)."""
    return lazy_greedy(knn_graph(X, neighbors, exact_max), q)
