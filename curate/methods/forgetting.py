"""Forgetting events (Toneva et al., ICLR 2019).

A forgetting event is a checkpoint where sample i goes from correctly to incorrectly
classified: count_i = Σ_e [correct_{e-1,i} ∧ ¬correct_{e,i}] over the proxy's E checkpoints.
Samples never learned (never correct) count as E (more forgettable than any learned one),
as in the paper. High = hard; the paper removes the unforgettable (lowest) samples first,
i.e. keeps the top-k. Ties (many zero counts) are broken by the last-epoch loss ℓ, higher
first: score = count + ℓ / (2(ℓ + 1)), the tie-break in [0, ½).
"""

from __future__ import annotations

import numpy as np

from curate.errors import MissingInputError
from curate.inputs import SelectionInput
from curate.score_selector import ScoreSelector
from curate.selector import Needs, register


def forgetting_counts(correct: np.ndarray) -> np.ndarray:
    """(E, n) bool → (n,) forgetting events; never-learned samples get E."""
    correct = np.asarray(correct, dtype=bool)
    events = (correct[:-1] & ~correct[1:]).sum(axis=0).astype(np.float64)
    events[~correct.any(axis=0)] = correct.shape[0]
    return events


@register("forgetting")
class ForgettingSelector(ScoreSelector):
    """Forgetting events: how often the proxy forgets a sample it had learned."""

    needs = Needs(labels=True, signals=True)

    def __init__(self, *, per_class: bool = True, reverse: bool = False, policy: str = "topk",
                 beta: float = 0.1, strata: int = 50):
        self._init_policy(policy, per_class, reverse, beta, strata)

    def _check_input(self, data: SelectionInput) -> None:
        if data.signals.train_correct is None:
            raise MissingInputError("forgetting needs per-checkpoint correctness in the "
                                    "signals: retrain with `curate signals train`")

    def _scores(self, data: SelectionInput) -> np.ndarray:
        counts = forgetting_counts(data.signals.train_correct)
        loss = np.maximum(np.asarray(data.signals.train_losses[-1], dtype=np.float64), 0.0)
        # in [0, 0.5), rising with the loss: breaks ties, never reorders different counts,
        # and needs no global maximum (each chunk scores on its own)
        return counts + 0.5 * loss / (loss + 1.0)

    def _summary(self, data: SelectionInput, scores: np.ndarray) -> dict:
        return {"mean_forgetting": float(np.floor(scores).mean())}
