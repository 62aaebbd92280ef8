"""Set-level objectives for fan-out retrieval (R4T, arXiv 2603.06397), vectorised over a
batch of sets. Shapes: q (B, d) queries, S (B, k, d) item vectors, all L2-normalised, so every
dot product is a cosine.

- alignment(q, S)      = mean_i cos(q, s_i)
- diversity(S)         = Vendi score = exp(−Σ λ_j log λ_j), λ = eigenvalues of K/k with
                         K_ij = max(0, cos(s_i, s_j)); 1 for k copies, k for k orthogonal items
- groundedness(q, S; τ) = mean_i [cos(q, s_i) ≥ τ_q], τ_q = the query's R-th best cosine in the
                         database (``pool`` = R nearest items): the share of the set inside the
                         query's own neighbourhood. A diagnostic, not in the default composite:
                         top-k scores 1.0 by construction, and so did every method measured
                         (MMR 0.999, teacher 1.000, diffusion 0.995 at R = 500), so as 0.6 of the
                         composite it was a constant that drowned the rest
- coverage(S; P)       = mean_{p ∈ P} max_i cos(p, s_i) over the query's pool P (R, d): how well
                         the set represents the facets of the query's neighbourhood
- complementarity(S)   = mean_i (1 − max_{j≠i} cos(s_i, s_j)): each item adds something new
- coherence(S)         = mean_i cos(s_i, centroid(S)): the set stays on one topic
- composite            = Σ w_m · m over the request's weights (diversity enters as Vendi / k, in
                         [1/k, 1]). Default: 0.5 diversity + 0.5 alignment — the paper's
                         0.6 groundedness + 0.2 diversity + 0.2 alignment with the constant
                         groundedness term removed and the rest renormalised (relevance and
                         diversity weighted equally)
- reference_recall(R, Y) = |Y ∩ R| / |Y| (weak supervision); with ``cap``, / min(|Y|, cap)

Weights (``check_weights``): keys from ``OBJECTIVES``, values in [0, ``MAX_WEIGHT``], at least
one > 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

OBJECTIVES = ("groundedness", "diversity", "alignment", "coverage", "complementarity",
              "coherence")
DEFAULT_WEIGHTS = {"diversity": 0.5, "alignment": 0.5}
MAX_WEIGHT = 1e6            # the composite stays far from float overflow


def check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The composite's weights, validated: ``DEFAULT_WEIGHTS`` for None; otherwise every key
    an objective name, every value a real in [0, ``MAX_WEIGHT``] (not a bool), and at least
    one > 0.
    Raises ``InvalidParameterError`` with a one-line message."""
    from core.errors import InvalidParameterError

    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    if not isinstance(weights, Mapping):
        raise InvalidParameterError(f"weights must be a mapping of objective name to weight; "
                                    f"got {type(weights).__name__}")
    unknown = sorted(str(m) for m in weights if m not in OBJECTIVES)
    if unknown:
        raise InvalidParameterError(f"unknown objective(s) {', '.join(unknown)}; "
                                    f"known: {', '.join(OBJECTIVES)}")
    out = {}
    for m, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) \
                or not math.isfinite(w) or not 0 <= w <= MAX_WEIGHT:
            raise InvalidParameterError(f"weight of {m!r} must be a finite number in [0, "
                                        f"{MAX_WEIGHT:g}]; got {w!r}")
        out[m] = float(w)
    if not any(w > 0 for w in out.values()):
        raise InvalidParameterError(f"at least one objective weight must be > 0; got {out}")
    return out


def alignment(q: np.ndarray, S: np.ndarray) -> np.ndarray:
    return np.einsum("bd,bkd->bk", q, S).mean(1)


def vendi(S: np.ndarray) -> np.ndarray:
    return vendi_gram(S @ S.transpose(0, 2, 1))


