"""Dynamic pruners: schedules computed by hand, measured savings, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curate.errors import InvalidParameterError
from curate.models import MODEL_KINDS, make_model
from curate.pruning import (
    DynamicPruner,
    DynamicRandomPruner,
    InfoBatchPruner,
    SeTaPruner,
    make_pruner,
    train_with_pruner,
)
from curate.pruning.pruners import kmeans_1d


def test_kmeans_1d_ties_leave_no_empty_group():
    # 8 tied losses: the quantile starts 0, 0, 0.5 coincide, and the middle centre used to
    # keep no value (labels 0 and 2 only); the window then slid over an empty group
    v = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2], dtype=float)
    labels = kmeans_1d(v, 5)
    assert labels.tolist() == [0] * 8 + [1, 1]
    assert np.all(np.bincount(labels) > 0)


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


def test_training_loop_learns_and_measures_savings():
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


def test_cnn_shapes_and_seeded_init():
    assert "cnn" in MODEL_KINDS
    net = make_model("cnn", 28 * 28, 10, generator=torch.Generator().manual_seed(5))
    assert net(torch.rand(3, 784)).shape == (3, 10)
    twin = make_model("cnn", 28 * 28, 10, generator=torch.Generator().manual_seed(5))
    other = make_model("cnn", 28 * 28, 10, generator=torch.Generator().manual_seed(6))
    pairs = list(zip(net.state_dict().values(), twin.state_dict().values(), strict=True))
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not torch.equal(net[1].weight, other[1].weight)     # the conv draw follows the seed
    assert make_model("cnn", 64, 3, channels=(4, 8))(torch.rand(2, 64)).shape == (2, 3)


@pytest.mark.parametrize("dim", [783, 10, 9])
def test_cnn_refuses_non_square_or_tiny_dims(dim):
    with pytest.raises(InvalidParameterError, match=rf"side² with side ≥ 4.*got dim={dim}"):
        make_model("cnn", dim, 10)


def test_training_loop_with_cnn_on_tiny_images():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=240)
    img = rng.normal(scale=0.3, size=(240, 8, 8)).astype(np.float32)
    img[y == 1, 2:6, 2:6] += 1.0                                # class 1: a bright centre
    X = img.reshape(240, 64)
    out = train_with_pruner(X[:200], y[:200], X[200:], y[200:], n_classes=2, model="cnn",
                            pruner="dynamic_random", epochs=3, prune_ratio=0.5, seed=0,
                            batch_size=32, lr=0.01)
    assert out["accuracy"] > 0.9                               # the CNN learns the centre
    assert out["saved_fraction"] == pytest.approx(0.5)
    assert 0 < out["wall_time_per_epoch_s"] <= out["wall_time_s"]


class _CountingPruner(DynamicPruner):
    """Records every index batch ``update`` receives; plans a fixed shuffled half."""

    name = "counting"

    def __init__(self, n, epochs):
        super().__init__(n, epochs)
        self.seen: list[np.ndarray] = []
        self.plans: list[np.ndarray] = []

    def sampler(self, epoch):
        s = super().sampler(epoch)
        self.plans.append(np.asarray(s.plan).copy())
        return s

    def _plan(self, epoch, rng):
        return np.arange(epoch % 2, self.n, 2)

    def update(self, indices, losses):
        self.seen.append(np.asarray(indices).copy())
        return super().update(indices, losses)


def test_batch_loop_gives_the_pruner_exactly_the_plan(monkeypatch):
    import curate.pruning.train as train

    made = []

    def fake_make_pruner(name, n, epochs, **params):
        made.append(_CountingPruner(n, epochs))
        return made[-1]

    monkeypatch.setattr(train, "make_pruner", fake_make_pruner)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(101, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    train.train_with_pruner(X, y, X, y, n_classes=2, pruner="full", epochs=3, batch_size=16,
                            model="softmax")
    p = made[0]
    assert [len(b) for b in p.seen[:4]] == [16, 16, 16, 3]     # 51 planned: 3 full + rest
    per_epoch = np.split(np.concatenate(p.seen), np.cumsum([len(pl) for pl in p.plans])[:-1])
    for plan, seen in zip(p.plans, per_epoch, strict=True):
        assert np.array_equal(seen, plan)                      # in plan order, each once
    assert np.bincount(np.concatenate(p.seen), minlength=101).tolist() == \
        [2 if i % 2 == 0 else 1 for i in range(101)]           # epochs 0, 2 even; 1 odd
    assert p.saved_fraction == pytest.approx(1 - (51 + 50 + 51) / 303)


def test_plan_batches_slice_the_shard():
    from torch.utils.data import DataLoader

    from curate.pruning import IndexedTensors, PlanSampler

    s = PlanSampler(np.arange(10)[::-1], rank=1, world=3)       # 9..0 padded by 9, 8
    assert s.plan.tolist() == [8, 5, 2, 9]                      # every third from 1
    assert [b.tolist() for b in s.batches(3)] == [[8, 5, 2], [9]]
    assert all(b.dtype == torch.int64 for b in s.batches(3))
    with pytest.raises(InvalidParameterError, match="batch_size"):
        s.batches(0)
    X, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    loader = DataLoader(IndexedTensors(X, y), batch_size=3, sampler=s)  # own-loop path
    assert [idx.tolist() for idx, _, _ in loader] == [[8, 5, 2], [9]]
