"""Proxy training: record per-sample loss trajectories for CLD and loss-based methods.

A small model (softmax regression or a one-hidden-layer MLP, ``curate.models``) is trained
with Adam on the embeddings of the dataset's ``train`` rows. After every epoch the model is
put in eval mode and the per-sample cross-entropy of every train and validation row is
recorded, giving ``train_losses`` (E, N_train) and ``val_losses`` (E, N_val) with
E = epochs. Correctness per epoch and the last epoch's class probabilities are kept too
(for forgetting events and uncertainty baselines).

The validation rows are the dataset's ``val`` split (a stratified hold-out made at ingest,
10% by default); they are never selection candidates.

Checked before training: ``seed`` (``check_seed``), ``epochs`` and ``batch_size`` (integers
≥ 1), ``lr`` (> 0) and ``weight_decay`` (≥ 0) finite numbers, at least 2 classes (with one
class the cross-entropy is identically 0 and every trajectory is flat), and the memory the
trajectories take, epochs × (train + val rows) × 9 bytes (``check_memory``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from curate.checks import check_choice, check_int, check_memory, check_number, check_seed
from curate.embedding import MODEL_NAME
from curate.errors import DegenerateInputError, MissingInputError
from curate.inputs import labelled_splits
from curate.models import make_model
from curate.progress import bar
from stores import Signals, Store
from stores.store import now_iso

#: the proxies: models of an embedding whose whole-pool forward pass fits in memory (the
#: trajectories are recorded by one full pass per epoch; a CNN's activations would not be)
PROXY_MODELS = ("softmax", "mlp")


def train_proxy(X: np.ndarray, y: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray, *,
                n_classes: int, model: str = "softmax", epochs: int = 20, lr: float = 1e-2,
                batch_size: int = 256, weight_decay: float = 0.0, seed: int = 0,
                progress: bool = False) -> Signals:
    """Train a proxy on ``X[train_rows]`` and return its loss trajectories.

    Shapes: X (N, d) float32 for the whole dataset, y (N,) int64 codes, rows int64 indices.
    """
    seed = check_proxy_params(epochs=epochs, lr=lr, batch_size=batch_size,
                              weight_decay=weight_decay, seed=seed)
    if len(train_rows) == 0:
        raise MissingInputError("proxy training needs 'train' rows; the dataset has none")
    if n_classes < 2:
        raise DegenerateInputError(f"proxy training needs at least 2 classes; got {n_classes} "
                                   "(with one class every loss is 0 and the trajectories "
                                   "carry nothing)")
    check_memory(f"signals: epochs={epochs} for {len(train_rows) + len(val_rows)} rows",
                 9.0 * epochs * (len(train_rows) + len(val_rows)), "use fewer epochs")
    gen = torch.Generator().manual_seed(seed)
    net = make_model(model, X.shape[1], n_classes, generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    ce = nn.CrossEntropyLoss(reduction="none")
    Xtr = torch.as_tensor(np.ascontiguousarray(X[train_rows], dtype=np.float32))
    ytr = torch.as_tensor(y[train_rows].astype(np.int64))
    Xva = torch.as_tensor(np.ascontiguousarray(X[val_rows], dtype=np.float32))
    yva = torch.as_tensor(y[val_rows].astype(np.int64))
    E, n_tr, n_va = epochs, len(train_rows), len(val_rows)
    train_losses = np.empty((E, n_tr), np.float32)
    val_losses = np.empty((E, n_va), np.float32)
    correct = np.empty((E, n_tr), bool)
    with bar(f"proxy ({model})", total=epochs, enabled=progress) as b:
        for epoch in range(E):
            net.train()
            order = torch.randperm(n_tr, generator=gen)
            for start in range(0, n_tr, batch_size):
                idx = order[start:start + batch_size]
                opt.zero_grad()
                ce(net(Xtr[idx]), ytr[idx]).mean().backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                logits = net(Xtr)
                train_losses[epoch] = ce(logits, ytr).numpy()
                correct[epoch] = (logits.argmax(1) == ytr).numpy()
                if n_va:
                    val_losses[epoch] = ce(net(Xva), yva).numpy()
            b.advance()
    with torch.no_grad():
        probs = torch.softmax(net(Xtr), dim=1).numpy()
    meta = {"model": model, "epochs": epochs, "lr": lr, "batch_size": batch_size,
            "weight_decay": weight_decay, "seed": seed, "checkpoints": list(range(1, E + 1)),
            "checkpoint_unit": "epoch", "n_classes": n_classes}
    return Signals(train_rows=np.asarray(train_rows, np.int64), train_losses=train_losses,
                   val_rows=np.asarray(val_rows, np.int64), val_losses=val_losses,
                   train_correct=correct, train_probs=probs, meta=meta)


def check_proxy_params(*, epochs: int, lr: float, batch_size: int, weight_decay: float,
                       seed: int) -> int:
    """Validate the proxy's training parameters; return the seed as an int."""
    seed = check_seed(seed)
    check_int("", "epochs", epochs)
    check_int("", "batch_size", batch_size)
    check_number("", "lr", lr, 0.0, low_open=True)
    check_number("", "weight_decay", weight_decay, 0.0)
    return seed


def train_signals(store: Store, dataset: str | None = None, *, name: str = "proxy",
                  model: str = "softmax", epochs: int = 20, seed: int = 0,
                  embedding: str | None = None, lr: float = 1e-2, progress: bool = False) -> dict:
    """Train a proxy on a stored dataset and store its trajectories as signal ``name``.
    Parameters are checked (see the module docstring) before the store is read."""
    check_proxy_params(epochs=epochs, lr=lr, batch_size=256, weight_decay=0.0, seed=seed)
    check_choice("", "model", model, PROXY_MODELS)
    info = store.dataset_info(dataset)
    splits = labelled_splits(store, info.name, "signals")
    val_rows = splits.need("val", info.name, "for the validation trajectories", "--val-fraction")
    train_rows, codes, classes = splits.rows["train"], splits.labels, splits.classes
    X, meta = store.embeddings(info.name, embedding)
    signals = train_proxy(np.asarray(X), codes, train_rows, val_rows, n_classes=len(classes),
                          model=model, epochs=epochs, lr=lr, seed=seed, progress=progress)
    signals.meta.update({"name": name, "embedding": meta.model, "classes": list(classes),
                         "dataset_fingerprint": info.fingerprint, "created_at": now_iso(),
                         "source": "curate signals train"})
    store.write_signals(info.name, name, signals)
    return {"dataset": info.name, "signal": name, "epochs": epochs, "model": model,
            "n_train": len(train_rows), "n_val": len(val_rows),
            "final_train_loss": float(signals.train_losses[-1].mean()),
            "final_val_loss": float(signals.val_losses[-1].mean())}


__all__ = ["MODEL_NAME", "train_proxy", "train_signals"]
