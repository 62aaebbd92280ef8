"""CLD — Correlation of Loss Differences (Nagaraj et al., TMLR 2025).

Inputs: train losses L_tr (E×n) and validation losses L_va (E×m) of a proxy model at E ≥ 3
checkpoints, and labels. For candidate i of class c::

    Δ_i = (L_tr[e+1, i] − L_tr[e, i])_{e=0..E−2}                 (E−1,)
    δ_c = diff over checkpoints of the class-mean validation loss  (E−1,)
          mean_{j ∈ val, y_j = c} L_va[:, j]
    score_i = Pearson(Δ_i, δ_c)   (population std; a zero std gives score 0)

A high score means the sample's loss falls when its class's validation loss falls: it
teaches what generalises. Keep the top k_c per class with k_c ∝ class size (largest
remainder, Σ k_c = k). Validation rows are never candidates (they are not in the pool).
Cost O(E·n) time. Memory: the (E, n) losses stay memory-mapped and are scored in chunks of
columns (``ScoreSelector``), so the float64 diff and centred copies are O(E·chunk) and the
extra memory is O(n) for the scores — never another E×n array.

Differences from the reference code: positions are mapped back to real ``row_idx`` through
the candidate pool (the reference indexes the wrong space); classes with no validation rows
score 0 (reported in ``info['classes_without_val']``) instead of raising.
``reverse=True`` keeps the *bottom* k_c per class (the paper's "bottom-CLD" sanity check).

Refused: when *every* candidate scores 0 — flat train trajectories (zero std of Δ_i for all
i), flat class-mean validation trajectories, or no candidate's class has validation rows —
CLD has nothing to rank by and top-k would silently return the first k rows, so
``DegenerateInputError`` is raised instead. The usual cause is a one-class dataset: its
proxy's cross-entropy is identically 0.
"""

from __future__ import annotations

import numpy as np

from curate.errors import DegenerateInputError, MissingInputError, SchemaError
from curate.inputs import SelectionInput
from curate.score_selector import ScoreSelector
from curate.selector import Needs, register

MIN_CHECKPOINTS = 3


