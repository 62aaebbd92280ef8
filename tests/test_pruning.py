"""Dynamic pruners: schedules computed by hand, measured savings, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curate.errors import InvalidParameterError
from curate.pruning import (
    DynamicRandomPruner,
    InfoBatchPruner,
    SeTaPruner,
    make_pruner,
    train_with_pruner,
)
from curate.pruning.pruners import kmeans_1d


def test_kmeans_1d_sorted_groups():
    v = np.array([0.1, 0.2, 5.0, 5.1, 9.0, 9.2])
    assert kmeans_1d(v, 3).tolist() == [0, 0, 1, 1, 2, 2]


def test_seta_window_slides_easy_to_hard_then_anneals():
    n = 1000
    p = SeTaPruner(n, epochs=8, prune_ratio=0.0, groups=5, window=0.9, anneal=0.75, seed=0)
    p.scores[:] = np.repeat(np.arange(5.0), 200)        # five clean loss groups
    assert p.window_size == 4                          # round(4.5) = 4, as in the reference
    plans = [np.sort(np.asarray(p.sampler(e).plan)) for e in range(8)]
    assert len(plans[0]) == n                          # first epoch: every group
    assert plans[1].min() == 200                       # epoch 1: start 1 % 2 = 1 → groups 1..4
    starts = [int(pl.min()) // 200 for pl in plans[1:6]]
    assert starts == [1, 0, 1, 0, 1]                   # start = step mod (G − w + 1)
    assert all(len(pl) == 800 for pl in plans[1:6])
    assert len(plans[6]) == n and len(plans[7]) == n   # annealing: random pruning only (r=0)
    assert p.saved_fraction == pytest.approx(5 * 200 / (8 * n))


def test_dynamic_random_saves_what_it_says():
    p = DynamicRandomPruner(500, epochs=4, prune_ratio=0.3, seed=1)
    for e in range(4):
        assert len(p.sampler(e)) == 350
    assert p.saved_fraction == pytest.approx(0.3)


def test_infobatch_skips_well_learned_and_rescales():
    p = InfoBatchPruner(100, epochs=10, prune_ratio=0.5, anneal=0.8, seed=0)
    p.scores[:] = np.r_[np.zeros(50), np.ones(50)]      # first half well learned
    plan = p.sampler(0).plan
    assert (plan >= 50).sum() == 50 and (plan < 50).sum() == 25
    kept_easy = plan[plan < 50]
    assert np.allclose(p.weights[kept_easy], 2.0) and np.allclose(p.weights[50:], 1.0)
    loss = p.update(torch.tensor([int(kept_easy[0]), 60]), torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx(1.5)            # (2·1 + 1·1) / 2
    assert len(p.sampler(8).plan) == 100                # annealing epochs use everything


def test_update_rejects_wrong_lengths_and_indices():
    p = make_pruner("seta", 10, 2)
    with pytest.raises(InvalidParameterError, match="per-sample losses"):
        p.update(torch.arange(3), torch.ones(2))
    with pytest.raises(InvalidParameterError, match="per-sample losses"):
        p.update(torch.arange(3), torch.tensor(1.0))
    with pytest.raises(InvalidParameterError, match=r"in \[0, 10\)"):
        p.update(torch.tensor([11]), torch.ones(1))
    with pytest.raises(InvalidParameterError, match="did you mean 'seta'"):
        make_pruner("sefa", 10, 2)


def test_training_loop_with_plain_dataloader():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    out = train_with_pruner(X[:500], y[:500], X[500:], y[500:], n_classes=2, pruner="seta",
                            epochs=6, prune_ratio=0.3, seed=0, model="softmax", lr=0.05)
    assert out["accuracy"] > 0.8
    assert 0.3 <= out["saved_fraction"] < 1.0
    full = train_with_pruner(X[:500], y[:500], X[500:], y[500:], n_classes=2, pruner="full",
                             epochs=2, seed=0, model="softmax")
    assert full["saved_fraction"] == 0.0
