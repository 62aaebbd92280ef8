"""AutoCoreset and its building blocks."""

from __future__ import annotations

import numpy as np
import pytest

from curate import SelectionInput, make_selector
from curate.coresets import caratheodory, fast_caratheodory, make_problem, summarise
from curate.errors import InvalidParameterError


@pytest.mark.parametrize("n,d", [(10, 2), (200, 3), (1000, 5)])
def test_caratheodory_keeps_the_weighted_sum_exactly(n, d):
    rng = np.random.default_rng(n)
    P = rng.random((n, d))
    for fn in (caratheodory, fast_caratheodory):
        if fn is caratheodory and n > 200:
            continue
        idx, w = fn(P, np.ones(n))
        assert len(idx) <= d + 1 and (w >= 0).all()
        assert np.allclose(w @ P[idx], P.sum(axis=0), rtol=1e-8)
        assert w.sum() == pytest.approx(n)


def test_caratheodory_hand_case():
    # three collinear points, d=1: two suffice; 0·1 + 1·1 + 2·1 = 3 = 0·a + 2·b with b = 1.5
    idx, w = caratheodory(np.array([[0.0], [1.0], [2.0]]), np.ones(3))
    assert len(idx) <= 2
    assert w @ np.array([[0.0], [1.0], [2.0]])[idx] == pytest.approx([3.0])


def test_sensitivity_and_uniform_summaries():
    rng = np.random.default_rng(0)
    V = rng.random((500, 4))
    idx, w = summarise(V, 50, rng, "sensitivity")
    assert len(idx) <= 50 and len(np.unique(idx)) == len(idx)
    idx, w = summarise(V, 50, rng, "uniform")
    assert len(idx) == 50 and np.allclose(w, 10.0)


def test_problems_losses_are_per_point_and_non_negative():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] + 0.1 * rng.normal(size=120) > 0).astype(np.int64)
    for name in ("logistic", "svm", "linear", "kmeans"):
        prob = make_problem(name, n_classes=2, n_clusters=3)
        model = prob.fit(X, y, np.ones(120), 0)
        loss = prob.losses(model, X, y)
        assert loss.shape == (120,) and (loss >= 0).all()
    with pytest.raises(InvalidParameterError):
        make_problem("tree", n_classes=2)


def _binary():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = (X @ rng.normal(size=6) + 0.5 * rng.normal(size=400) > 0).astype(np.int64)
    return SelectionInput.from_arrays(labels=y, embeddings=X)


def test_autocoreset_reports_actual_size_and_fill_tops_up():
    data = _binary()
    sel = make_selector("autocoreset", patience=2, max_rounds=4).select(data, 60, seed=0)
    info = sel.provenance.info
    assert info["asked"] == 60 and info["returned"] == len(sel) <= 60
    assert sel.weights is not None and (sel.weights > 0).all()
    assert info["best_cost"] <= min(info["initial_costs"])   # never worse than the best start
    filled = make_selector("autocoreset", fill=True, patience=2, max_rounds=4).select(
        data, 60, seed=0)
    assert len(filled) == 60


@pytest.mark.parametrize("summarizer", ["caratheodory", "uniform", "sensitivity"])
@pytest.mark.parametrize("problem", ["logistic", "svm", "kmeans"])
def test_autocoreset_runs_every_combination(problem, summarizer):
    sel = make_selector("autocoreset", problem=problem, summarizer=summarizer, patience=1,
                        max_rounds=2).select(_binary(), 40, seed=1)
    assert 1 <= len(sel) <= 40


def test_autocoreset_budget_at_class_size_does_not_crash():
    data = _binary()
    sel = make_selector("autocoreset", summarizer="uniform", max_rounds=2).select(
        data, data.n, seed=0)
    assert len(sel) == data.n


def test_linear_problem_regresses_on_the_label_values_not_their_codes():
    # labels [2.5, 9, 10, 100]: their string-rank codes are [2, 3, 0, 1]. With constant
    # features the ridge fit is the (unpenalised) intercept = the mean target, so the cost is
    # Σ (y − ȳ)²: values → 10187.25 − 4·30.375² = 6496.6875; codes would give 5.0.
    data = SelectionInput.from_arrays(labels=np.array([2.5, 9, 10, 100]),
                                      embeddings=np.zeros((4, 2), dtype=np.float32))
    assert data.labels.tolist() == [2, 3, 0, 1]
    sel = make_selector("autocoreset", problem="linear", n_initial=1,
                        max_rounds=1).select(data, 4, seed=0)
    assert sel.provenance.info["best_cost"] == pytest.approx(6496.6875, rel=1e-6)
    prob = make_problem("linear")
    assert prob.targets(data.labels, data.classes).tolist() == [2.5, 9.0, 10.0, 100.0]


def test_linear_problem_never_makes_target_values_classes():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.normal(size=200)  # 200 distinct values
    data = SelectionInput.from_arrays(labels=y, embeddings=X)
    sel = make_selector("autocoreset", problem="linear", fill=True).select(data, 20, seed=0)
    info = sel.provenance.info
    assert info["strata"] == 1 and len(sel.indices) == 20
    # the coreset's model predicts the held values: a good regression, not a rank fit
    assert info["best_cost"] < 0.05 * float(((y - y.mean()) ** 2).sum())
    # classification problems still stratify by class by default
    lab = SelectionInput.from_arrays(labels=(y > 0).astype(int), embeddings=X)
    assert make_selector("autocoreset").select(lab, 20, seed=0).provenance.info["strata"] == 2


def test_linear_problem_refuses_non_numeric_labels_before_fitting():
    from curate.errors import SchemaError

    data = SelectionInput.from_arrays(labels=np.array(["cat", "dog"] * 10),
                                      embeddings=np.zeros((20, 2), dtype=np.float32))
    with pytest.raises(SchemaError, match="'cat' is not a number"):
        make_selector("autocoreset", problem="linear").select(data, 5, seed=0)


def test_problems_form_a_registry_open_to_new_problems():
    from curate.coresets import PROBLEMS, Problem, register_problem

    assert set(PROBLEMS) >= {"logistic", "svm", "linear", "kmeans"}
    assert all(issubclass(cls, Problem) and cls.name == name for name, cls in PROBLEMS.items())
    with pytest.raises(InvalidParameterError, match="did you mean 'linear'"):
        make_problem("linaer")
    with pytest.raises(InvalidParameterError, match="needs n_classes"):
        make_problem("logistic")               # a classifier needs its class count
    with pytest.raises(ValueError, match="registered twice"):
        register_problem("linear")(type("Dup", (Problem,), {}))


def test_a_problem_declares_its_working_memory_and_is_refused_before_fitting():
    # k-means holds (n × clusters) float64 distances: 2M rows × 1M clusters is ~48 TB; the
    # rows are a zero-stride view, so the test allocates nothing
    X = np.broadcast_to(np.zeros(4, dtype=np.float32), (2_000_000, 4))
    data = SelectionInput.from_arrays(embeddings=X)
    with pytest.raises(InvalidParameterError, match="n_clusters=1000000 .* use fewer clusters"):
        make_selector("autocoreset", problem="kmeans", n_clusters=1_000_000).select(data, 10)
    assert make_problem("logistic", n_classes=2).working_memory(10**9) is None
