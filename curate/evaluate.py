"""Evaluation as a feature: is a selection better than random of the same size?

The fixed downstream model is multinomial logistic regression on the dataset's embeddings,
fitted by deterministic full-batch L-BFGS (``curate.models.fit_softmax_lbfgs``), with the
selection's weights honoured in the loss. It is trained on the selected rows, on ``seeds``
uniform random subsets of the same size drawn from the same candidate pool, and on the whole
pool; accuracy is measured on the dataset's ``test`` split, which no selection can contain.
Because the downstream fit is deterministic, a fixed selection has zero spread across seeds;
the random baseline's spread comes from the subsets it draws.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from curate.api import load_selection, open_store
from curate.checks import check_bool, check_int, check_seed
from curate.inputs import labelled_splits
from curate.models import accuracy, fit_softmax_lbfgs
from curate.progress import bar
from stores import Store

#: random baselines drawn at most (each is one downstream fit)
MAX_SEEDS = 1000


@dataclass(frozen=True)
class ArmResult:
    name: str
    n_train: int
    accuracies: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))


@dataclass(frozen=True)
class EvaluationReport:
    selection_id: str
    dataset: str
    method: str
    n_selected: int
    n_candidates: int
    n_test: int
    arms: list[ArmResult]

    def to_json(self) -> dict:
        out = asdict(self)
        out["arms"] = [{**asdict(a), "mean": a.mean, "std": a.std} for a in self.arms]
        return out


def downstream_accuracy(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                        n_classes: int, weights: np.ndarray | None = None) -> float:
    """Fit the fixed downstream model on rows ``train`` and score it on rows ``test``."""
    model = fit_softmax_lbfgs(X[train], y[train], n_classes, weights)
    return accuracy(model, X[test], y[test])


def evaluate_selection(store: Store | str | Path | None, selection_id: str, *, seeds: int = 5,
                       seed: int = 0, full: bool = True,
                       progress: bool = False) -> EvaluationReport:
    """Accuracy on the test split for the selection, ``seeds`` random subsets of its size
    (drawn with seeds ``seed .. seed+seeds-1``) and, if ``full``, the whole candidate pool.

    Checked before the store is opened: ``seeds`` is an integer in [1, MAX_SEEDS], ``seed``
    and the last seed drawn, ``seed + seeds − 1``, are valid seeds (``check_seed``)."""
    check_int("", "seeds", seeds, 1, MAX_SEEDS)
    seed = check_seed(seed)
    check_seed(seed + seeds - 1, where=f"seed + seeds − 1 (seed={seed}, seeds={seeds})")
    check_bool("", "full", full)
    st = open_store(store)
    sel = load_selection(st, selection_id)
    info = st.dataset_info(sel.provenance.dataset)
    splits = labelled_splits(st, info.name, "evaluate")
    test = splits.need("test", info.name, "to evaluate on", "--test-fraction")
    pool, y = splits.rows["train"], splits.labels
    X = np.asarray(st.embeddings(info.name, sel.provenance.inputs.get("embedding"))[0])
    k, C = len(sel), len(splits.classes)
    steps = 1 + seeds + int(full)
    with bar("evaluating", total=steps, enabled=progress) as b:
        acc_sel = downstream_accuracy(X, y, sel.indices, test, C, sel.weights)
        b.advance()
        rand = []
        for s in range(seed, seed + seeds):
            rows = np.random.default_rng(s).choice(pool, size=k, replace=False)
            rand.append(downstream_accuracy(X, y, rows, test, C))
            b.advance()
        arms = [ArmResult(f"selection ({sel.provenance.method})", k, [acc_sel] * seeds),
                ArmResult("random", k, rand)]
        if full:
            arms.append(ArmResult("full pool", len(pool), [downstream_accuracy(X, y, pool,
                                                                               test, C)]))
            b.advance()
    return EvaluationReport(selection_id=selection_id, dataset=info.name,
                            method=sel.provenance.method, n_selected=k,
                            n_candidates=len(pool), n_test=len(test), arms=arms)
