"""The budget rule and quota rounding — the one place either is computed.

``resolve_budget(budget, n)``: a float in (0, 1] is a fraction of the n candidates
(``k = max(1, round(budget * n))``, half rounds up); an int ≥ 1 is a count (≤ n).
Booleans, 0, negatives, NaN, counts above n and fractions above 1 are errors.

``largest_remainder(sizes, k)``: integer quotas proportional to ``sizes`` that sum to exactly
``k`` (Hamilton's method): floor of each share, then the leftover units go to the largest
fractional remainders (ties: larger group first, then lower index).
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np

from curate.errors import BudgetError

Budget = int | float


def _allowed(n: int) -> str:
    return f"budget must be a fraction in (0, 1] or a count in [1, {n}]"


def parse_budget(text: str) -> Budget:
    """Parse a CLI budget: ``"100"`` → 100 (count), ``"0.1"``/``"1.0"``/``"1e-2"`` → fraction."""
    s = str(text).strip()
    if re.fullmatch(r"[+-]?\d+", s):
        return int(s)
    try:
        return float(s)
    except ValueError:
        raise BudgetError(f"budget must be a fraction in (0, 1] or a whole count; got {text!r}") \
            from None


def resolve_budget(budget: Budget, n: int) -> int:
    """Number of items to select from ``n`` candidates."""
    if n < 1:
        raise BudgetError("cannot resolve a budget: there are no candidates")
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise BudgetError(f"{_allowed(n)}; got {budget!r} ({type(budget).__name__})")
    if isinstance(budget, numbers.Integral):
        if not 1 <= budget <= n:
            raise BudgetError(f"{_allowed(n)}; got {budget}")
        return int(budget)
    b = float(budget)
    if math.isnan(b) or not 0 < b <= 1:
        raise BudgetError(f"{_allowed(n)}; got {budget}")
    return max(1, min(n, int(math.floor(b * n + 0.5))))


def largest_remainder(sizes: np.ndarray, k: int) -> np.ndarray:
    """Quotas ∝ ``sizes`` summing to ``k``; each quota ≤ its size when ``k ≤ sum(sizes)``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if not 0 <= k <= total:
        raise BudgetError(f"cannot split {k} items over groups holding {total}")
    if total == 0:
        return np.zeros_like(sizes)
    exact = sizes * (k / total)
    quotas = np.floor(exact).astype(np.int64)
    left = k - int(quotas.sum())
    if left:
        remainder = exact - quotas
        remainder[quotas >= sizes] = -1.0  # a full group cannot take more
        order = np.lexsort((np.arange(len(sizes)), -sizes, -remainder))
        quotas[order[:left]] += 1
    return quotas


def class_groups(labels: np.ndarray | None, k: int) -> list[tuple[np.ndarray, int]]:
    """``[(positions of class c, quota k_c), ...]`` with largest-remainder quotas (classes with
    quota 0 left out); one group holding everything when ``labels`` is None."""
    if labels is None:
        raise ValueError("class_groups needs labels")
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")  # one sort, not one pass per class
    classes, starts, sizes = np.unique(labels[order], return_index=True, return_counts=True)
    quotas = largest_remainder(sizes, k)
    return [(order[s:s + m], int(q))
            for s, m, q in zip(starts, sizes, quotas, strict=True) if q]


def shuffled_class_rank(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) each row's position within its class after a seeded shuffle of the class: the
    basis of class-stratified folds and splits (vectorised: one lexsort)."""
    labels = np.asarray(labels)
    order = np.lexsort((rng.permutation(len(labels)), labels))   # by class, shuffled within
    starts = np.searchsorted(labels[order], labels[order], side="left")
    rank = np.empty(len(labels), np.int64)
    rank[order] = np.arange(len(labels)) - starts
    return rank
