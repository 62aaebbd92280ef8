"""CLD golden cases computed by hand (DESIGN.md §3)."""

import numpy as np
import pytest

from curate import CandidateSignals, SelectionInput, make_selector
from curate.errors import MissingInputError
from curate.methods.cld import cld_scores

# Class 0 validation rows: mean trajectory [3, 2, 1.5, 1.2] → δ0 = [-1, -0.5, -0.3].
# Class 1 validation rows: mean trajectory [1, 1.5, 1.5, 2.0] → δ1 = [0.5, 0, 0.5].
VAL = np.array([[2.0, 4.0, 1.0],
                [1.0, 3.0, 1.5],
                [1.0, 2.0, 1.5],
                [1.0, 1.4, 2.0]], dtype=np.float32)
VAL_LABELS = np.array([0, 0, 1])
TRAIN = np.array([
    # a: Δ=[-1,-.5,-.3] (=δ0) · b: Δ=[1,.5,.3] · c: Δ=[-1,0,1] · d: constant · e: Δ=[-1,-1,-1]
    # f (class 1): Δ=[.5,0,.5] (=δ1) · g (class 1): Δ=[-.5,0,-.5]
    [2.0, 1.0, 1.0, 1.0, 4.0, 1.0, 2.0],
    [1.0, 2.0, 0.0, 1.0, 3.0, 1.5, 1.5],
    [0.5, 2.5, 0.0, 1.0, 2.0, 1.5, 1.5],
    [0.2, 2.8, 1.0, 1.0, 1.0, 2.0, 1.0]], dtype=np.float32)
LABELS = np.array([0, 0, 0, 0, 0, 1, 1])
# c: Pearson([-1,0,1], [-1,-.5,-.3]) = 0.2333 / (0.8165 · 0.2944) = 0.9707
EXPECTED = [1.0, -1.0, 0.9707, 0.0, 0.0, 1.0, -1.0]


def test_scores_match_hand_computation():
    scores, seen = cld_scores(TRAIN, LABELS, VAL, VAL_LABELS, n_classes=2)
    assert seen.tolist() == [True, True]
    assert scores == pytest.approx(EXPECTED, abs=1e-3)


def _input(row_idx=None):
    sig = CandidateSignals(train_losses=TRAIN, val_losses=VAL, val_labels=VAL_LABELS)
    rows = np.arange(7) * 10 + 5 if row_idx is None else row_idx
    return SelectionInput(row_idx=rows, labels=LABELS, classes=("x", "y"), signals=sig)


def test_per_class_topk_maps_back_to_row_idx():
    # k=3 over classes of sizes 5 and 2: shares 2.14/0.86 → floors 2/0, the unit goes to
    # class 1 (remainder .86) → class 0 keeps a, c; class 1 keeps f.
    sel = make_selector("cld").select(_input(), 3, seed=0)
    assert sel.indices.tolist() == [5, 55, 25]          # row_idx, not positions
    assert sel.scores == pytest.approx([1.0, 1.0, 0.9707], abs=1e-3)


def test_bottom_cld_reverses_within_class():
    sel = make_selector("cld", reverse=True).select(_input(), 3, seed=0)
    # b and g both score -1 (order between them is float round-off), then d (0; d before e)
    assert sorted(sel.indices[:2].tolist()) == [15, 65] and sel.indices[2] == 35


def test_global_topk():
    sel = make_selector("cld", per_class=False).select(_input(), 2, seed=0)
    assert sorted(sel.indices.tolist()) == [5, 55]


def test_fewer_than_three_checkpoints_is_refused():
    data = _input()
    short = CandidateSignals(train_losses=TRAIN[:2], val_losses=VAL[:2], val_labels=VAL_LABELS)
    with pytest.raises(MissingInputError, match="at least 3 checkpoints"):
        make_selector("cld").select(SelectionInput(row_idx=data.row_idx, labels=LABELS,
                                                   signals=short), 2, seed=0)


def test_class_without_validation_rows_scores_zero():
    data = _input()
    sig = CandidateSignals(train_losses=TRAIN, val_losses=VAL[:, :2], val_labels=np.array([0, 0]))
    sel = make_selector("cld").select(SelectionInput(row_idx=data.row_idx, labels=LABELS,
                                                     classes=("x", "y"), signals=sig), 7, seed=0)
    assert sel.provenance.info["classes_without_val"] == ["y"]
    by_row = dict(zip(sel.indices.tolist(), sel.scores.tolist(), strict=True))
    assert by_row[55] == 0.0 and by_row[65] == 0.0
