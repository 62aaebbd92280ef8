"""Deduplication: exact duplicates (normalised text) and semantic duplicates (SemDeDup).

Abbas et al., "SemDeDup: Data-efficient learning at web-scale through semantic
deduplication" (2023). The pool's L2-normalised embeddings are cut into k-means cells
(FAISS, ``cell_size`` rows per cell, the same cutting as the partitioned greedy); within a
cell each row is linked to those of its ``NEIGHBOURS`` (32) nearest rows with cosine ≥ 1 − ε
(FAISS exact inner-product search: memory O(cell × 32) however many near pairs there are;
a group of more than 32 identical rows is still linked, through the neighbours' neighbours).
The embeddings are expected L2-normalised (MiniLM's are): the cells are cut on the vectors as
stored, the cosine on normalised copies. Rows whose
normalised texts are equal (Unicode NFKC, lower case, runs of white space as one space,
trimmed; ``SelectionInput.text_keys``) are edges too. A **group** is a connected
component of that graph (``scipy.sparse.csgraph``), so near-duplicate chains are one group;
the paper instead drops each row that has a more central near neighbour, which can keep two
members of a chain. Pairs across cell boundaries are not compared (as in the paper): a
larger ``cell_size`` finds more of them at a cost quadratic in the cell.

Each group keeps one row by ``keep``:

- ``"least-central"`` (default, the paper's rule) — the member with the lowest cosine to
  its cell's mean: the least prototypical, which keeps more of the cell's spread;
- ``"first"`` — the member with the lowest ``row_idx`` (e.g. the earliest crawled).

The answer is every kept row (one per group plus every row without duplicates), in a seeded
random order, so any prefix is a uniform sample of the deduplicated pool: a budget of 1.0
keeps them all, a smaller budget caps the count (``exact_budget`` is False: fewer rows come
back when fewer survive). ``scores`` are the group sizes (1 for a unique row). The
provenance ``info`` has the counts and the groups themselves (``groups``: ``[kept row_idx,
removed row_idx …]``, largest first; at most ``GROUPS_LISTED`` groups of at most
``MEMBERS_LISTED`` rows each, with ``group_sizes`` the full sizes and ``groups_total``
how many groups there were). Chains join: a ~ b and b ~ c put a and c in one group even
when a and c are further apart than ε — the issue's definition ("pairs above 1 − ε are one
group"); a small ε keeps chains short. Memory: O(n) plus one cell's vectors and its near pairs.
"""

from __future__ import annotations

import faiss
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curate.checks import check_choice, check_int, check_number
from curate.errors import InvalidParameterError
from curate.inputs import SelectionInput
from curate.methods.partition import cut
from curate.selector import Needs, Picks, Selector, register

KEEP_RULES = ("least-central", "first")
#: near neighbours looked up per row in its cell: memory is O(cell × NEIGHBOURS), whatever
#: the number of near pairs; a group needs only to be connected, not a clique
NEIGHBOURS = 32
#: members listed per group in the provenance (the group's size is always given)
MEMBERS_LISTED = 20
#: groups written into the provenance (largest first); the counts always cover all of them
GROUPS_LISTED = 20_000


