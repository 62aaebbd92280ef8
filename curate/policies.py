"""How a score-based method turns per-sample scores into a subset of size k.

Every score-based selector (CLD, EL2N, forgetting, uncertainty) produces an *importance*
score per candidate (higher = the paper's top-k keeps it first) and hands it to one of:

- ``topk`` — the paper's rule: the k highest scores (per class with largest-remainder
  quotas when ``per_class``).
- ``ccs`` — Coverage-Centric Coreset Selection (Zheng et al., ICLR 2023, Alg. 1): drop the
  ``beta`` fraction at the suspicious end of the scores (the hardest / likeliest-mislabelled
  samples), cut the rest into ``strata`` equal-width score bins, then repeatedly give the
  smallest remaining bin min(|bin|, ⌊k_left / bins_left⌋) uniformly drawn samples, so the
  subset covers the whole score range instead of one end of it. ``strata`` is at most
  ``MAX_STRATA`` (10,000): the bin edges are allocated, so it is bounded before use.
- ``auto`` — ``topk`` up to a method-specific fraction of the candidates, ``ccs`` above it
  (``ScoreSelector.auto_ccs_above``), set from ``benchmarks/results/subset_quality.md``:
  for CLD top-k wins at 5–10% and CCS at 30%, so CLD switches above 10%; for the difficulty
  scores (EL2N, forgetting, uncertainty) CCS wins at every budget from 1% to 30%, so they
  always use it.
"""

from __future__ import annotations

import numpy as np

from curate.budget import class_groups
from curate.checks import check_int, check_number
from curate.errors import InvalidParameterError

POLICIES = ("topk", "ccs", "auto")
#: CCS score bins at most: the bin edges are allocated, so ``strata`` is bounded
MAX_STRATA = 10_000


def check_policy(method: str, policy: str, beta: float, strata: int) -> None:
    if policy not in POLICIES:
        raise InvalidParameterError(f"{method}: policy must be one of {', '.join(POLICIES)}; "
                                    f"got {policy!r}")
    check_number(method, "beta", beta, 0.0, 1.0, high_open=True)
    check_int(method, "strata", strata, 1, MAX_STRATA)


def resolve_policy(policy: str, k: int, n: int, ccs_above: float = 0.0) -> str:
    """``auto`` → ``ccs`` when k/n > ``ccs_above``, else ``topk``; other policies as given."""
    if policy == "auto":
        return "ccs" if k / n > ccs_above else "topk"
    return policy


def topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first (ties: lower position first)."""
    return np.argsort(-scores, kind="stable")[:k]


def ccs(scores: np.ndarray, k: int, rng: np.random.Generator, *, beta: float = 0.1,
        strata: int = 50, prune_high: bool = True) -> np.ndarray:
    """Coverage-centric sampling of k positions (see module docstring).

    ``prune_high``: the suspicious end is the high-score end (difficulty scores such as EL2N
    or forgetting); False prunes the low end (CLD, where a negative correlation marks a sample
    that works against its class). Pruning never removes more than leaves k samples.
    """
    n = len(scores)
    n_drop = min(int(round(beta * n)), n - k)
    order = np.argsort(-scores if prune_high else scores, kind="stable")
    keep = np.sort(order[n_drop:])
    s = scores[keep]
    lo, hi = float(s.min()), float(s.max())
    edges = np.linspace(lo, hi, strata + 1)
    bins = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, strata - 1)
    # the non-empty bins in bin order, members in ``keep`` order: O(n log n), not O(strata·n)
    order = np.argsort(bins, kind="stable")
    _, starts = np.unique(bins[order], return_index=True)
    groups = sorted(np.split(keep[order], starts[1:]), key=len)
    picked, left = [], k
    for i, g in enumerate(groups):
        take = min(len(g), left // (len(groups) - i))
        if take:
            picked.append(rng.choice(g, size=take, replace=False))
        left -= take
    out = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    if left:  # rounding left a few: fill from the unpicked kept samples
        rest = np.setdiff1d(keep, out)
        out = np.concatenate([out, rng.choice(rest, size=left, replace=False)])
    return out[np.argsort(-scores[out], kind="stable")]


def pick(scores: np.ndarray, labels: np.ndarray | None, k: int, rng: np.random.Generator, *,
         policy: str, per_class: bool, beta: float = 0.1, strata: int = 50,
         prune_high: bool = True, ccs_above: float = 0.0) -> np.ndarray:
    """Apply ``policy`` globally or within each class (largest-remainder quotas)."""
    chosen_policy = resolve_policy(policy, k, len(scores), ccs_above)

    def one(idx: np.ndarray, q: int) -> np.ndarray:
        if q == 0:
            return idx[:0]
        if chosen_policy == "topk":
            return idx[topk(scores[idx], q)]
        return idx[ccs(scores[idx], q, rng, beta=beta, strata=strata, prune_high=prune_high)]

    if per_class and labels is not None:
        chosen = np.concatenate([one(idx, q) for idx, q in class_groups(labels, k)])
    else:
        chosen = one(np.arange(len(scores)), k)
    return chosen[np.argsort(-scores[chosen], kind="stable")]
