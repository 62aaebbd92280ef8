"""EL2N (Paul, Ganguli & Dziugaite, NeurIPS 2021, "Deep Learning on a Data Diet").

score_i = ‖softmax(f(x_i)) − onehot(y_i)‖₂ from the proxy's class probabilities. High =
hard; the paper keeps the hardest. Simplification: the paper scores at an early epoch
averaged over several seeds; we use the proxy's last-epoch probabilities (the only ones
stored). ``epoch=e`` instead scores by the per-sample loss at checkpoint e (1-based), the
"loss at an early epoch" variant, from the stored trajectories.
"""

from __future__ import annotations

import numpy as np

from curate.errors import InvalidParameterError, MissingInputError
from curate.inputs import SelectionInput
from curate.score_selector import ScoreSelector
from curate.selector import Needs, register


@register("el2n")
class EL2NSelector(ScoreSelector):
    """EL2N: error-vector norm of the proxy's predictions (or loss at an early epoch)."""

    needs = Needs(labels=True, signals=True)

    def __init__(self, *, epoch: int | None = None, per_class: bool = True,
                 reverse: bool = False, policy: str = "topk", beta: float = 0.1,
                 strata: int = 50):
        self.epoch = epoch
        self._init_policy(policy, per_class, reverse, beta, strata)

    def _check_params(self) -> None:
        super()._check_params()
        if self.epoch is not None and (isinstance(self.epoch, bool)
                                       or not isinstance(self.epoch, int) or self.epoch < 1):
            raise InvalidParameterError(f"el2n: epoch must be an integer ≥ 1; got {self.epoch!r}")

    def _check_input(self, data: SelectionInput) -> None:
        s = data.signals
        if self.epoch is None and s.train_probs is None:
            raise MissingInputError("el2n needs the proxy's class probabilities: retrain with "
                                    "`curate signals train`, or pass --param epoch=N")
        if self.epoch is not None and self.epoch > s.n_checkpoints:
            raise InvalidParameterError(f"el2n: epoch {self.epoch} > {s.n_checkpoints} "
                                        "checkpoints in the signals")

    def _scores(self, data: SelectionInput) -> np.ndarray:
        s = data.signals
        if self.epoch is not None:
            return np.asarray(s.train_losses[self.epoch - 1], dtype=np.float64)
        err = np.array(s.train_probs, dtype=np.float64)   # one chunk's copy (n_chunk, C)
        err[np.arange(len(err)), data.labels] -= 1.0
        return np.linalg.norm(err, axis=1)

    def _summary(self, data: SelectionInput, scores: np.ndarray) -> dict:
        return {"score": "el2n@last" if self.epoch is None else "loss@epoch"}
