"""The dynamic pruners: no pruning, dynamic random, InfoBatch and SeTa.

- ``full``: every sample, every epoch.
- ``dynamic_random``: each epoch a fresh uniform (1 − r) of the samples.
- ``infobatch`` (Qin et al., ICLR 2024): samples whose last loss is below the mean are
  "well learned"; a fraction r of them is skipped this epoch and the kept ones get weight
  1/(1 − r) so the expected gradient is unchanged; the last (1 − δ) of epochs use all data.
- ``seta`` (Zhou, Gao & Wang, CVPR 2025, "Scale Efficient Training for Large Datasets"):
  keep a uniform (1 − r) of the samples, split them by last loss into G groups with 1-D
  k-means, sort easy → hard, and train on a window of round(G·s) consecutive groups whose start
  slides one group per epoch and restarts at the easy end: start = t mod (G − w + 1) (the
  reference's ``slide_easy2hard``; the first epoch uses every group). The last (1 − δ) of
  epochs use random pruning only. ``round`` is Python's (half to even), as in the reference,
  so G=5, s=0.9 gives a window of 4.
"""

from __future__ import annotations

import numpy as np

from curate.checks import check_int, check_number, did_you_mean
from curate.errors import InvalidParameterError
from curate.pruning.base import DynamicPruner


class FullData(DynamicPruner):
    name = "full"
    summary = "no pruning: every sample every epoch (the reference run)"

    def __init__(self, n: int, epochs: int, *, seed: int = 0, **_: object):
        super().__init__(n, epochs, prune_ratio=0.0, seed=seed)


class DynamicRandomPruner(DynamicPruner):
    name = "dynamic_random"
    summary = "a fresh uniform (1 − prune_ratio) share of the samples each epoch"

    def _plan(self, epoch, rng):
        keep = max(1, int(round((1 - self.prune_ratio) * self.n)))
        return rng.choice(self.n, size=keep, replace=False)


class InfoBatchPruner(DynamicPruner):
    name = "infobatch"
    summary = "drop a share of below-mean-loss samples, rescale the kept ones (Qin et al. 2024)"

    def _plan(self, epoch, rng):
        if self.is_annealing(epoch):
            return np.arange(self.n)
        well = self.scores < self.scores.mean()
        easy = np.flatnonzero(well)
        kept_easy = rng.choice(easy, size=int(round((1 - self.prune_ratio) * len(easy))),
                               replace=False)
        if self.prune_ratio > 0:
            self.weights[kept_easy] = 1.0 / (1.0 - self.prune_ratio)
        return np.concatenate([np.flatnonzero(~well), kept_easy])


def kmeans_1d(values: np.ndarray, k: int, iters: int = 50) -> np.ndarray:
    """Exact-enough 1-D k-means (Lloyd's from quantile starts); labels sorted by centre.

    Labels are dense, ``0 … g−1`` with every group non-empty: tied values can make two
    quantile starts coincide and leave a centre with no values, and an empty group would
    let SeTa's window slide over nothing; such groups are dropped (so g ≤ k)."""
    k = min(k, len(np.unique(values)))
    if k <= 1:
        return np.zeros(len(values), dtype=np.int64)
    centres = np.quantile(values, (np.arange(k) + 0.5) / k)
    for _ in range(iters):
        edges = (centres[1:] + centres[:-1]) / 2
        labels = np.searchsorted(edges, values)
        new = np.array([values[labels == j].mean() if (labels == j).any() else centres[j]
                        for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = np.sort(new)
    labels = np.searchsorted((centres[1:] + centres[:-1]) / 2, values)
    return np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1)


class SeTaPruner(DynamicPruner):
    name = "seta"
    summary = "random prune, then a sliding window over loss-difficulty groups (SeTa)"

    def __init__(self, n: int, epochs: int, *, prune_ratio: float = 0.1, groups: int = 5,
                 window: float = 0.9, anneal: float = 0.875, seed: int = 0):
        super().__init__(n, epochs, prune_ratio=prune_ratio, anneal=anneal, seed=seed)
        check_int("seta", "groups", groups)
        check_number("seta", "window", window, 0.0, 1.0, low_open=True)
        self.groups, self.window = groups, window
        self.window_size = max(1, round(groups * window))
        self.step = 0

    def _plan(self, epoch, rng):
        keep = max(1, int((1 - self.prune_ratio) * self.n))
        kept = rng.choice(self.n, size=keep, replace=False)
        if self.is_annealing(epoch):
            return kept
        labels = kmeans_1d(self.scores[kept], self.groups)
        n_groups = int(labels.max()) + 1
        w = min(self.window_size, n_groups)
        start = 0 if self.step == 0 else self.step % (n_groups - w + 1)
        self.step += 1
        if self.step == 1:
            return kept
        return kept[(labels >= start) & (labels < start + w)]


PRUNERS = {"full": FullData, "dynamic_random": DynamicRandomPruner,
           "infobatch": InfoBatchPruner, "seta": SeTaPruner}


def describe_pruners() -> list[dict[str, str]]:
    """One row per dynamic pruner for ``curate methods``: its name, what it needs during
    training, its parameters and summary (``curate train --pruner NAME``)."""
    import inspect

    rows = []
    for name, cls in PRUNERS.items():
        own = [p.name for p in inspect.signature(cls.__init__).parameters.values()
               if p.kind is p.KEYWORD_ONLY]
        base = [p.name for p in inspect.signature(DynamicPruner.__init__).parameters.values()
                if p.kind is p.KEYWORD_ONLY]
        rows.append({"method": name, "kind": "pruner",
                     "needs": "nothing" if name in ("full", "dynamic_random")
                     else "per-sample losses each step (update)",
                     "params": ", ".join(own or base), "summary": cls.summary})
    return rows


def make_pruner(name: str, n: int, epochs: int, **params) -> DynamicPruner:
    if name not in PRUNERS:
        raise InvalidParameterError(f"unknown pruner {name!r}{did_you_mean(name, PRUNERS)} "
                                    f"(available: {', '.join(PRUNERS)})")
    try:
        return PRUNERS[name](n, epochs, **params)
    except TypeError as exc:
        raise InvalidParameterError(f"{name}: {exc}") from None