def groundedness(q: np.ndarray, S: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    return (np.einsum("bd,bkd->bk", q, S) >= threshold[:, None] - 1e-6).mean(1)


def coverage(S: np.ndarray, pool: np.ndarray) -> np.ndarray:
    return (pool @ S.transpose(0, 2, 1)).max(2).mean(1)


def complementarity(S: np.ndarray) -> np.ndarray:
    return complementarity_gram(S @ S.transpose(0, 2, 1))


def coherence(S: np.ndarray) -> np.ndarray:
    return coherence_gram(S @ S.transpose(0, 2, 1))


# -- the same objectives from a set's Gram matrix G = S Sᵀ (..., k, k) and its items' cosines
# to the query a = S q (..., k): what a search that swaps one item at a time updates cheaply
# (``retrieval.ascent``). The functions above are these on S.

def vendi_gram(G: np.ndarray) -> np.ndarray:
    """Vendi score of sets with Gram matrices G (..., k, k) → (...)."""
    K = np.clip(G, 0.0, None) / G.shape[-1]
    lam = np.clip(np.linalg.eigvalsh(K), 0.0, None)
    lam = lam / np.maximum(lam.sum(-1, keepdims=True), 1e-12)
    ent = -(np.where(lam > 0, lam * np.log(np.where(lam > 0, lam, 1.0)), 0.0)).sum(-1)
    return np.exp(ent)


def vendi2_gram(G: np.ndarray) -> np.ndarray:
    """The order-2 Vendi score (Rényi entropy of order 2 instead of Shannon), a cheap stand-in
    for ``vendi_gram``: with K = max(0, G) / k, exp(H₂) = (tr K)² / ‖K‖_F² — no eigen-
    decomposition. Both are 1 for k copies and k for k orthogonal items, and H₂ ≤ H, so it
    never exceeds the Vendi score."""
    K = np.clip(G, 0.0, None)
    tr = np.trace(K, axis1=-2, axis2=-1)
    return tr ** 2 / np.maximum((K * K).sum((-2, -1)), 1e-24)


def complementarity_gram(G: np.ndarray) -> np.ndarray:
    k = G.shape[-1]
    if k == 1:
        return np.ones(G.shape[:-2])
    K = np.array(G, dtype=np.float64)
    K[..., np.arange(k), np.arange(k)] = -np.inf
    return (1.0 - K.max(-1)).mean(-1)


def coherence_gram(G: np.ndarray) -> np.ndarray:
    """mean_i cos(s_i, c), c = the normalised centroid: s_i·c = (G 1)_i / √(1ᵀ G 1)."""
    row = G.sum(-1)
    return (row / np.sqrt(np.maximum(row.sum(-1, keepdims=True), 1e-24))).mean(-1)


def needs_pool(weights: Mapping[str, float]) -> bool:
    """Whether a composite under ``weights`` reads the query's neighbourhood (coverage,
    groundedness)."""
    return any(weights.get(m, 0) > 0 for m in ("coverage", "groundedness"))


def composite_parts(G: np.ndarray, a: np.ndarray, weights: Mapping[str, float],
                    tau: np.ndarray | None = None,
                    cover: np.ndarray | None = None, order2: bool = False) -> np.ndarray:
    """The composite under ``weights`` (checked) of sets given by their Gram matrices
    G (..., k, k) and item-to-query cosines a (..., k), computing only the weighted
    objectives; ``tau`` the groundedness threshold (broadcastable against a's leading
    axes, e.g. (B, 1)) and ``cover`` (...) the sets' coverage, needed only when those
    objectives are weighted. Equal to ``score_sets``' composite for the same sets;
    ``order2`` puts the order-2 Vendi score (``vendi2_gram``) in place of the Vendi score
    (a cheap shortlist score)."""
    k = G.shape[-1]
    div = vendi2_gram if order2 else vendi_gram
    return weighted_sum({"alignment": lambda: a.mean(-1), "diversity": lambda: div(G) / k,
                         "complementarity": lambda: complementarity_gram(G),
                         "coherence": lambda: coherence_gram(G),
                         "groundedness": lambda: (a >= tau[..., None] - 1e-6).mean(-1),
                         "coverage": lambda: cover}, weights, G.shape[:-2])


def weighted_sum(terms: Mapping[str, Callable[[], np.ndarray]],
                 weights: Mapping[str, float] | None, shape: tuple[int, ...]) -> np.ndarray:
    """The composite: Σ w_m · term_m over ``weights`` (checked), each term (diversity already
    divided by k) computed only when its weight is > 0. The one place the sum is written."""
    out = np.zeros(shape)
    for m, wt in check_weights(weights).items():
        if wt > 0:
            out = out + wt * terms[m]()
    return out


def reference_recall(retrieved, reference, cap: int | None = None) -> float:
    """|Y ∩ R| / |Y| for a retrieved set R and reference set Y (any iterables of ids; numpy
    arrays too); ``cap`` divides by min(|Y|, cap) instead (the most a k-set can reach)."""
    ref = set(np.asarray(list(reference)).tolist())
    if not ref:
        return float("nan")
    hits = len(ref & set(np.asarray(retrieved).tolist()))
    return hits / (min(len(ref), cap) if cap else len(ref))


def set_objectives(q: np.ndarray, S: np.ndarray, pool: np.ndarray,
                   weights: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """All objectives and the weighted composite for a batch. ``pool`` (B, R, d) are each
    query's R nearest database items, best first (its last row sets the groundedness τ);
    ``weights`` as in ``check_weights``."""
    tau = np.einsum("bd,bd->b", q, pool[:, -1])
    return _with_composite(_objectives(q, S, tau, coverage(S, pool)), S.shape[1], weights)


def _objectives(q: np.ndarray, S: np.ndarray, tau: np.ndarray,
                cover: np.ndarray) -> dict[str, np.ndarray]:
    return {"groundedness": groundedness(q, S, tau), "diversity": vendi(S),
            "alignment": alignment(q, S), "coverage": cover,
            "complementarity": complementarity(S), "coherence": coherence(S)}


def _with_composite(out: dict[str, np.ndarray], k: int,
                    weights: Mapping[str, float] | None) -> dict[str, np.ndarray]:
    norm = {**out, "diversity": out["diversity"] / k}
    out["composite"] = weighted_sum({m: (lambda v=v: v) for m, v in norm.items()}, weights,
                                    out["alignment"].shape)
    return out

#: the query's neighbourhood for groundedness and coverage: its R nearest database items.
#: One size everywhere a set is scored (the reported objectives, the teacher's reward and its
#: best-of-N, synthesis), so the number a method optimises is the number reported.
POOL = 500


def neighbourhood(index, vectors: np.ndarray, q: np.ndarray, size: int = POOL) -> np.ndarray:
    """(B, R, d) unit vectors of each query's R = min(size, n) nearest items, best first
    (``index`` a ``retrieval.index.VectorIndex``; q (B, d) unit rows). A hit the index could
    not return (−1) repeats the query's last valid one."""
    _, rows = index.search(q, min(int(size), len(vectors)))
    last = np.take_along_axis(rows, np.maximum((rows >= 0).sum(1, keepdims=True) - 1, 0), 1)
    return vectors[np.where(rows >= 0, rows, last)]


def score_sets(index, vectors: np.ndarray, q: np.ndarray, rows: np.ndarray,
               weights: Mapping[str, float] | None = None,
               pool: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every objective and the composite of item sets ``rows`` (B, k) or (B, n, k) (n
    candidate sets per query) for queries q (B, d): arrays (B,) or (B, n). ``pool`` (B, R, d)
    is the queries' ``neighbourhood`` (computed when None); it is never copied per candidate
    set (coverage is one batched (B, R, d) × (B, d, n·k) product)."""
    P = neighbourhood(index, vectors, q) if pool is None else pool
    shape = rows.shape[:-1]
    B, k = rows.shape[0], rows.shape[-1]
    m = int(np.prod(shape[1:], dtype=np.int64))
    S = vectors[rows.reshape(B, m, k)]                                   # (B, m, k, d)
    sims = P @ S.reshape(B, m * k, -1).transpose(0, 2, 1)              # (B, R, m·k), BLAS
    cover = sims.reshape(B, P.shape[1], m, k).max(3).mean(1)            # (B, m)
    tau = np.einsum("bd,bd->b", q, P[:, -1])
    out = _objectives(np.repeat(q, m, axis=0), S.reshape(B * m, k, -1), np.repeat(tau, m),
                      cover.reshape(-1))
    out = _with_composite(out, k, weights)
    return {name: v.reshape(shape) for name, v in out.items()}
