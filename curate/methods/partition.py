"""Partitioned greedy for large pools: facility location, k-center and herding.

One greedy over N rows costs O(N·k) (k-center, herding) or a kNN graph over all N rows
(facility location), in one process. Above ``PARTITION_ABOVE`` rows a group (a class with
``per_class``, else the whole pool) is instead cut into k-means cells of about
``part_size`` rows, and at most as many cells as the group has picks (FAISS ``Kmeans``,
seeded, trained on ≤ 256 rows per cell), the greedy
runs on each cell — one executor task per cell, so ``--executor ray`` spreads them over a
cluster — and the cells' answers are merged (GreeDi's two rounds, Mirzasoleiman et al.,
NeurIPS 2013, with the merge below). Groups at or under the threshold are one part each,
solved exactly as before (and they too are tasks: classes run in parallel).

Merge, per method:

- facility location — each cell returns ⌈2·q·n_p/n⌉ picks (twice its share) with their
  marginal gains; round two is greedy over the union for the *partitioned* objective
  F_P(S) = Σ_p F_p(S ∩ V_p) (similarities across cells dropped: k-means cells are where
  the kNN neighbours are anyway). F_P is a sum over cells and greedy gains within a cell
  never rise (submodularity), so that greedy is exactly a merge of the cells' gain
  sequences: the q largest gains. Guarantee: when no cell runs out of oversampled picks
  (``info["parts_exhausted"]`` counts those that did), the result is greedy on F_P, so
  F_P(S) ≥ (1 − 1/e)·max F_P; and F(S) ≥ F_P(S) for the true objective F. No constant
  factor against max F is claimed (GreeDi's own bound is (1 − 1/e)²/min(m, k));
  ``benchmarks/scale_out.py --objective`` measures F(S_partitioned)/F(S_single) at 1M rows.
- k-center (``merge="gains"`` too) — each cell runs the greedy for ⌈2·q·n_p/n⌉ centres on
  its own rows, scoring each by the distance at which it was picked (the first: ∞); the q
  largest are the greedy for the cell-restricted distance (a row covered only by centres
  in its cell), itself a k-center problem, so Gonzalez's 2-approximation holds for it, and
  its radius bounds the true radius from above (exact unless a cell ran dry, counted in
  ``parts_exhausted``). An earlier fixed-share merge (q_p ∝ n_p, largest remainder) gave
  each cell its share whatever its spread, which the benchmark showed costs radius.
- herding (``merge="union"``) — each cell herds ⌈2·q·n_p/n⌉ candidates towards its own
  mean μ_p; round two herds q of the candidates towards the group's mean μ (summed in
  the pass that assigns rows to cells), so one cell's excess can cancel another's. Round one alone
  (the first q_p candidates of each cell: herding's picks do not depend on how many follow)
  has error ‖μ − mean(S)‖ ≤ Σ_p (n_p/n)·‖μ_p − mean(S_p)‖ up to share rounding (mean(S) is
  Σ_p (q_p/q)·mean(S_p), and q_p/q = n_p/n only before rounding to whole picks); the merge
  keeps whichever of the two rounds has the smaller error, so that bound holds for the
  result. Round two costs O(q·2q·d) on the driver, so a group with more than
  ``UNION_MAX_PICKS`` picks keeps round one's answer (``info["merge"]`` counts the groups
  each way).

``partition="auto"`` (default) cuts only groups above ``PARTITION_ABOVE``; ``"none"`` never
cuts (one exact greedy per group, whatever its size); ``"cells"`` always cuts into cells of
``part_size``. The answer depends on ``partition``, ``part_size`` and the seed, never on the
executor or its number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from curate.budget import class_groups, largest_remainder
from curate.checks import check_choice, check_int

PARTITIONS = ("auto", "none", "cells")
#: ``partition="auto"`` cuts a group into cells above this many rows; it is also where the
#: facility-location kNN graph stops being exact (``knn_graph``'s ``exact_max``)
PARTITION_ABOVE = 50_000
#: rows per k-means cell by default (an exact kNN graph on 10k rows takes ~0.3 s)
PART_SIZE = 10_000
#: rows gathered at a time when a whole group is read (assigning rows to cells, its mean)
READ_ROWS = 1 << 18
#: ``merge="union"`` runs round two only for a group of at most this many picks (round two
#: is O(q·2q·d): ~1 min at q = 20,000, d = 128 on 2 cores)
UNION_MAX_PICKS = 20_000


def check_partition(method: str, partition: Any, part_size: Any) -> None:
    check_choice(method, "partition", partition, PARTITIONS)
    check_int(method, "part_size", part_size, 2)


def cut(embeddings, idx: np.ndarray, q: int, *, partition: str, part_size: int,
        rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The parts of one group (positions ``idx`` into the candidates) and, when it is cut,
    the group's float64 mean (d,). Returns ``([idx], None)`` or (its k-means cells, each
    sorted, empty cells dropped, in cell order; the mean): the one pass that assigns the rows
    to cells, ``READ_ROWS`` at a time, also sums them, so no merge reads the group again."""
    n = len(idx)
    # at most q cells: every cell can then hold a pick (k-center keeps each cell's first
    # centre, scored ∞, only if the cells are no more than the picks)
    m = min(math.ceil(n / part_size), max(1, q))
    if partition == "none" or m < 2 or (partition == "auto" and n <= PARTITION_ABOVE):
        return [idx], None
    d = embeddings.shape[1]
    train = np.sort(rng.choice(n, size=min(n, m * 256), replace=False))
    km = faiss.Kmeans(d, m, niter=10, seed=int(rng.integers(2**31 - 1)),
                      max_points_per_centroid=256, spherical=False)
    km.train(np.ascontiguousarray(embeddings[idx[train]], dtype=np.float32))
    cell = np.empty(n, dtype=np.int64)
    total = np.zeros(d)
    for lo in range(0, n, READ_ROWS):
        x = np.ascontiguousarray(embeddings[idx[lo:lo + READ_ROWS]], dtype=np.float32)
        cell[lo:lo + len(x)] = km.index.search(x, 1)[1][:, 0]
        total += x.sum(axis=0, dtype=np.float64)
    order = np.argsort(cell, kind="stable")
    _, starts = np.unique(cell[order], return_index=True)
    return [idx[part] for part in np.split(order, starts[1:]) if len(part)], total / n


