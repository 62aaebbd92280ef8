"""SnP — Search and Pruning (Yao et al., CVPR 2023, "Large-scale Training Data Search for
Object Re-identification"): pick training data for a target domain from a pool of groups.

Inputs: pool embeddings with group codes (identities / sources), and the embeddings of an
(unlabelled) target set. All distances are computed after PCA to ``pca_dim`` dims fitted on
the pool and the target together; FD = Fréchet distance (``curate.frechet``).

Stage I — search::
    group means → balanced k-means into C clusters (sizes ⌊m/C⌋ or ⌈m/C⌉; the reference asked
    for exactly equal sizes, which is infeasible when C ∤ m) → rank clusters by FD(cluster,
    target) → merge them in that order and keep the prefix with the lowest FD.
Stage II — pruning, under ``group_budget`` groups (default: every searched group) and k
samples::
    rank the searched groups by their FD contribution FD(S∖g, T) − FD(S, T) (how much worse
    the set gets without g; computed from moments, O(d³) per group) and keep the top ones;
    seed one sample per kept group (the one nearest its group mean), then add samples by
    farthest-point sampling over the kept groups with the seeds as the initial centres.

``per_class=True`` (beyond the paper, for classification pools): stage II runs per class
with quotas ∝ the pool's class sizes, because FD matching is label-blind and can starve a
class; groups from later clusters (in FD order) fill a class the searched set lacks.

FD is estimated on at most ``fd_sample`` rows of each side (seeded draw) for stage I's
cluster ranking; the prefix and contribution FDs use exact moments of the PCA features.
Balanced k-means uses a greedy capacity-constrained assignment (nearest free centre first),
not an optimal transport solve — a simplification. Its (groups × clusters × dims) distance
array is checked with ``check_memory`` before it is allocated.
"""

from __future__ import annotations

import faiss
import numpy as np

from curate.budget import class_groups
from curate.checks import check_bool, check_int, check_memory, is_int, is_number
from curate.errors import InvalidParameterError
from curate.frechet import Moments, frechet_from_moments
from curate.inputs import SelectionInput
from curate.methods.partition import (
    PART_SIZE,
    READ_ROWS,
    check_partition,
    cut,
    keep_largest,
    oversampled,
)
from curate.selector import Needs, Picks, Selector, register


