"""Uncertainty sampling (as used for data selection by Coleman et al., ICLR 2020, SVP).

From the proxy's class probabilities p_i (n, C):
    entropy:           −Σ_c p_ic log p_ic
    margin:            1 − (p_i(1) − p_i(2))      (top-1 minus top-2 probability)
    least_confidence:  1 − max_c p_ic
High = uncertain; top-k keeps the most uncertain.
"""

from __future__ import annotations

import numpy as np

from curate.checks import check_choice
from curate.errors import MissingInputError
from curate.inputs import SelectionInput
from curate.score_selector import ScoreSelector
from curate.selector import Needs, register

MEASURES = ("entropy", "margin", "least_confidence")


def uncertainty(probs: np.ndarray, measure: str) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    if measure == "entropy":
        return -(p * np.log(p)).sum(axis=1)
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    if measure == "margin":
        return 1.0 - (top2[:, 0] - top2[:, 1])
    return 1.0 - top2[:, 0]


@register("uncertainty")
class UncertaintySelector(ScoreSelector):
    """Uncertainty of the proxy: entropy, margin or least confidence."""

    needs = Needs(signals=True)

    def __init__(self, *, measure: str = "entropy", per_class: bool = True,
                 reverse: bool = False, policy: str = "topk", beta: float = 0.1,
                 strata: int = 50):
        self.measure = measure
        self._init_policy(policy, per_class, reverse, beta, strata)

    def _check_params(self) -> None:
        super()._check_params()
        check_choice(self.name, "measure", self.measure, MEASURES)

    def _check_input(self, data: SelectionInput) -> None:
        if data.signals.train_probs is None:
            raise MissingInputError("uncertainty needs the proxy's class probabilities: "
                                    "retrain with `curate signals train`")

    def _scores(self, data: SelectionInput) -> np.ndarray:
        return uncertainty(data.signals.train_probs, self.measure)

    def _summary(self, data: SelectionInput, scores: np.ndarray) -> dict:
        return {"measure": self.measure}