def oversampled(sizes: np.ndarray, q: int) -> np.ndarray:
    """Each part's picks for a merge by score: twice its size-proportional share of q,
    rounded up, at most its size (``Σ ≥ q`` whenever ``q ≤ Σ sizes``)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return np.minimum(sizes, np.ceil(2.0 * q * sizes / max(int(sizes.sum()), 1)).astype(np.int64))


def keep_largest(scores: list[np.ndarray], q: int, room: np.ndarray) -> tuple[np.ndarray, int]:
    """The merge by score: positions, in the concatenation of the parts' ``scores`` (each
    non-increasing along its picks), of the q largest, largest first (ties: part order,
    then pick order) — a prefix of every part, so exactly the greedy on the sum of the
    parts' objectives when no part is used up. Also returns how many parts were used up
    while ``room`` (per part: it holds rows beyond its picks), the ones for which that
    exactness is not guaranteed."""
    keep = np.argsort(-np.concatenate(scores), kind="stable")[:q]
    counts = np.array([len(s) for s in scores])
    used = np.bincount(np.repeat(np.arange(len(scores)), counts)[keep], minlength=len(scores))
    return keep, int(((used == counts) & np.asarray(room, dtype=bool)).sum())


def _part_task(item: tuple[Callable, np.ndarray, int, dict], shared: dict[str, Any]):
    """Solve one part: ``solve(X_part, q, **kw) -> (local positions, per-pick scores)``."""
    solve, positions, q, kw = item
    X = np.ascontiguousarray(shared["embeddings"][positions], dtype=np.float32)
    picked, scores = solve(X, q, **kw)
    return positions[picked], np.asarray(scores, dtype=np.float64)


def partitioned(selector, data, k: int, rng: np.random.Generator, solve: Callable, *,
                per_class: bool, partition: str, part_size: int, merge: str,
                kw: Callable[[np.random.Generator, int], dict] | None = None,
                refine: Callable | None = None
                ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[np.ndarray]]:
    """Run ``solve`` on every part of every group on the selector's executor and merge.

    ``merge="gains"`` (facility location, k-center: oversample, keep the q largest scores),
    ``"quota"`` (each part its largest-remainder share; herding above ``UNION_MAX_PICKS``)
    or ``"union"`` (herding: oversample, then round two ``refine(X_union, q, mu) ->
    (positions, scores)`` towards the group's mean ``mu``, kept if its error ‖mu − mean(S)‖
    is below round one's).
    ``kw(rng, part_rows)`` gives a part's extra keyword arguments (drawn in part order on the
    driver: seeded and executor-free). Returns (positions, scores, info, each part's scores).
    Groups are interleaved in quota order: the t-th pick (0-based) of a group with quota q
    gets the key (t + ½)/q and picks follow their keys (ties: group order), each group's
    picks in merge order — so every prefix of the answer is a valid smaller budget with the
    classes in proportion, not class after class.
    """
    groups = (class_groups(data.labels, k) if per_class and data.labels is not None
              else [(np.arange(data.n), k)])
    items, plan = [], []
    for idx, q in groups:
        parts, mu = cut(data.embeddings, idx, q, partition=partition, part_size=part_size,
                        rng=rng)
        sizes = np.array([len(p) for p in parts])
        how = merge if merge != "union" or q <= UNION_MAX_PICKS else "quota"
        if len(parts) == 1:
            quotas = np.array([q])
        elif how in ("gains", "union"):
            quotas = oversampled(sizes, q)
        else:
            quotas = largest_remainder(sizes, q)
        first = len(items)
        for part, qp in zip(parts, quotas, strict=True):
            if qp:
                items.append((solve, part, int(qp), kw(rng, len(part)) if kw else {}))
        plan.append((q, first, len(items), quotas, sizes, how, mu))
    results = selector.executor.map(_part_task, items, shared={"embeddings": data.embeddings},
                                    desc=f"{selector.name} parts" if len(items) > 1 else "")
    positions, scores, exhausted, merged = [], [], 0, {"union": 0, "quota": 0}
    for q, lo, hi, quotas, sizes, how, mu in plan:
        pos = np.concatenate([results[i][0] for i in range(lo, hi)])
        sc = np.concatenate([results[i][1] for i in range(lo, hi)])
        if merge == "union" and hi - lo > 1:
            if how == "union":
                pos, sc, kept = _union_merge(data.embeddings, mu, q, results[lo:hi], sizes,
                                             refine)
            else:                # over UNION_MAX_PICKS: the quota answers as they are
                kept = "quota"
            merged[kept] += 1
        if merge == "gains" and hi - lo > 1:
            solved = quotas > 0
            keep, dry = keep_largest([results[i][1] for i in range(lo, hi)], q,
                                     quotas[solved] < sizes[solved])
            exhausted += dry
            pos, sc = pos[keep], sc[keep]
        positions.append(pos)
        scores.append(sc)
    info = {"parts": len(items), "partitioned_groups": sum(hi - lo > 1 for _, lo, hi, *_ in plan)}
    if merge == "gains":
        info["parts_exhausted"] = exhausted
    if merge == "union":
        info["merge"] = merged
    keys = np.concatenate([(np.arange(len(pos)) + 0.5) / max(len(pos), 1) for pos in positions])
    order = np.argsort(keys, kind="stable")
    return (np.concatenate(positions)[order], np.concatenate(scores)[order], info,
            [r[1] for r in results])


def _union_merge(embeddings, mu: np.ndarray, q: int, results: list, sizes: np.ndarray,
                 refine: Callable) -> tuple[np.ndarray, np.ndarray, str]:
    """Herding's merge of one cut group (every part solved: its oversampled quota is ≥ 1).
    Round one is each part's first largest-remainder share of its prefix-consistent picks;
    round two re-herds the candidates' union towards the group's mean μ (``cut``'s).
    Returns (positions, scores, ``"union"`` or ``"quota"``): the round with the smaller
    ‖μ − mean(S)‖, round one on a tie."""
    shares = largest_remainder(sizes, q)
    first = np.concatenate([r[0][:n] for r, n in zip(results, shares, strict=True)])
    first_sc = np.concatenate([r[1][:n] for r, n in zip(results, shares, strict=True)])
    union = np.concatenate([r[0] for r in results])
    picked, resid = refine(np.asarray(embeddings[union], dtype=np.float64), q, mu)
    first_error = np.linalg.norm(mu - np.asarray(embeddings[np.sort(first)],
                                                 dtype=np.float64).mean(axis=0))
    if resid[-1] < first_error:
        return union[picked], np.asarray(resid, dtype=np.float64), "union"
    return first, first_sc, "quota"
