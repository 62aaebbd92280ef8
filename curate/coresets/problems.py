"""Pluggable learning problems for coreset construction: anything with a weighted fit and a
per-point loss. AutoCoreset needs nothing else.

    problem.fit(X, y, w, seed) -> model        (w: per-point weights ≥ 0)
    problem.losses(model, X, y) -> (n,) ≥ 0    (per-point loss; cost = Σ_i loss_i)

Shipped: ``logistic`` (multinomial cross-entropy, −log p(y|x)), ``svm`` (linear SVM, hinge
loss max(0, 1 + max_{c≠y} s_c − s_y), binary: max(0, 1 − y·s)), ``linear`` (ridge regression
on a numeric target, squared error), ``kmeans`` (weighted k-means, squared distance to the
nearest centre; needs no labels). All fits use scikit-learn with ``sample_weight``.
Implement the protocol to add your own.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from curate.errors import InvalidParameterError


class Problem(Protocol):
    needs_labels: bool

    def fit(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray, seed: int) -> Any: ...

    def losses(self, model: Any, X: np.ndarray, y: np.ndarray | None) -> np.ndarray: ...


def _scores_for_all_classes(model, X: np.ndarray, n_classes: int, fill: float) -> np.ndarray:
    """Decision scores (n, C) over every class, ``fill`` for classes the model never saw."""
    raw = model.decision_function(X) if not hasattr(model, "predict_proba") \
        else model.predict_proba(X)
    if raw.ndim == 1:  # binary decision_function
        raw = np.stack([-raw, raw], axis=1)
    out = np.full((len(X), n_classes), fill, dtype=np.float64)
    out[:, model.classes_.astype(np.int64)] = raw
    return out


class LogisticProblem:
    needs_labels = True

    def __init__(self, n_classes: int, C: float = 1.0, max_iter: int = 200):
        self.n_classes, self.C, self.max_iter = n_classes, C, max_iter

    def fit(self, X, y, w, seed):
        if len(np.unique(y)) < 2:
            return _Constant(int(y[0]), self.n_classes)
        from sklearn.linear_model import LogisticRegression  # lazy: sklearn costs ~2 s

        return LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y, sample_weight=w)

    def losses(self, model, X, y):
        p = _scores_for_all_classes(model, X, self.n_classes, fill=0.0)
        return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))


class SVMProblem:
    needs_labels = True

    def __init__(self, n_classes: int, C: float = 1.0):
        self.n_classes, self.C = n_classes, C

    def fit(self, X, y, w, seed):
        if len(np.unique(y)) < 2:
            return _Constant(int(y[0]), self.n_classes)
        from sklearn.svm import LinearSVC

        return LinearSVC(C=self.C, random_state=seed).fit(X, y, sample_weight=w)

    def losses(self, model, X, y):
        s = _scores_for_all_classes(model, X, self.n_classes, fill=-1e3)
        if self.n_classes == 2 and not isinstance(model, _Constant):
            margin = (2 * y - 1) * s[:, 1]
            return np.maximum(0.0, 1.0 - margin)
        true = s[np.arange(len(y)), y]
        s[np.arange(len(y)), y] = -np.inf
        return np.maximum(0.0, 1.0 + s.max(axis=1) - true)


class LinearRegressionProblem:
    needs_labels = True

    def __init__(self, alpha: float = 1e-3):
        self.alpha = alpha

    def fit(self, X, y, w, seed):
        from sklearn.linear_model import Ridge

        return Ridge(alpha=self.alpha).fit(X, y.astype(np.float64), sample_weight=w)

    def losses(self, model, X, y):
        return (model.predict(X) - y.astype(np.float64)) ** 2


class KMeansProblem:
    needs_labels = False

    def __init__(self, n_clusters: int = 10):
        self.n_clusters = n_clusters

    def fit(self, X, y, w, seed):
        k = min(self.n_clusters, len(X))
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=1, random_state=seed).fit(X, sample_weight=w)

    def losses(self, model, X, y):
        return model.transform(X).min(axis=1) ** 2


class _Constant:
    """A model for a fit on one class only: predicts that class with certainty."""

    def __init__(self, label: int, n_classes: int):
        self.classes_ = np.array([label])
        self.n_classes = n_classes

    def predict_proba(self, X):
        return np.ones((len(X), 1))

    def decision_function(self, X):
        return np.ones(len(X))


PROBLEMS = ("logistic", "svm", "linear", "kmeans")


def make_problem(name: str, *, n_classes: int, n_clusters: int = 10) -> Problem:
    if name == "logistic":
        return LogisticProblem(n_classes)
    if name == "svm":
        return SVMProblem(n_classes)
    if name == "linear":
        return LinearRegressionProblem()
    if name == "kmeans":
        return KMeansProblem(n_clusters)
    raise InvalidParameterError(f"problem must be one of {', '.join(PROBLEMS)}; got {name!r}")
