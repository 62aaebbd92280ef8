"""Reward-guided grounding: a set's k items chosen by coordinate ascent of the composite
objective under the request's weights — a step of the teacher's and the diffusion retriever's
grounding (``refine``), and the ``ascent`` baseline retriever.

``refine_grounding`` starts from a valid set (B, k) and runs ``sweeps`` rounds of coordinate
ascent on the composite (``retrieval.objectives``): for each slot j in turn, every item among
slot j's hits — its sub-query's P nearest items, or one list shared by every slot — that no
slot holds (and that is not the query's excluded row) is tried in slot j with the other
k − 1 items fixed, and the slot keeps the best. The set as it stands is one of the tries, so
the composite never falls (a tie keeps the current item). One sweep tries at most k·P sets a query.

Scoring without copying sets: with the set's Gram matrix G (k, k) and item-to-query cosines
a (k,), putting candidate c into slot j changes row and column j of G to X_c·X_set and a_j to
X_c·q (``objectives.composite_parts``); coverage, when weighted, keeps each pool item's best
cosine to the other k − 1 slots and takes the max with the candidate's. The Vendi score needs
an eigen-decomposition of each (k, k) matrix (~5 µs for k = 10), so the tries are first ranked
by the composite with the order-2 Vendi score (``objectives.vendi2_gram``: (tr K)² / ‖K‖_F²,
no decomposition) and only the ``shortlist`` best, with the current set, are scored exactly.
Cost a sweep: B·k·P (k × k) products and B·k·(shortlist + 1) decompositions.

``ascent`` (``AscentRetriever``): the same search over the query's own top ``pool`` items
(the index returns pool + 1, so that an excluded row still leaves ``pool``),
starting from top-k — a local search on the request's composite that needs no model. It is
the control for the model-based methods: what the search alone gets from the query's
neighbourhood (README, "Fan-out retrieval").

Shapes: q (B, d) unit queries, hits (B, S, P) row ids (S = k: one list a slot; S = 1: one list
for every slot; −1: none), rows (B, k) valid and distinct.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from core.deadline import checkpoint
from core.errors import InvalidParameterError
from retrieval.baselines import PoolRetriever, candidates
from retrieval.objectives import (
    check_weights,
    composite_parts,
    needs_pool,
    neighbourhood,
    weighted_sum,
)
from retrieval.retriever import MAX_REFINE

#: tries per slot scored exactly after the order-2 ranking (plus the current set, always scored)
SHORTLIST = 4


def check_relevance_weights(weights: Mapping[str, float], with_relevance: bool) -> None:
    """Refuse weighting groundedness — a threshold on the cosine to the query — together
    with a learned relevance model, which replaces that cosine in the search."""
    if with_relevance and weights.get("groundedness", 0) > 0:
        raise InvalidParameterError("groundedness is a threshold on the cosine to the query; "
                                    "it cannot be weighted with a relevance model")


def refine_grounding(vectors: np.ndarray, q: np.ndarray, hits: np.ndarray, rows: np.ndarray,
                     weights: Mapping[str, float] | None = None, *, sweeps: int = 1,
                     exclude: np.ndarray | None = None, pool: np.ndarray | None = None,
                     shortlist: int = SHORTLIST,
                     relevance: Callable[[np.ndarray], np.ndarray] | None = None
                     ) -> np.ndarray:
    """(B, k) rows after ``sweeps`` rounds of coordinate ascent of the composite under
    ``weights`` over the slots' ``hits`` (see the module docstring). ``rows`` (B, k) must be
    valid and distinct (``retrieval.retriever.complete`` them first); ``pool`` (B, R, d) is
    the queries' ``objectives.neighbourhood``, needed only when coverage or groundedness is
    weighted; ``shortlist``: tries a slot scores exactly (0: all of them). ``relevance``
    (``fn(rows (B, m)) -> (B, m)``, a learned relevance model's scores,
    ``retrieval.relevance``) replaces the item-to-query cosine in the alignment term; it
    cannot be combined with groundedness, a threshold on that cosine."""
    w = check_weights(weights)
    if needs_pool(w) and pool is None:
        raise ValueError("refine_grounding: these weights need the queries' pool")
    check_relevance_weights(w, relevance is not None)
    B, k = rows.shape
    S, P = hits.shape[1], hits.shape[2]
    if S not in (1, k):
        raise ValueError(f"hits must be (B, 1 or {k}, P); got {hits.shape}")
    rows = np.array(rows, dtype=np.int64)
    srt = np.sort(rows, axis=1)
    if ((rows < 0) | (rows >= len(vectors))).any() or (srt[:, 1:] == srt[:, :-1]).any():
        raise ValueError("refine_grounding: rows must be a valid, distinct set per query "
                         "(complete them first)")
    if sweeps == 0 or B == 0 or P == 0:
        return rows
    ar = np.arange(B)
    X = vectors[rows].astype(np.float32)                               # (B, k, d)
    Xc = vectors[np.clip(hits, 0, None)].astype(np.float32)            # (B, S, P, d)
    G = X @ X.transpose(0, 2, 1)                                       # (B, k, k)
    if relevance is None:
        a = np.einsum("bkd,bd->bk", X, q)                              # (B, k)
        ac = np.einsum("bspd,bd->bsp", Xc, q)                          # (B, S, P)
    else:                                   # a missing hit (−1) is never a valid try
        both = relevance(np.concatenate([rows, hits.reshape(B, S * P)], 1))   # one call
        a = both[:, :k]
        ac = np.where(hits >= 0, both[:, k:].reshape(B, S, P), 0.0)
    self_c = np.einsum("bspd,bspd->bsp", Xc, Xc)                       # (B, S, P)
    tau = ps = pc = None
    if needs_pool(w):
        tau = np.einsum("bd,bd->b", q, pool[:, -1])[:, None]           # (B, 1)
        if w.get("coverage", 0) > 0:
            ps = pool @ X.transpose(0, 2, 1)                           # (B, R, k)
            pc = (pool @ Xc.reshape(B, S * P, -1).transpose(0, 2, 1)).reshape(B, -1, S, P)
    ex = None if exclude is None else np.asarray(exclude, dtype=np.int64)
    m = P if shortlist <= 0 else min(shortlist, P)
    # complementarity and coherence need each try's whole Gram matrix; the rest do not
    fast = not any(w.get(name, 0) > 0 for name in ("complementarity", "coherence"))
    for _ in range(int(sweeps)):
        for j in range(k):
            checkpoint("a coordinate-ascent step")
            s = j if S > 1 else 0
            cand = hits[:, s]                                          # (B, P)
            others = np.delete(rows, j, axis=1)                        # (B, k − 1)
            # a hit another slot holds is not a try; the slot's own item is try 0 already
            ok = ((cand >= 0) & (cand != rows[:, j:j + 1])
                  & ~(cand[:, :, None] == others[:, None, :]).any(2))
            if ex is not None:
                ok &= cand != ex[:, None]
            # try 0 is the set as it stands; try 1 + p puts hit p into slot j
            cross = Xc[:, s] @ X.transpose(0, 2, 1)                     # (B, P, k)
            cover = None
            if ps is not None:
                rest = (np.delete(ps, j, axis=2).max(2) if k > 1
                        else np.full(ps.shape[:2], -np.inf))           # (B, R)
                cover = np.concatenate([ps.max(2).mean(1)[:, None],
                                        np.maximum(rest[:, :, None], pc[:, :, s]).mean(1)],
                                       axis=1)                         # (B, P + 1)
            valid = np.concatenate([np.ones((B, 1), bool), ok], axis=1)
            every = np.broadcast_to(np.arange(P + 1), (B, P + 1))
            if m < P:                                  # shortlist by the order-2 composite
                if fast:
                    rough = _order2_tries(G, a, cross, self_c[:, s], ac[:, s], j, w, tau,
                                          cover)
                else:
                    Gt, at = _tries(G, a, cross, self_c[:, s], ac[:, s], j, every)
                    rough = composite_parts(Gt, at, w, tau, cover, order2=True)
                rough = np.where(valid, rough, -np.inf)[:, 1:]
                top = 1 + np.argpartition(-rough, m - 1, axis=1)[:, :m]
                sel = np.concatenate([np.zeros((B, 1), np.int64), top], axis=1)
            else:
                sel = every
            Gs, As = _tries(G, a, cross, self_c[:, s], ac[:, s], j, sel)
            Cs = None if cover is None else np.take_along_axis(cover, sel, axis=1)
            score = composite_parts(Gs, As, w, tau, Cs)
            score = np.where(np.take_along_axis(valid, sel, axis=1), score, -np.inf)
            pick = score.argmax(1)                                     # ties keep try 0
            best = sel[ar, pick]
            move = best > 0
            if not move.any():
                continue
            bm, p = ar[move], best[move] - 1
            rows[bm, j] = cand[bm, p]
            X[bm, j] = Xc[bm, s, p]
            a[bm, j] = ac[bm, s, p]
            G[bm] = Gs[bm, pick[move]]
            if ps is not None:
                ps[bm, :, j] = pc[bm, :, s, p]
    return rows


def _tries(G: np.ndarray, a: np.ndarray, cross: np.ndarray, self_sim: np.ndarray,
           a_hit: np.ndarray, j: int, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrices (B, t, k, k) and item-to-query cosines (B, t, k) of tries ``sel`` (B, t)
    of slot j (0: the set as it stands; 1 + p: hit p in slot j), from the set's G (B, k, k)
    and a (B, k), the hits' cosines to the set ``cross`` (B, P, k), to themselves
    ``self_sim`` (B, P) and to the query ``a_hit`` (B, P)."""
    t = sel.shape[1]
    hit = np.clip(sel - 1, 0, None)                                    # (B, t)
    is_hit = (sel > 0)[:, :, None]
    row = np.take_along_axis(cross, hit[:, :, None], axis=1)           # (B, t, k)
    row[:, :, j] = np.take_along_axis(self_sim, hit, axis=1)
    row = np.where(is_hit, row, G[:, None, j, :])
    Gt = np.repeat(G[:, None], t, axis=1)
    Gt[:, :, j, :] = row
    Gt[:, :, :, j] = row
    at = np.repeat(a[:, None], t, axis=1)
    at[:, :, j] = np.where(is_hit[:, :, 0], np.take_along_axis(a_hit, hit, axis=1), a[:, None, j])
    return Gt, at


