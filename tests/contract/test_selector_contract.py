"""The contract every registered selector must pass (parametrised over the registry)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest

from curate import available_methods, make_selector
from curate.errors import (
    BudgetError,
    CurateError,
    DegenerateInputError,
    EmptyDatasetError,
    SchemaError,
)
from curate.selection import Provenance, Selection
from tests.conftest import make_input

METHODS = available_methods()
#: methods that refuse a degenerate pool with one DegenerateInputError line instead of
#: answering (confident learning cannot cross-fit 1 row per class, and one class has no
#: wrong labels to find)
REFUSES_DEGENERATE = {"label_issues"}


def _check_or_refuse(method: str, run, data, k: int) -> None:
    try:
        sel = run()
    except DegenerateInputError as err:
        assert method in REFUSES_DEGENERATE, f"{method} refused a degenerate pool: {err}"
        assert len(str(err).splitlines()) == 1
        return
    _check(sel, data, k)


def _check(sel: Selection, data, k: int) -> None:
    exact = make_selector(sel.provenance.method).exact_budget
    assert len(sel) == k if exact else 1 <= len(sel) <= k
    assert sel.provenance.n_selected == len(sel)
    assert sel.indices.dtype == np.int64
    assert len(np.unique(sel.indices)) == len(sel)
    assert np.isin(sel.indices, data.row_idx).all()
    if sel.weights is not None:
        assert sel.weights.shape == (len(sel),) and (sel.weights >= 0).all()
    if sel.scores is not None:
        assert sel.scores.shape == (len(sel),) and np.isfinite(sel.scores).all()
    if sel.sample_ids is not None:
        pos = np.searchsorted(data.row_idx, sel.indices)
        assert (sel.sample_ids == data.sample_ids[pos]).all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("budget,k", [(0.1, 6), (0.5, 30), (1.0, 60), (7, 7), (1, 1)])
def test_exact_budget_and_valid_indices(method, budget, k):
    data = make_input()
    sel = make_selector(method).select(data, budget, seed=3)
    _check(sel, data, k)
    assert sel.provenance.method == method and sel.provenance.n_candidates == 60


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_result_and_input_untouched(method):
    data = make_input()
    before = copy.deepcopy(data)
    a = make_selector(method).select(data, 0.3, seed=7)
    b = make_selector(method).select(data, 0.3, seed=7)
    assert np.array_equal(a.indices, b.indices)
    assert a.to_frame().equals(b.to_frame())
    for field in ("row_idx", "labels", "embeddings", "sample_ids"):
        assert np.array_equal(getattr(before, field), getattr(data, field))
    assert np.array_equal(before.signals.train_losses, data.signals.train_losses)


@pytest.mark.parametrize("method", METHODS)
def test_degenerate_inputs(method):
    sel = make_selector(method)
    one = make_input(n=3, n_classes=3)
    _check_or_refuse(method, lambda: sel.select(replace(one, row_idx=one.row_idx), 1, seed=0),
                     one, 1)
    dup = make_input()
    dup = replace(dup, embeddings=np.repeat(dup.embeddings[:1], dup.n, axis=0))
    _check_or_refuse(method, lambda: sel.select(dup, 0.2, seed=0), dup, 12)
    single = make_input()
    single = replace(single, labels=np.zeros(single.n, dtype=np.int64),
                     signals=replace(single.signals,
                                     val_labels=np.zeros(15, dtype=np.int64)))
    _check_or_refuse(method, lambda: sel.select(single, 10, seed=0), single, 10)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("budget", [0, 1.5, -3, 61, float("nan"), True, "abc"])
def test_bad_budget(method, budget):
    with pytest.raises(BudgetError):
        make_selector(method).select(make_input(), budget, seed=0)


@pytest.mark.parametrize("method", METHODS)
def test_empty_and_nan_input(method):
    data = make_input()
    empty = replace(data, row_idx=data.row_idx[:0], labels=data.labels[:0],
                    embeddings=data.embeddings[:0], sample_ids=data.sample_ids[:0],
                    signals=replace(data.signals,
                                    train_losses=data.signals.train_losses[:, :0]))
    with pytest.raises(EmptyDatasetError):
        make_selector(method).select(empty, 1, seed=0)
    sel = make_selector(method)
    if sel.needs.embeddings or sel.needs.signals:
        emb = data.embeddings.copy()
        emb[3, 0] = np.nan
        losses = data.signals.train_losses.copy()
        losses[1, 3] = np.nan
        bad = replace(data, embeddings=emb, signals=replace(data.signals, train_losses=losses))
        with pytest.raises(SchemaError):
            sel.select(bad, 5, seed=0)


@pytest.mark.parametrize("method", METHODS)
def test_provenance_survives_json_and_frame_roundtrip(method):
    sel = make_selector(method).select(make_input(), 0.25, seed=1)
    prov = Provenance.from_json(json.loads(json.dumps(sel.provenance.to_json())))
    assert prov == sel.provenance
    back = Selection.from_frame(sel.to_frame(), sel.provenance.to_json())
    assert np.array_equal(back.indices, sel.indices)
    assert (back.weights is None) == (sel.weights is None)


@pytest.mark.parametrize("method", METHODS)
def test_bad_seed_and_params_are_curate_errors(method):
    with pytest.raises(CurateError):
        make_selector(method).select(make_input(), 5, seed=-1)
    with pytest.raises(CurateError):
        make_selector(method, no_such_param=1)
