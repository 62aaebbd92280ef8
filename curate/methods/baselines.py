"""Random baselines: uniform random and class-stratified random."""

from __future__ import annotations

import numpy as np

from curate.budget import class_groups
from curate.checks import check_choice
from curate.inputs import SelectionInput
from curate.selector import Needs, Picks, Selector, register


@register("random")
class RandomSelector(Selector):
    """Uniform random sample of the candidates, without replacement.

    Pick order is the draw order, so any prefix is itself a uniform sample.
    """

    needs = Needs()

    def __init__(self) -> None:
        pass

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        return Picks(positions=rng.choice(data.n, size=k, replace=False))


@register("stratified")
class StratifiedSelector(Selector):
    """Class-stratified random sample: per-class quotas, uniform within each class.

    ``balance="proportional"`` (default): quota k_c ∝ class size n_c, rounded by largest
    remainder so Σ k_c = k exactly. ``balance="equal"``: as equal as possible across classes
    (water-filling: a class smaller than its share gives the rest to the others).
    Pick order is a random interleaving of the classes.
    """

    needs = Needs(labels=True)

    def __init__(self, *, balance: str = "proportional"):
        self.balance = balance

    def _check_params(self) -> None:
        check_choice(self.name, "balance", self.balance, ("proportional", "equal"))

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        if self.balance == "proportional":
            groups = class_groups(data.labels, k)
        else:
            classes, sizes = np.unique(data.labels, return_counts=True)
            groups = [(np.flatnonzero(data.labels == c), int(q))
                      for c, q in zip(classes, equal_quotas(sizes, k), strict=True) if q]
        chosen = [rng.choice(idx, size=q, replace=False) for idx, q in groups]
        picks = np.concatenate(chosen)
        return Picks(positions=rng.permutation(picks))


def equal_quotas(sizes: np.ndarray, k: int) -> np.ndarray:
    """Quotas as equal as possible, each ≤ its class size, summing to k (water-filling)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    quotas = np.zeros_like(sizes)
    left = k
    open_ = np.ones(len(sizes), dtype=bool)
    while left > 0 and open_.any():
        share = left // int(open_.sum())
        if share == 0:  # fewer units than open classes: one each to the largest open classes
            order = np.lexsort((np.arange(len(sizes)), -sizes))
            for i in order:
                if left == 0:
                    break
                if open_[i]:
                    quotas[i] += 1
                    left -= 1
            break
        add = np.where(open_, np.minimum(share, sizes - quotas), 0)
        quotas += add
        left -= int(add.sum())
        open_ &= quotas < sizes
    return quotas