def _order2_tries(G: np.ndarray, a: np.ndarray, cross: np.ndarray, self_sim: np.ndarray,
                  a_hit: np.ndarray, j: int, w: Mapping[str, float], tau: np.ndarray | None,
                  cover: np.ndarray | None) -> np.ndarray:
    """(B, P + 1) order-2 composite of every try of slot j (as ``composite_parts(...,
    order2=True)`` on ``_tries``' matrices) without building them: with K = max(0, G),
    ‖K‖_F² and tr K change only by row and column j, so each try costs O(k). For weights
    on alignment, diversity, groundedness and coverage (not complementarity, coherence)."""
    k = G.shape[-1]
    K = np.clip(G, 0.0, None)
    row = K[:, j]                                                      # (B, k)
    frob, trace = (K * K).sum((1, 2)), np.trace(K, axis1=1, axis2=2)
    frob_rest = frob - 2 * (row * row).sum(1) + row[:, j] ** 2         # without row/col j
    c = np.clip(cross, 0.0, None)                                      # (B, P, k)
    sc = np.clip(self_sim, 0.0, None)                                  # (B, P)
    frob_t = np.concatenate([frob[:, None], frob_rest[:, None]
                             + 2 * ((c * c).sum(2) - c[:, :, j] ** 2) + sc ** 2], axis=1)
    trace_t = np.concatenate([trace[:, None], (trace - row[:, j])[:, None] + sc], axis=1)
    a_t = np.concatenate([a[:, j:j + 1], a_hit], axis=1)               # slot j's cosine
    a_rest = a.sum(1, keepdims=True) - a[:, j:j + 1]

    def grounded():
        inside = a >= tau - 1e-6                                       # (B, k)
        rest = inside.sum(1, keepdims=True) - inside[:, j:j + 1]
        return (rest + (a_t >= tau - 1e-6)) / k

    return weighted_sum({"alignment": lambda: (a_rest + a_t) / k,
                         "diversity": lambda: trace_t ** 2 / np.maximum(frob_t, 1e-24) / k,
                         "groundedness": grounded, "coverage": lambda: cover},
                        w, a_t.shape)