def cell_pairs(embeddings, idx: np.ndarray, eps: float | None) -> tuple[np.ndarray, ...]:
    """One cell's near pairs and centrality.

    ``idx`` (m,) positions into the candidates. Returns ``(a, b, centrality)``: positions
    ``a < b`` of every pair with cosine ≥ 1 − ε (none when ``eps`` is None), and (m,)
    cosine of each row to the cell's mean direction."""
    x = np.ascontiguousarray(embeddings[idx], dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    mean = x.mean(axis=0)
    mean /= max(float(np.linalg.norm(mean)), 1e-12)
    central = x @ mean
    if eps is None:
        return np.empty(0, np.int64), np.empty(0, np.int64), central
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    kk = min(len(x), NEIGHBOURS + 1)
    sim, nbr = index.search(x, kk)                          # (m, kk), self included
    src = np.repeat(np.arange(len(x)), kk)
    sim, nbr = sim.ravel(), nbr.ravel().astype(np.int64)
    near = (sim >= 1.0 - eps) & (nbr >= 0) & (nbr != src)
    a, b = np.minimum(src, nbr)[near], np.maximum(src, nbr)[near]
    pair = np.unique(a * len(x) + b)                        # each pair once
    return idx[pair // len(x)], idx[pair % len(x)], central


def text_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (a, b) linking each row to the next row with the same text key (keys < 0,
    empty texts, link nothing)."""
    order = np.argsort(keys, kind="stable")
    same = (keys[order[1:]] == keys[order[:-1]]) & (keys[order[1:]] >= 0)
    return order[:-1][same], order[1:][same]


@register("dedup")
class Dedup(Selector):
    needs = Needs(embeddings=True)
    summary = ("exact (normalised text) and semantic (SemDeDup: k-means cells, cosine ≥ 1−ε) "
               "duplicates removed, one row kept per group")
    exact_budget = False
    lazy_embeddings = True

    @property
    def uses_text(self) -> bool:   # the text column is read only for exact duplicates
        return bool(self.exact)

    def __init__(self, *, eps: float = 0.05, exact: bool = True, semantic: bool = True,
                 keep: str = "least-central", cell_size: int = 10_000):
        self.eps, self.exact, self.semantic = eps, exact, semantic
        self.keep, self.cell_size = keep, cell_size
        self.check_params()

    def _check_params(self):
        check_number(self.name, "eps", self.eps, 0.0, 0.5, low_open=True)
        check_choice(self.name, "keep", self.keep, KEEP_RULES)
        check_int(self.name, "cell_size", self.cell_size, 2)
        if not (self.exact or self.semantic):
            raise InvalidParameterError("dedup: exact and semantic are both off; nothing "
                                        "would be removed")

    def _check_input(self, data: SelectionInput) -> None:
        if not self.semantic and data.text_keys is None:
            raise InvalidParameterError("dedup: semantic=false needs exact duplicates of a "
                                        "text column, and this dataset has none")

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        n = data.n
        emb = data.embeddings
        cells, _ = cut(emb, np.arange(n, dtype=np.int64), 0, partition="cells",
                       part_size=self.cell_size, rng=rng)
        eps = self.eps if self.semantic else None
        results = self.executor.map(_cell_task, [(c, eps) for c in cells],
                                    shared={"embeddings": emb},
                                    desc="dedup cells" if len(cells) > 1 else "")
        central = np.empty(n, dtype=np.float32)
        a_parts, b_parts = [], []
        for c, (a, b, cen) in zip(cells, results, strict=True):
            central[c] = cen
            if self.semantic:
                a_parts.append(a)
                b_parts.append(b)
        n_semantic = int(sum(len(a) for a in a_parts))
        n_exact = 0
        if self.exact and data.text_keys is not None:
            a, b = text_pairs(np.asarray(data.text_keys))
            a_parts.append(a)
            b_parts.append(b)
            n_exact = len(a)
        a = np.concatenate(a_parts) if a_parts else np.empty(0, np.int64)
        b = np.concatenate(b_parts) if b_parts else np.empty(0, np.int64)
        graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        # keeper of each component: lowest centrality (or row_idx), ties by position
        primary = central if self.keep == "least-central" else data.row_idx.astype(np.float64)
        order = np.lexsort((np.arange(n), primary, comp))
        first = np.ones(n, dtype=bool)
        first[1:] = comp[order[1:]] != comp[order[:-1]]
        kept = order[first]                                   # one per component
        sizes = np.bincount(comp)
        picks = kept[rng.permutation(len(kept))][:k]
        groups, total, group_sizes = self._groups(data.row_idx, comp, order, first, sizes)
        info = {"n_kept": int(len(kept)), "n_removed": int(n - len(kept)),
                "groups_total": total, "groups_listed": len(groups), "groups": groups,
                "group_sizes": group_sizes,
                "exact_pairs": n_exact, "semantic_pairs": n_semantic, "cells": len(cells),
                "text_keys": data.text_keys is not None}
        return Picks(positions=picks, scores=sizes[comp[picks]].astype(np.float64), info=info)

    @staticmethod
    def _groups(row_idx, comp, order, first, sizes) -> tuple[list[list[int]], int, list]:
        """``[kept, removed …]`` row_idx lists of the groups with > 1 member, largest first
        (ties by the kept row), at most ``GROUPS_LISTED``; and how many there were."""
        multi = sizes[comp[order]] > 1
        o, starts = order[multi], first[multi]
        total = int(starts.sum())
        if not total:
            return [], 0, []
        bounds = np.flatnonzero(starts)
        lengths = np.diff(np.append(bounds, len(o)))
        rank = np.lexsort((row_idx[o[bounds]], -lengths))[:GROUPS_LISTED]
        rows = row_idx[o]
        listed = [rows[bounds[g]:bounds[g] + min(lengths[g], MEMBERS_LISTED)].tolist()
                  for g in rank]
        return listed, total, lengths[rank].tolist()


def _cell_task(item: tuple[np.ndarray, float | None], shared: dict):
    idx, eps = item
    return cell_pairs(shared["embeddings"], idx, eps)
