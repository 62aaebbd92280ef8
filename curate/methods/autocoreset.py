"""AutoCoreset (Tukan, Zhou, Maalouf, Rus, Braverman & Feldman, ICML 2023): a weighted
coreset for any problem given only a weighted fit and a per-point loss.

Loss matrix M (n × |Q|): column j holds every point's loss under model q_j. Algorithm::

    Q ← 3 models fit on uniform samples of size k (weights n/k); M ← their loss columns
    best ← the uniform sample whose model has the lowest full-data cost Σ_i loss_i
    repeat (≤ max_rounds):
        C, w ← summarise M's rows per class (class quotas by largest remainder)
        q ← fit(X[C], y[C], w);  append loss(q, ·) to M
        if cost(q) < cost(best): best ← (C, w)   else: stale += 1; stop at ``patience``
    return best

Fixes of the reference code's defects: the stop rule compares with the *best* initial model
(the reference used the worst); the actual coreset size is reported (Carathéodory returns at
most |Q|+1 points per class — ``fill=True`` tops up with uniform points, mixing the two
estimates with weights |C|/k and 1 − |C|/k so the weighted sum stays unbiased); budgets at
or above a class's size take the whole class instead of crashing; the multiclass loss is
−log p(y|x) (the reference had a sign error).

Problems come from the ``curate.coresets.PROBLEMS`` registry; ``per_class`` stratifies by
label only for problems whose labels are classes (``linear`` regresses on the labels' numeric
values over the whole pool).

Bounds checked before any fit: ``n_initial`` ≤ 100, ``max_rounds`` and ``patience`` ≤ 1000
(each is a full model fit), and the loss matrix, n × (n_initial + max_rounds) float64, and
k-means' n × n_clusters distances must fit ``check_memory``.
"""

from __future__ import annotations

import numpy as np

from curate.budget import class_groups
from curate.checks import check_bool, check_choice, check_int, check_memory
from curate.coresets import PROBLEMS, SUMMARISERS, make_problem, summarise
from curate.errors import MissingInputError
from curate.inputs import SelectionInput
from curate.selector import Needs, Picks, Selector, register

MAX_INITIAL = 100    # the paper starts from 3 models
MAX_ROUNDS = 1000    # the paper stops after 5 rounds without improvement


@register("autocoreset")
class AutoCoresetSelector(Selector):
    """AutoCoreset: weighted coreset from the loss matrix of candidate models."""

    needs = Needs(embeddings=True)
    exact_budget = False  # Carathéodory / sensitivity can return fewer points; see fill

    def __init__(self, *, problem: str = "logistic", summarizer: str = "caratheodory",
                 fill: bool = False, n_initial: int = 3, patience: int = 5,
                 max_rounds: int = 20, n_clusters: int = 10, per_class: bool = True):
        self.problem = problem
        self.summarizer = summarizer
        self.fill = fill
        self.n_initial = n_initial
        self.patience = patience
        self.max_rounds = max_rounds
        self.n_clusters = n_clusters
        self.per_class = per_class

    def _check_params(self) -> None:
        check_choice(self.name, "problem", self.problem, PROBLEMS)
        check_choice(self.name, "summarizer", self.summarizer, SUMMARISERS)
        # each initial model and each round is a full fit: the counts are bounded
        check_int(self.name, "n_initial", self.n_initial, 1, MAX_INITIAL)
        check_int(self.name, "max_rounds", self.max_rounds, 1, MAX_ROUNDS)
        check_int(self.name, "patience", self.patience, 1, MAX_ROUNDS)
        check_int(self.name, "n_clusters", self.n_clusters)
        for name in ("fill", "per_class"):
            check_bool(self.name, name, getattr(self, name))

    def _check_input(self, data: SelectionInput) -> None:
        # the loss matrix M (n × models) is stacked each round; k-means holds (n × clusters)
        check_memory(f"autocoreset: n_initial={self.n_initial} + max_rounds={self.max_rounds} "
                     f"models for {data.n} rows", 16.0 * data.n * (self.n_initial +
                                                                   self.max_rounds),
                     "use fewer models")
        prob = PROBLEMS[self.problem](n_clusters=self.n_clusters)
        if (extra := prob.working_memory(data.n)) is not None:
            what, need, hint = extra
            check_memory(f"autocoreset: {what} for {data.n} rows", need, hint)
        if prob.needs_labels and data.labels is None:
            raise MissingInputError(f"autocoreset with problem={self.problem} needs labels "
                                    "(or use --param problem=kmeans)")
        if prob.needs_labels:  # a regression refuses non-numeric labels before any fit
            prob.targets(data.labels, data.classes)

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        X = np.asarray(data.embeddings, dtype=np.float64)
        labels = data.labels
        n_classes = int(labels.max()) + 1 if labels is not None else 0
        prob = make_problem(self.problem, n_classes=n_classes, n_clusters=self.n_clusters)
        y = prob.targets(labels, data.classes) if prob.needs_labels else None
        stratified = self.per_class and prob.stratify and labels is not None
        groups = class_groups(labels, k) if stratified else [(np.arange(data.n), k)]
        seed = int(rng.integers(2**31 - 1))

        def fit_eval(idx: np.ndarray, w: np.ndarray) -> np.ndarray:
            model = prob.fit(X[idx], None if y is None else y[idx], w, seed)
            return prob.losses(model, X, y)

        columns, best, best_cost, initial = [], None, np.inf, []
        for _ in range(self.n_initial):
            idx = np.sort(rng.choice(data.n, size=k, replace=False))
            w = np.full(k, data.n / k)
            col = fit_eval(idx, w)
            columns.append(col)
            initial.append(float(col.sum()))
            if col.sum() < best_cost:
                best, best_cost = (idx, w), float(col.sum())
        rounds, stale, history = 0, 0, []
        while rounds < self.max_rounds and stale < self.patience:
            rounds += 1
            M = np.stack(columns, axis=1)
            idx, w = self._summarise(M, groups, rng)
            col = fit_eval(idx, w)
            columns.append(col)
            cost = float(col.sum())
            history.append(cost)
            if cost < best_cost:
                best, best_cost, stale = (idx, w), cost, 0
            else:
                stale += 1
        idx, w = best
        actual = len(idx)
        if self.fill and actual < k:
            rest = np.setdiff1d(np.arange(data.n), idx)
            extra = rng.choice(rest, size=k - actual, replace=False)
            alpha = actual / k
            w = np.concatenate([alpha * w, np.full(len(extra), (1 - alpha) * data.n /
                                                   len(extra))])
            idx = np.concatenate([idx, extra])
        order = np.argsort(-w, kind="stable")
        info = {"asked": k, "coreset_size": actual, "returned": len(idx),
                "filled": bool(self.fill and actual < k), "rounds": rounds,
                "strata": len(groups),
                "best_cost": best_cost, "initial_costs": initial, "round_costs": history,
                "n_models": len(columns)}
        return Picks(positions=idx[order], weights=w[order], scores=w[order], info=info)

    def _summarise(self, M: np.ndarray, groups, rng) -> tuple[np.ndarray, np.ndarray]:
        idx, w = [], []
        for rows, q in groups:
            sub, sw = summarise(M[rows], q, rng, self.summarizer)
            idx.append(rows[sub])
            w.append(sw)
        return np.concatenate(idx), np.concatenate(w)
