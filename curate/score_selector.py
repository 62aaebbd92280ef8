"""``ScoreSelector``: the shared base of score-based methods (CLD, EL2N, forgetting,
uncertainty). A subclass computes one importance score per candidate; the base applies the
sampling policy (``topk`` | ``ccs`` | ``auto``, see ``curate.policies``), per-class quotas,
and ``reverse`` (keep the lowest scores: a sanity check such as bottom-CLD).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from curate.checks import check_bool
from curate.inputs import SelectionInput
from curate.policies import check_policy, pick, resolve_policy
from curate.selector import Picks, Selector


class ScoreSelector(Selector):
    """Base class; subclasses implement ``_scores(data) -> (scores (n,), info dict)``."""

    #: which end of the importance scores CCS treats as suspicious and prunes
    prune_high: ClassVar[bool] = True
    #: ``policy="auto"`` uses CCS when k/n exceeds this (see curate.policies)
    auto_ccs_above: ClassVar[float] = 0.0

    def _init_policy(self, policy: str, per_class: bool, reverse: bool, beta: float,
                     strata: int) -> None:
        self.policy = policy
        self.per_class = per_class
        self.reverse = reverse
        self.beta = beta
        self.strata = strata

    def _check_params(self) -> None:
        for name in ("per_class", "reverse"):
            check_bool(self.name, name, getattr(self, name))
        check_policy(self.name, self.policy, self.beta, self.strata)

    def _scores(self, data: SelectionInput) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        scores, info = self._scores(data)
        keyed = -scores if self.reverse else scores
        chosen = pick(keyed, data.labels if self.per_class else None, k, rng,
                      policy=self.policy, per_class=self.per_class, beta=self.beta,
                      strata=self.strata, prune_high=self.prune_high != self.reverse,
                      ccs_above=self.auto_ccs_above)
        info = {**info, "policy": resolve_policy(self.policy, k, data.n, self.auto_ccs_above)}
        return Picks(positions=chosen, scores=scores[chosen], info=info)
