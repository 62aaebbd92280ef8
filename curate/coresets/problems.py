"""Pluggable learning problems for coreset construction: anything with a weighted fit and a
per-point loss. AutoCoreset needs nothing else.

    problem.targets(data) -> (n,) or None      (what the fit regresses / classifies)
    problem.fit(X, y, w, seed) -> model        (w: per-point weights ≥ 0)
    problem.losses(model, X, y) -> (n,) ≥ 0    (per-point loss; cost = Σ_i loss_i)

Shipped (``PROBLEMS``, a registry like the selectors'): ``logistic`` (multinomial
cross-entropy, −log p(y|x)), ``svm`` (linear SVM, hinge loss max(0, 1 + max_{c≠y} s_c − s_y),
binary: max(0, 1 − y·s)), ``linear`` (ridge regression, α = 1e-3, on the label's *numeric
value*, squared error (ŷ − y)²), ``kmeans`` (weighted k-means, squared distance to the nearest
centre; needs no labels). All fits use scikit-learn with ``sample_weight``.

Targets: classification problems use the label codes (classes); ``linear`` decodes each code
back to the number it names (``numeric_targets``: labels ``[2.5, 9, 10, 100]`` give targets
``[2.5, 9, 10, 100]``, never the codes ``[2, 3, 0, 1]``), and a regression's targets are never
strata (``stratify = False``: AutoCoreset's ``per_class`` does not apply to it). Subclass
``Problem`` and decorate with ``@register_problem("name")`` to add your own.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from curate.checks import did_you_mean
from curate.errors import InvalidParameterError, SchemaError


class Problem:
    """Base class. ``n_classes`` and ``n_clusters`` are the context every problem is built
    with (each uses what it needs)."""

    name: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = True
    #: whether the labels may define strata (per-class quotas) for this problem
    stratify: ClassVar[bool] = True

    def __init__(self, *, n_classes: int = 0, n_clusters: int = 10):
        self.n_classes, self.n_clusters = n_classes, n_clusters

    def targets(self, labels: np.ndarray | None,
                classes: tuple[str, ...] | None) -> np.ndarray | None:
        """(n,) what ``fit``/``losses`` take as y: the class codes by default."""
        return labels

    def fit(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray, seed: int) -> Any:
        raise NotImplementedError

    def losses(self, model: Any, X: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def working_memory(self, n: int) -> tuple[str, float, str] | None:
        """The fit's own memory beyond X for ``n`` rows, checked before any fit: ``(what,
        bytes, how to need less)``, or None when it is O(n) and small."""
        return None


PROBLEMS: dict[str, type[Problem]] = {}


def register_problem(name: str):
    def deco(cls: type[Problem]) -> type[Problem]:
        if name in PROBLEMS:
            raise ValueError(f"problem {name!r} is registered twice")
        cls.name = name
        PROBLEMS[name] = cls
        return cls
    return deco


def numeric_targets(labels: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """(n,) float64: the number each label code names (``classes[code]`` parsed), so a
    regression sees the values, not their lexicographic ranks. Vectorised: one parse per
    distinct value. ``SchemaError`` (one line) when a class is not a finite number."""
    try:
        values = np.asarray(classes, dtype=np.float64)
    except ValueError:
        bad = next((c for c in classes if not _is_number(c)), classes[0])
        raise SchemaError(f"a regression problem needs numeric labels; label {bad!r} is not a "
                          "number") from None
    if not np.isfinite(values).all():
        bad = classes[int(np.flatnonzero(~np.isfinite(values))[0])]
        raise SchemaError(f"a regression problem needs finite numeric labels; got {bad!r}")
    return values[np.asarray(labels, dtype=np.int64)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _scores_for_all_classes(model, X: np.ndarray, n_classes: int, fill: float) -> np.ndarray:
    """Decision scores (n, C) over every class, ``fill`` for classes the model never saw."""
    raw = model.decision_function(X) if not hasattr(model, "predict_proba") \
        else model.predict_proba(X)
    if raw.ndim == 1:  # binary decision_function
        raw = np.stack([-raw, raw], axis=1)
    out = np.full((len(X), n_classes), fill, dtype=np.float64)
    out[:, model.classes_.astype(np.int64)] = raw
    return out


@register_problem("logistic")
class LogisticProblem(Problem):
    C, max_iter = 1.0, 200

    def fit(self, X, y, w, seed):
        if len(np.unique(y)) < 2:
            return _Constant(int(y[0]), self.n_classes)
        from sklearn.linear_model import LogisticRegression  # lazy: sklearn costs ~2 s

        return LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y, sample_weight=w)

    def losses(self, model, X, y):
        p = _scores_for_all_classes(model, X, self.n_classes, fill=0.0)
        return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))


@register_problem("svm")
class SVMProblem(Problem):
    C = 1.0

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


@register_problem("linear")
class LinearRegressionProblem(Problem):
    alpha = 1e-3
    stratify = False  # every distinct target value is not a class

    def targets(self, labels, classes):
        if labels is None:
            return None
        if classes is None:  # bare numeric codes: they are the values
            return np.asarray(labels, dtype=np.float64)
        return numeric_targets(labels, classes)

    def fit(self, X, y, w, seed):
        from sklearn.linear_model import Ridge

        return Ridge(alpha=self.alpha).fit(X, y.astype(np.float64), sample_weight=w)

    def losses(self, model, X, y):
        return (model.predict(X) - y.astype(np.float64)) ** 2


@register_problem("kmeans")
class KMeansProblem(Problem):
    needs_labels = False

    def fit(self, X, y, w, seed):
        k = min(self.n_clusters, len(X))
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=1, random_state=seed).fit(X, sample_weight=w)

    def losses(self, model, X, y):
        return model.transform(X).min(axis=1) ** 2

    def working_memory(self, n):
        # transform() holds the (n × clusters) float64 distances, plus sklearn's labels/temps
        return (f"n_clusters={self.n_clusters}", 24.0 * n * min(self.n_clusters, n),
                "use fewer clusters")


class _Constant:
    """A model for a fit on one class only: predicts that class with certainty."""

    def __init__(self, label: int, n_classes: int):
        self.classes_ = np.array([label])
        self.n_classes = n_classes

    def predict_proba(self, X):
        return np.ones((len(X), 1))

    def decision_function(self, X):
        return np.ones(len(X))


def make_problem(name: str, *, n_classes: int = 0, n_clusters: int = 10) -> Problem:
    if name not in PROBLEMS:
        raise InvalidParameterError(f"problem must be one of {', '.join(PROBLEMS)}; got "
                                    f"{name!r}{did_you_mean(name, PROBLEMS)}")
    cls = PROBLEMS[name]
    if cls.needs_labels and cls.stratify and n_classes < 1:
        raise InvalidParameterError(f"problem {name!r} classifies: it needs n_classes ≥ 1 (the "
                                    f"number of label codes); got {n_classes}")
    return cls(n_classes=n_classes, n_clusters=n_clusters)
