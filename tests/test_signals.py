"""Proxy training, LossRecorder and signal ingest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import curate
from curate.errors import InvalidParameterError
from curate.signals import LossRecorder, ingest_signals, train_proxy


def test_proxy_trajectories_shapes_and_learning():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    tr, va = np.arange(0, 250), np.arange(250, 300)
    sig = train_proxy(X, y, tr, va, n_classes=2, epochs=4, seed=0)
    assert sig.train_losses.shape == (4, 250) and sig.val_losses.shape == (4, 50)
    assert sig.train_correct.shape == (4, 250) and sig.train_probs.shape == (250, 2)
    assert sig.train_losses[-1].mean() < sig.train_losses[0].mean()   # it learns
    again = train_proxy(X, y, tr, va, n_classes=2, epochs=4, seed=0)
    assert np.array_equal(sig.train_losses, again.train_losses)       # seeded, no global RNG


def test_proxy_mlp_runs():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 4)).astype(np.float32)
    y = (X[:, 1] > 0).astype(np.int64)
    sig = train_proxy(X, y, np.arange(80), np.arange(80, 100), n_classes=2, model="mlp",
                      epochs=3, seed=0)
    assert sig.n_checkpoints == 3


def test_loss_recorder_from_a_torch_loop(synthetic_store):
    samples = synthetic_store.samples("blobs")
    X, _ = synthetic_store.embeddings("blobs")
    y = np.asarray([int(s[-1]) for s in samples["label"]])
    train = samples.filter(samples["split"] == "train")["row_idx"].to_numpy()
    val = samples.filter(samples["split"] == "val")["row_idx"].to_numpy()
    model = torch.nn.Linear(X.shape[1], 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = LossRecorder(train_rows=train, val_rows=val)
    idx_all = np.concatenate([train, val])
    for _ in range(3):
        xb = torch.as_tensor(np.asarray(X[train]))
        loss = torch.nn.functional.cross_entropy(model(xb), torch.as_tensor(y[train]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for chunk in np.array_split(np.random.default_rng(0).permutation(idx_all), 4):
                losses = torch.nn.functional.cross_entropy(
                    model(torch.as_tensor(np.asarray(X[chunk]))), torch.as_tensor(y[chunk]),
                    reduction="none")
                rec.record(torch.as_tensor(chunk), losses)
        rec.checkpoint()
    rec.save(synthetic_store, "blobs", name="mine")
    sel = curate.select(method="cld", budget=0.1, store=synthetic_store, signal="mine")
    assert sel.provenance.inputs["signal"] == "mine" and len(sel) == round(0.1 * len(train))


def test_loss_recorder_refuses_gaps_and_strangers():
    rec = LossRecorder(train_rows=[0, 1, 2], val_rows=[3])
    rec.record([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(InvalidParameterError, match="no finite loss"):
        rec.checkpoint()
    with pytest.raises(InvalidParameterError, match="neither a train nor a val row"):
        rec.record([9], [0.1])
    with pytest.raises(InvalidParameterError, match="rows but"):
        rec.record([0, 1], [0.1])


def test_ingest_npz_signals(synthetic_store, tmp_path):
    s = synthetic_store.signals("blobs")
    np.savez(tmp_path / "t.npz", train_rows=s.train_rows, train_losses=s.train_losses * 2,
             val_rows=s.val_rows, val_losses=s.val_losses * 2)
    got = ingest_signals(synthetic_store, "blobs", tmp_path / "t.npz", name="external")
    assert got.n_checkpoints == 5
    assert "external" in synthetic_store.signal_names("blobs")


def test_ingest_npz_with_nan_is_refused(synthetic_store, tmp_path):
    from curate.errors import SchemaError

    s = synthetic_store.signals("blobs")
    bad = s.train_losses.copy()
    bad[0, 0] = np.nan
    np.savez(tmp_path / "t.npz", train_rows=s.train_rows, train_losses=bad,
             val_rows=s.val_rows, val_losses=s.val_losses)
    with pytest.raises(SchemaError, match="NaN"):
        ingest_signals(synthetic_store, "blobs", tmp_path / "t.npz")
