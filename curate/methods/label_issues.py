"""Label issues: rows whose given label is likely wrong (confident learning).

Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels",
JAIR 2021. The estimator is the ``cleanlab`` library's (``cleanlab.filter.
find_label_issues`` with ``filter_by="prune_by_noise_rate"``, and ``cleanlab.rank.
get_label_quality_scores`` with ``method="self_confidence"``); Curate does not write it
again. What Curate supplies is the input confident learning needs: **out-of-sample**
predicted probabilities. The pool is cut into ``folds`` class-stratified folds (seeded);
for each fold the proxy — multinomial logistic regression on the embeddings, fitted by
deterministic L-BFGS (``curate.models.fit_softmax_lbfgs``, the downstream model's family) —
is fitted on the other folds and predicts the held-out one, so no row's probability comes
from a model that saw its label.

``keep="issues"`` (default) selects the flagged rows, worst label quality first (any
prefix: the most likely errors); ``keep="clean"`` selects the complement, the rows *not*
flagged, in a seeded random order (a prefix is a uniform sample of the clean rows, not the
easiest ones) — the "clean" filter to chain before another method
(``--from``). Fewer rows than the budget come back when fewer are flagged (or clean):
``exact_budget`` is False, ``info["n_flagged"]`` says how many were. ``scores`` are the
label-quality scores (the out-of-sample probability of the given label). Rows of a class
with fewer than ``folds`` rows cannot be held out and predicted: they are not judged
(never flagged; score 1.0; ``info["n_unjudged"]``).

Memory: the pool's embeddings (n × d float32) and probabilities (n × C) are held; each
fold's fit is full-batch L-BFGS. Past a few million rows, fit on a sample first
(``--from`` a stratified selection).
"""

from __future__ import annotations

import numpy as np

from curate.budget import shuffled_class_rank
from curate.checks import check_choice, check_int
from curate.errors import DegenerateInputError
from curate.inputs import SelectionInput
from curate.selector import Needs, Picks, Selector, register

KEEP = ("issues", "clean")


def stratified_folds(labels: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) fold of each row: within each class, a seeded shuffle dealt round-robin."""
    return shuffled_class_rank(labels, rng) % folds


def out_of_fold_probs(X: np.ndarray, labels: np.ndarray, n_classes: int, folds: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(n, C) float32 predicted probabilities, each row's from the fit without its fold."""
    import torch

    from curate.models import fit_softmax_lbfgs

    fold = stratified_folds(labels, folds, rng)
    probs = np.empty((len(labels), n_classes), np.float32)
    for f in range(folds):
        held = fold == f
        model = fit_softmax_lbfgs(X[~held], labels[~held], n_classes)
        with torch.no_grad():
            logits = model(torch.as_tensor(np.ascontiguousarray(X[held], np.float32)))
            probs[held] = torch.softmax(logits, dim=1).numpy()
    return probs


@register("label_issues")
class LabelIssues(Selector):
    needs = Needs(labels=True, embeddings=True)
    summary = ("likely mislabelled rows (confident learning via cleanlab, out-of-fold "
               "probabilities); keep=clean gives the complement")
    exact_budget = False

    def __init__(self, *, keep: str = "issues", folds: int = 5):
        self.keep, self.folds = keep, folds
        self.check_params()

    def _check_params(self):
        check_choice(self.name, "keep", self.keep, KEEP)
        check_int(self.name, "folds", self.folds, 2, 20)

    def _check_input(self, data: SelectionInput) -> None:
        counts = np.bincount(data.labels)
        if (counts >= self.folds).sum() < 2:
            raise DegenerateInputError(
                f"label_issues needs at least 2 classes of ≥ folds={self.folds} rows each; "
                f"got {int((counts >= self.folds).sum())}")

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        labels = np.asarray(data.labels, np.int64)
        # classes with fewer rows than folds cannot be held out and predicted: not judged
        judged = np.flatnonzero(np.bincount(labels)[labels] >= self.folds)
        present, codes = np.unique(labels[judged], return_inverse=True)  # 0..C-1, all used
        X = np.asarray(data.embeddings[judged], np.float32)
        probs = out_of_fold_probs(X, codes, len(present), self.folds, rng)
        flagged = np.zeros(data.n, bool)
        flagged[judged] = find_label_issues(codes, probs, filter_by="prune_by_noise_rate")
        quality = np.ones(data.n)      # unjudged rows: no evidence against their label
        quality[judged] = get_label_quality_scores(codes, probs, method="self_confidence")
        is_judged = np.zeros(data.n, bool)
        is_judged[judged] = True
        if self.keep == "issues":
            pool = np.flatnonzero(flagged)
            order = pool[np.lexsort((pool, quality[pool]))]           # worst first
        else:
            pool = np.flatnonzero(~flagged)          # a seeded order: any prefix is a
            order = pool[rng.permutation(len(pool))]  # uniform sample of the clean rows
        if not len(order):
            raise DegenerateInputError(
                f"label_issues: no row is {'flagged' if self.keep == 'issues' else 'clean'}"
                f" (of {data.n}); nothing to select")
        picks = order[:k]
        given = probs[np.arange(len(codes)), codes]
        info = {"n_flagged": int(flagged.sum()), "n_clean": int(data.n - flagged.sum()),
                "n_unjudged": int(data.n - len(judged)), "folds": self.folds,
                "estimator": "cleanlab.filter.find_label_issues"
                "(filter_by='prune_by_noise_rate')",
                "out_of_fold_accuracy": float((probs.argmax(1) == codes).mean()),
                "classes_judged": int(len(present)),
                "mean_given_label_prob": float(given.mean())}
        return Picks(positions=picks, scores=quality[picks].astype(np.float64), info=info)