def balanced_kmeans(Z: np.ndarray, C: int, rng: np.random.Generator,
                    iters: int = 10) -> np.ndarray:
    """Cluster rows of Z into C clusters whose sizes are ⌊m/C⌋ or ⌈m/C⌉."""
    m = len(Z)
    C = max(1, min(C, m))
    caps = np.full(C, m // C)
    caps[: m % C] += 1
    centres = Z[rng.choice(m, size=C, replace=False)].copy()
    labels = np.zeros(m, dtype=np.int64)
    for _ in range(iters):
        d = ((Z[:, None, :] - centres[None]) ** 2).sum(-1)          # (m, C), m = #groups
        order = np.argsort(d, axis=None, kind="stable")
        left = caps.copy()
        labels[:] = -1
        for flat in order:
            g, c = divmod(int(flat), C)
            if labels[g] < 0 and left[c] > 0:
                labels[g] = c
                left[c] -= 1
        new = np.stack([Z[labels == c].mean(0) for c in range(C)])
        if np.allclose(new, centres):
            break
        centres = new
    return labels


@register("snp")
class SnPSelector(Selector):
    """SnP: search the pool for the groups closest to a target domain (FD), then prune."""

    needs = Needs(embeddings=True, groups=True, target=True)
    lazy_embeddings = True   # read in chunks for the PCA projection, never gathered whole

    def __init__(self, *, clusters: int = 20, group_budget: int | float | None = None,
                 pca_dim: int = 64, fd_sample: int = 2000, per_class: bool = False,
                 partition: str = "auto", part_size: int = PART_SIZE):
        self.partition = partition
        self.part_size = part_size
        self.clusters = clusters
        self.per_class = per_class
        self.group_budget = group_budget
        self.pca_dim = pca_dim
        self.fd_sample = fd_sample

    def _check_params(self) -> None:
        for name in ("clusters", "pca_dim", "fd_sample"):
            check_int(self.name, name, getattr(self, name))
        check_bool(self.name, "per_class", self.per_class)
        check_partition(self.name, self.partition, self.part_size)
        gb = self.group_budget
        if gb is not None and not ((is_int(gb) and gb >= 1) or (
                is_number(gb) and not is_int(gb) and 0 < float(gb) <= 1)):
            raise InvalidParameterError(f"snp: group_budget must be a count ≥ 1 or a fraction "
                                        f"in (0, 1]; got {gb!r}")

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        X, T = data.embeddings, np.asarray(data.target, dtype=np.float64)
        dim = min(self.pca_dim, X.shape[1], len(X) + len(T) - 1)
        from sklearn.decomposition import PCA  # lazy: sklearn costs ~2 s at import

        pca = PCA(n_components=dim, random_state=int(rng.integers(2**31 - 1)))
        fit_rows = rng.choice(len(X), min(len(X), 20_000), replace=False)
        pca.fit(np.vstack([np.asarray(X[fit_rows], dtype=np.float64),
                           T[rng.choice(len(T), min(len(T), 20_000), replace=False)]]))
        # the (n, pca_dim) projection, READ_ROWS rows of the embeddings at a time
        Z = np.empty((len(X), dim))
        for lo in range(0, len(X), READ_ROWS):
            Z[lo:lo + READ_ROWS] = pca.transform(np.asarray(X[lo:lo + READ_ROWS],
                                                            dtype=np.float64))
        ZT = pca.transform(T)
        target = Moments.of(ZT)
        codes, groups = np.unique(data.groups, return_inverse=True)
        # each group's rows in ascending order, by one stable sort (not one scan per group)
        members = np.split(np.argsort(groups, kind="stable"),
                           np.cumsum(np.bincount(groups, minlength=len(codes)))[:-1])
        # group means only: a group's d×d second moment is recomputed from its rows when a
        # sum needs it (``_summed``), never stored for all groups (G·d² floats: 320 MB for
        # 10k groups at d = 64, 32 GB for a million)
        means = np.stack([Z[m].sum(axis=0) / len(m) for m in members])

        # Stage I: balanced k-means of group means, rank clusters, best prefix.
        C = min(self.clusters, len(codes))
        check_memory(f"snp: clusters={self.clusters} for {len(codes)} groups",
                     8.0 * len(codes) * C * (dim + 3), "use fewer clusters")
        lab = balanced_kmeans(means, C, rng)
        def sample_fd(rows: np.ndarray) -> float:
            if len(rows) > self.fd_sample:
                rows = rng.choice(rows, self.fd_sample, replace=False)
            return frechet_from_moments(Moments.of(Z[rows]), target)
        cluster_rows = [np.concatenate([members[g] for g in np.flatnonzero(lab == c)])
                        for c in range(C)]
        cluster_fd = np.array([sample_fd(r) for r in cluster_rows])
        order = np.argsort(cluster_fd, kind="stable")
        prefix, mom, prefix_fd = [], None, []
        for c in order:
            cm = _summed(Z, members, np.flatnonzero(lab == c))
            mom = cm if mom is None else mom + cm
            prefix.append(c)
            prefix_fd.append(frechet_from_moments(mom, target))
        best = int(np.argmin(prefix_fd)) + 1
        chosen_clusters = order[:best]
        searched = np.flatnonzero(np.isin(lab, chosen_clusters))
        # the searched set must hold at least k samples: extend along the ranking if not
        j = best
        while sum(len(members[g]) for g in searched) < k and j < C:
            j += 1
            searched = np.flatnonzero(np.isin(lab, order[:j]))

        # Stage II: rank groups by FD contribution, keep the group budget, then samples.
        total = _summed(Z, members, searched)
        base = frechet_from_moments(total, target)
        contrib = np.array([frechet_from_moments(total - Moments.of(Z[members[g]]), target)
                            - base if total.n - len(members[g]) > 1 else np.inf
                            for g in searched])
        ranked = searched[np.argsort(-contrib, kind="stable")]
        if self.per_class and data.labels is not None:
            # beyond the paper: class quotas ∝ pool class sizes; groups from later clusters
            # (in FD order) make up for classes the searched set is short of
            later = np.concatenate([np.flatnonzero(lab == c) for c in order])
            later = later[~np.isin(later, searched)]
            queue = np.concatenate([ranked, later])
            parts = []
            for rows_c, q in class_groups(data.labels, k):
                in_c = np.zeros(data.n, dtype=bool)
                in_c[rows_c] = True
                sub = {g: members[g][in_c[members[g]]] for g in queue}
                n_searched = sum(1 for g in ranked if len(sub[g]))
                parts.append(self._prune(Z, [g for g in queue if len(sub[g])], sub, q,
                                         n_searched, rng))
            picks = np.concatenate([p for p, _, _ in parts])
            fps_cells = sum(c for _, c, _ in parts)
            exhausted = sum(e for _, _, e in parts)
            kept = np.unique(groups[picks])
        else:
            picks, fps_cells, exhausted = self._prune(Z, list(ranked), dict(enumerate(members)),
                                                      k, len(ranked), rng)
            kept = np.unique(groups[picks])
        info = {"n_groups": len(codes), "clusters": C, "clusters_kept": int(len(chosen_clusters)),
                "per_class": bool(self.per_class and data.labels is not None),
                "searched_groups": int(len(searched)), "kept_groups": int(len(kept)),
                "fps_cells": int(fps_cells), "fps_cells_exhausted": int(exhausted),
                "fd_searched": base, "fd_prefix_curve": [float(f) for f in prefix_fd],
                "fd_selected": frechet_from_moments(Moments.of(Z[picks]), target)
                if len(picks) > 1 else None,
                "fd_pool": frechet_from_moments(Moments.of(Z), target)}
        return Picks(positions=picks, info=info)

    def _prune(self, Z: np.ndarray, ranked: list, members: dict, k: int,
               n_searched: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        """Keep the top-ranked groups (the group budget — by default every searched group —
        and at least k rows), seed one row per group (nearest its mean), then farthest-point
        sampling up to k rows — cell by cell when the kept pool is over
        ``partition.PARTITION_ABOVE`` rows (``partition``/``part_size``, as for k-center).
        Returns the picks, the number of cells the sampling ran in and how many of them ran
        out of oversampled picks (``fps_with_seeds``)."""
        budget = self._groups_to_keep(max(1, n_searched))
        kept, size = [], 0
        for g in ranked:
            kept.append(g)
            size += len(members[g])
            if len(kept) >= budget and size >= k:
                break
        seeds = []
        for g in kept[:k]:
            rows = members[g]
            seeds.append(rows[np.argmin(((Z[rows] - Z[rows].mean(0)) ** 2).sum(1))])
        pool = np.concatenate([members[g] for g in kept])
        seeds = np.asarray(seeds, dtype=np.int64)
        cells = None
        if len(seeds) < k:
            cells, _ = cut(Z, pool, k, partition=self.partition, part_size=int(self.part_size),
                           rng=rng)
        picks, exhausted = fps_with_seeds(Z, pool, seeds, k, cells=cells)
        return picks, len(cells or [pool]), exhausted

    def _groups_to_keep(self, available: int) -> int:
        """Groups kept out of ``available`` searched ones, by the one budget rule
        (``curate.budget.resolve_budget``: a count in [1, available] or a fraction rounded
        half up); a count above ``available`` is refused, naming ``group_budget``."""
        from curate.budget import resolve_budget
        from curate.errors import BudgetError

        if self.group_budget is None:
            return available
        try:
            return resolve_budget(self.group_budget, available)
        except BudgetError as exc:
            raise InvalidParameterError(f"snp: group_budget: {exc}; the search found "
                                        f"{available} groups") from None


def _summed(Z: np.ndarray, members: list[np.ndarray], groups: np.ndarray) -> Moments:
    """Moments of the union of ``groups``: their moments added one group at a time, in the
    given order (each group's computed from its rows, then dropped: O(d²) memory)."""
    total = Moments(0.0, 0, 0)
    for g in groups:
        total = total + Moments.of(Z[members[g]])
    return total


def fps_with_seeds(Z: np.ndarray, pool: np.ndarray, seeds: np.ndarray, k: int,
                   cells: list[np.ndarray] | None = None) -> tuple[np.ndarray, int]:
    """Farthest-point sampling over ``pool`` rows of Z, starting from ``seeds`` as centres:
    each step adds argmax_i min_{c ∈ centres} ‖z_i − z_c‖² (O(|pool|) memory).

    ``cells`` (the pool cut into k-means cells, ``partition.cut``; None: one cell) runs the
    steps cell by cell: every row's distance to its nearest seed is computed over the whole
    pool first (one FAISS search); each cell then runs the same greedy on its own rows from
    those distances for up to twice its share of the k − |seeds| further picks (share ∝ its
    rows that are not seeds), recording the distance² at which each was picked; the merge
    keeps the k − |seeds| largest of those distances. A cell's distances never rise along
    its picks, so that merge is exactly the greedy for the cell-restricted distance (a row is
    covered only by seeds and by centres in its own cell) whenever no cell used up its
    oversampled picks (the second return value counts the cells that did); that greedy is a
    2-approximation of the cell-restricted k-center (Gonzalez 1985), whose radius bounds the
    true one from above. O(|pool|·(k − |seeds|)·d / cells) instead of
    O(|pool|·(k − |seeds|)·d). Picks: the seeds, then by that distance, largest first.
    Returns (picks, cells that ran out of oversampled picks)."""
    seeds = seeds[:k]
    if len(seeds) >= k:
        return seeds, 0
    inverse = np.full(len(Z), -1, dtype=np.int64)
    inverse[pool] = np.arange(len(pool))
    # distance of every pool row to its nearest seed: one batched FAISS search
    index = faiss.IndexFlatL2(Z.shape[1])
    index.add(np.ascontiguousarray(Z[seeds], dtype=np.float32))
    min_d = np.empty(len(pool))
    for lo in range(0, len(pool), READ_ROWS):
        x = np.ascontiguousarray(Z[pool[lo:lo + READ_ROWS]], dtype=np.float32)
        min_d[lo:lo + len(x)] = index.search(x, 1)[0][:, 0]
    min_d[inverse[seeds]] = -1.0
    cells = [pool] if cells is None else cells
    free = np.array([int((min_d[inverse[c]] >= 0).sum()) for c in cells])
    extra = min(k - len(seeds), int(free.sum()))
    # one cell: exactly its picks; several: twice each share, so a cell rarely runs dry
    quotas = np.array([extra]) if len(cells) == 1 else oversampled(free, extra)
    picks, gaps = [], []
    for cell, q in zip(cells, quotas, strict=True):
        if q:
            p, g = _farthest_first(Z, cell, min_d[inverse[cell]], int(q))
            picks.append(p)
            gaps.append(g)
    picks_, exhausted = np.concatenate(picks), 0
    if len(cells) > 1:
        solved = quotas > 0
        keep, exhausted = keep_largest(gaps, extra, quotas[solved] < free[solved])
        picks_ = picks_[keep]
    return np.concatenate([seeds, picks_]).astype(np.int64), exhausted


def _farthest_first(Z: np.ndarray, rows: np.ndarray, min_d: np.ndarray,
                    q: int) -> tuple[np.ndarray, np.ndarray]:
    """q greedy farthest-point picks among ``rows`` of Z, from each row's squared distance
    to its nearest centre so far (``min_d``, −1 for rows already taken; updated in place).
    Returns the picked rows and the distance² at which each was picked."""
    Zp = np.ascontiguousarray(Z[rows], dtype=np.float64)
    sq = np.einsum("ij,ij->i", Zp, Zp)
    taken = np.empty(q, dtype=np.int64)
    gaps = np.empty(q)
    for t in range(q):
        j = int(np.argmax(min_d))
        taken[t], gaps[t] = j, min_d[j]
        np.minimum(min_d, np.maximum(sq - 2 * Zp @ Zp[j] + sq[j], 0), out=min_d)
        min_d[j] = -1.0          # earlier picks stay at −1: the minimum never raises them
    return rows[taken], gaps