def class_mean_trajectories(val_losses: np.ndarray, val_labels: np.ndarray,
                            n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(E, C) class-mean validation loss per checkpoint and a (C,) mask of classes seen."""
    E = val_losses.shape[0]
    sums = np.zeros((E, n_classes), dtype=np.float64)
    np.add.at(sums.T, val_labels, val_losses.T.astype(np.float64))
    counts = np.bincount(val_labels, minlength=n_classes)
    seen = counts > 0
    means = np.zeros_like(sums)
    means[:, seen] = sums[:, seen] / counts[seen]
    return means, seen


def cld_scores(train_losses: np.ndarray, labels: np.ndarray, val_losses: np.ndarray,
               val_labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """CLD score per candidate (n,) and the (C,) mask of classes with validation rows."""
    delta = np.diff(train_losses.astype(np.float64), axis=0)             # (E-1, n)
    means, seen = class_mean_trajectories(val_losses, val_labels, n_classes)
    target = np.diff(means, axis=0)[:, labels]                           # (E-1, n)
    dc = delta - delta.mean(axis=0)
    tc = target - target.mean(axis=0)
    cov = (dc * tc).mean(axis=0)
    std = np.sqrt((dc ** 2).mean(axis=0)) * np.sqrt((tc ** 2).mean(axis=0))
    scores = np.zeros(delta.shape[1])
    ok = (std > 1e-12) & seen[labels]
    scores[ok] = cov[ok] / std[ok]
    return np.clip(scores, -1.0, 1.0), seen


@register("cld")
class CLDSelector(ScoreSelector):
    """Correlation of Loss Differences: per-class top-k by Pearson(Δ loss_i, Δ class-val-loss).

    Parameters: ``per_class`` (quota per class, default True; False = global), ``reverse``
    (keep the lowest scores: bottom-CLD), ``policy`` (topk | ccs | auto), ``beta`` and
    ``strata`` (CCS; the pruned end is the most negative correlations).
    """

    needs = Needs(labels=True, signals=True)
    prune_high = False  # a strongly negative correlation marks a harmful sample
    auto_ccs_above = 0.1  # benchmark: top-k wins at ≤ 10%, CCS at 30%

    def __init__(self, *, per_class: bool = True, reverse: bool = False, policy: str = "topk",
                 beta: float = 0.1, strata: int = 50):
        self._init_policy(policy, per_class, reverse, beta, strata)

    def _check_input(self, data: SelectionInput) -> None:
        s = data.signals
        if s.n_checkpoints < MIN_CHECKPOINTS:
            raise MissingInputError(f"cld needs loss trajectories with at least "
                                    f"{MIN_CHECKPOINTS} checkpoints; the signals have "
                                    f"{s.n_checkpoints} (train the proxy for more epochs)")
        if s.val_labels is None or len(s.val_labels) == 0:
            raise MissingInputError("cld needs labelled validation rows in the signals "
                                    "(a 'val' split); none were found")
        if s.val_losses.ndim != 2 or s.val_losses.shape != (s.n_checkpoints, len(s.val_labels)):
            raise SchemaError(f"cld: val_losses must be (E={s.n_checkpoints}, "
                              f"m={len(s.val_labels)}) to match the train losses and val_labels; "
                              f"got {s.val_losses.shape}")
        val_labels = np.asarray(s.val_labels)
        if val_labels.ndim != 1 or not np.issubdtype(val_labels.dtype, np.integer) \
                or val_labels.min() < 0:
            raise SchemaError(f"cld: val_labels must be a 1-D array of class codes ≥ 0; got "
                              f"{val_labels.dtype} of shape {val_labels.shape}")

    def _scores(self, data: SelectionInput) -> np.ndarray:
        s = data.signals
        n_classes = _n_classes(data)
        return cld_scores(s.train_losses, data.labels, s.val_losses, s.val_labels,
                          n_classes)[0]

    def _summary(self, data: SelectionInput, scores: np.ndarray) -> dict:
        s = data.signals
        _, seen = class_mean_trajectories(s.val_losses[:1], s.val_labels, _n_classes(data))
        missing = [data.classes[c] if data.classes else int(c)
                   for c in np.unique(data.labels) if not seen[c]]
        if not scores.any():
            raise DegenerateInputError(f"cld: all {data.n} candidates score 0, so any "
                                       f"selection would be arbitrary: {_why_flat(data, seen)}")
        return {"classes_without_val": missing, "n_checkpoints": s.n_checkpoints}


def _any_varying_step(losses: np.ndarray, chunk: int = 1 << 19) -> bool:
    """Does any column's loss step vary over checkpoints? (chunked: O(E·chunk) memory)"""
    for lo in range(0, losses.shape[1], chunk):
        d = np.diff(np.asarray(losses[:, lo:lo + chunk], dtype=np.float64), axis=0)
        if (d.std(axis=0) > 1e-12).any():
            return True
    return False


def _n_classes(data: SelectionInput) -> int:
    """Classes to size the class-mean table for: enough for every label and val label (a
    chunk's scores do not depend on it, so chunks may see fewer classes)."""
    top = int(data.signals.val_labels.max())
    if data.classes:
        top = max(top, len(data.classes) - 1)
    if len(data.labels):
        top = max(top, int(data.labels.max()))
    return top + 1


def _why_flat(data: SelectionInput, seen: np.ndarray) -> str:
    s = data.signals
    n_classes = len(np.unique(data.labels))
    if not seen[data.labels].any():
        return "no candidate's class has validation rows"
    if not _any_varying_step(s.train_losses):
        one = " (one class: a proxy's cross-entropy is then always 0)" if n_classes == 1 else ""
        return (f"every train loss trajectory changes by a constant step{one}; CLD needs "
                "losses that vary over training, from a proxy trained on ≥ 2 classes")
    return ("the class-mean validation loss changes by a constant step in every class; "
            "CLD needs validation losses that vary over training")
