"""``ScoreSelector``: the shared base of score-based methods (CLD, EL2N, forgetting,
uncertainty). A subclass computes one importance score per candidate; the base applies the
sampling policy (``topk`` | ``ccs`` | ``auto``, see ``curate.policies``), per-class quotas,
and ``reverse`` (keep the lowest scores: a sanity check such as bottom-CLD).

Scores stream. A candidate's score depends only on its own columns of the signals (and on
arrays every candidate shares, such as CLD's validation trajectories), so the base scores
the candidates in chunks of ``CHUNK`` columns — each chunk one task of the executor, reading
its slice of the memory-mapped signals — and concatenates the chunks' scores in order. Extra
memory is O(E·CHUNK) for a chunk's temporaries plus O(n) for the scores, never O(E·n); the
scores are the same bytes whatever the chunking or the executor (``local`` == ``ray``).
The policy then runs once, on the driver, over all n scores (exact: no approximate merge).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from curate.checks import check_bool
from curate.inputs import CandidateSignals, SelectionInput
from curate.policies import check_policy, pick, resolve_policy
from curate.selector import Picks, Selector
from stores.executor import spans

#: candidates scored per task: E×CHUNK float64 temporaries (≈ 40 MB per array at E = 10)
CHUNK = 1 << 19


def _score_task(span: tuple[int, int], shared: dict[str, Any]) -> np.ndarray:
    """One chunk's scores (a module-level function: Ray ships it by reference)."""
    lo, hi = span
    s = shared
    sig = CandidateSignals(
        train_losses=s["train_losses"][:, lo:hi], val_losses=s["val_losses"],
        val_labels=s["val_labels"],
        train_correct=None if s["train_correct"] is None else s["train_correct"][:, lo:hi],
        train_probs=None if s["train_probs"] is None else s["train_probs"][lo:hi])
    labels = None if s["labels"] is None else s["labels"][lo:hi]
    data = SelectionInput(row_idx=np.arange(lo, hi, dtype=np.int64), labels=labels,
                          classes=s["classes"], signals=sig)
    return np.asarray(s["selector"]._scores(data), dtype=np.float64)


class ScoreSelector(Selector):
    """Base class; subclasses implement ``_scores(data) -> (n,)`` (per candidate, chunk-local)
    and may override ``_summary(data, scores) -> info`` (global checks, on the driver)."""

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

    def _scores(self, data: SelectionInput) -> np.ndarray:
        """(n,) importance scores of ``data``'s candidates; may see only a chunk of them."""
        raise NotImplementedError

    def _summary(self, data: SelectionInput, scores: np.ndarray) -> dict[str, Any]:
        """Checks and ``info`` that need every score (override)."""
        return {}

    def all_scores(self, data: SelectionInput) -> np.ndarray:
        """Every candidate's score, chunk by chunk on the running executor."""
        s = data.signals
        shared = {"selector": self, "labels": data.labels, "classes": data.classes,
                  "train_losses": s.train_losses, "val_losses": s.val_losses,
                  "val_labels": s.val_labels, "train_correct": s.train_correct,
                  "train_probs": s.train_probs}
        chunks = spans(data.n, CHUNK)
        parts = self.executor.map(_score_task, chunks, shared=shared,
                                  desc=f"{self.name} scores" if len(chunks) > 1 else "")
        return np.concatenate(parts) if parts else np.zeros(0)

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        scores = self.all_scores(data)
        info = self._summary(data, scores)
        keyed = -scores if self.reverse else scores
        chosen = pick(keyed, data.labels if self.per_class else None, k, rng,
                      policy=self.policy, per_class=self.per_class, beta=self.beta,
                      strata=self.strata, prune_high=self.prune_high != self.reverse,
                      ccs_above=self.auto_ccs_above)
        info = {**info, "policy": resolve_policy(self.policy, k, data.n, self.auto_ccs_above)}
        return Picks(positions=chosen, scores=scores[chosen], info=info)
