"""Evaluation as a feature: is a selection better than random of the same size?

The fixed downstream model is multinomial logistic regression on the dataset's embeddings,
fitted by deterministic full-batch L-BFGS (``curate.models.fit_softmax_lbfgs``), with the
selection's weights honoured in the loss. It is trained on the selected rows, on ``seeds``
uniform random subsets of the same size drawn from the same candidate pool, and on the whole
pool; accuracy is measured on the dataset's ``test`` split, which no selection can contain.
Because the downstream fit is deterministic, a fixed selection is **one run** (n = 1, no
spread is reported: repeating its accuracy ``seeds`` times would present one number as five
runs); the random baseline's spread comes from the ``seeds`` subsets it draws, and the full
pool is one run too. For a spread of the method itself, select with several seeds and
compare them (``curate compare``).
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
    def std(self) -> float | None:
        """Population std over the runs; ``None`` for a single run (nothing varied)."""
        return float(np.std(self.accuracies)) if len(self.accuracies) > 1 else None

    @property
    def runs(self) -> int:
        return len(self.accuracies)

    def summary(self) -> str:
        """``0.5123 ± 0.0040 (5 runs)`` or ``0.5123 (1 run)``."""
        if self.std is None:
            return f"{self.mean:.4f} (1 run)"
        return f"{self.mean:.4f} ± {self.std:.4f} ({self.runs} runs)"


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
        out["arms"] = [{**asdict(a), "mean": a.mean, "std": a.std, "runs": a.runs}
                       for a in self.arms]
        return out


def downstream_accuracy(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                        n_classes: int, weights: np.ndarray | None = None) -> float:
    """Fit the fixed downstream model on rows ``train`` and score it on rows ``test``."""
    model = fit_softmax_lbfgs(X[train], y[train], n_classes, weights)
    return accuracy(model, X[test], y[test])


@dataclass(frozen=True)
class EvaluationData:
    """What the fixed downstream model is fitted and scored on, for one dataset."""

    X: np.ndarray            # (N, d) the dataset's embeddings (a memory map)
    y: np.ndarray            # (N,) int64 label codes
    pool: np.ndarray         # row_idx of the candidates (train split)
    test: np.ndarray         # row_idx of the test split
    n_classes: int

    def accuracy(self, rows: np.ndarray, weights: np.ndarray | None = None) -> float:
        return downstream_accuracy(self.X, self.y, rows, self.test, self.n_classes, weights)


def evaluation_data(st: Store, dataset: str, embedding: str | None = None) -> EvaluationData:
    splits = labelled_splits(st, dataset, "evaluate")
    test = splits.need("test", dataset, "to evaluate on", "--test-fraction")
    X = st.embeddings(dataset, embedding)[0]
    return EvaluationData(X=X, y=splits.labels, pool=splits.rows["train"], test=test,
                          n_classes=len(splits.classes))


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
    ev = evaluation_data(st, info.name, sel.provenance.inputs.get("embedding"))
    pool, k = ev.pool, len(sel)
    steps = 1 + seeds + int(full)
    with bar("evaluating", total=steps, enabled=progress) as b:
        acc_sel = ev.accuracy(sel.indices, sel.weights)
        b.advance()
        rand = []
        for s in range(seed, seed + seeds):
            rand.append(ev.accuracy(np.random.default_rng(s).choice(pool, size=k,
                                                                    replace=False)))
            b.advance()
        arms = [ArmResult(f"selection ({sel.provenance.method})", k, [acc_sel]),
                ArmResult("random", k, rand)]
        if full:
            arms.append(ArmResult("full pool", len(pool), [ev.accuracy(pool)]))
            b.advance()
    return EvaluationReport(selection_id=selection_id, dataset=info.name,
                            method=sel.provenance.method, n_selected=k,
                            n_candidates=len(pool), n_test=len(ev.test), arms=arms)