def refine_fanout(index, vectors: np.ndarray, q: np.ndarray, hits: np.ndarray,
                  rows: np.ndarray, weights: Mapping[str, float] | None, *, sweeps: int,
                  exclude: np.ndarray | None = None, pool: np.ndarray | None = None,
                  relevance: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """``refine_grounding`` of a fan-out's grounded rows (B, k), as the teacher and the
    diffusion retriever use it: slots an approximate index left empty (−1) are refilled
    first (``retrieval.retriever.complete``), and the queries' neighbourhood is searched
    when the weights need it and ``pool`` is None. ``hits`` (B, k, P): each sub-query's
    nearest items (``retrieval.index.sub_query_hits``); ``relevance``: as in
    ``refine_grounding``."""
    from retrieval.retriever import complete

    if (rows < 0).any():
        rows, _ = complete(index, vectors, q, rows, np.zeros_like(rows), exclude)
    if pool is None and needs_pool(check_weights(weights)):
        pool = neighbourhood(index, vectors, q)
    return refine_grounding(vectors, q, hits, rows, weights, sweeps=sweeps, exclude=exclude,
                            pool=pool, relevance=relevance)


class AscentRetriever(PoolRetriever):
    """``ascent``: start from the query's top-k and run ``sweeps`` rounds of coordinate
    ascent of the request's composite over its top ``pool`` items (``refine_grounding``
    with one hit list shared by every slot). No model: the search alone."""

    name = "ascent"
    summary = ("coordinate ascent of the request's composite over the query's top `pool` "
               "(starts at top-k)")
    weighted = batched = True
    pool: int = 200
    sweeps: int = 2

    def _check_trade_off(self) -> None:
        if isinstance(self.sweeps, bool) or not 1 <= self.sweeps <= MAX_REFINE:
            raise InvalidParameterError(f"ascent: sweeps (a request's refine) must be in "
                                        f"[1, {MAX_REFINE}]; got {self.sweeps!r}")

    def _retrieve(self, V, k, weights, seed, exclude):
        from retrieval.index import assign_nearest
        from retrieval.retriever import complete

        q = V[:, 0]
        rel, rows, _ = candidates(self, q, max(k, self.pool), exclude)
        hits = np.where(np.isfinite(rel), rows, -1)[:, None, :]         # (B, 1, P)
        start = assign_nearest(np.repeat(hits[:, :, :k + 2], k, axis=1), exclude)
        start, _ = complete(self.index, self.vectors, q, start, np.zeros_like(start), exclude)
        pool = neighbourhood(self.index, self.vectors, q) if needs_pool(weights) else None
        rel = None if self.relevance is None else self.relevance.scorer(V, self.vectors)
        out = refine_grounding(self.vectors, q, hits, start, weights, sweeps=self.sweeps,
                               exclude=exclude, pool=pool, relevance=rel)
        return out, np.full((len(V), k), -1)


__all__ = ["SHORTLIST", "AscentRetriever", "refine_fanout", "refine_grounding"]
