"""Train the downstream model with a dynamic pruner and measure what it saved.

The model is one of ``curate.models.MODEL_KINDS`` (``mlp`` by default; ``softmax``; ``cnn``
for flat square images), trained with Adam on the candidate (train) rows; accuracy is
measured on the test rows. Each epoch's batches are slices of the pruner's plan
(``PlanSampler.batches``) and index the X/y tensors directly: one gather per batch, no
per-row Python. The saved fraction is counted from the sample-iterations the pruner actually
planned; wall time is measured around the training epochs (``wall_time_s``, and its mean
over the epochs, ``wall_time_per_epoch_s``; the test evaluation is outside both).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from curate.checks import check_int, check_number, check_seed
from curate.inputs import labelled_splits
from curate.models import accuracy, make_model
from curate.progress import bar
from curate.pruning.pruners import make_pruner
from stores import Store


class IndexedTensors(Dataset):
    """(index, x, y) triples, so the batch carries the indices the pruner needs: for a
    ``DataLoader(IndexedTensors(X, y), batch_size=B, sampler=pruner.sampler(epoch))`` in a
    training loop of one's own (``train_with_pruner`` indexes whole batches instead)."""

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.X = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
        self.y = torch.as_tensor(np.asarray(y, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return i, self.X[i], self.y[i]


def train_with_pruner(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                      y_test: np.ndarray, *, n_classes: int, pruner: str = "seta",
                      epochs: int = 15, prune_ratio: float = 0.3,
                      pruner_params: dict[str, Any] | None = None, model: str = "mlp",
                      lr: float = 1e-3, batch_size: int = 256, seed: int = 0,
                      progress: bool = False) -> dict[str, Any]:
    seed = check_seed(seed)
    check_int("", "epochs", epochs)
    check_int("", "batch_size", batch_size)
    check_number("", "lr", lr, 0.0, low_open=True)
    n = len(y_train)
    params = dict(pruner_params or {})
    if pruner != "full":
        params.setdefault("prune_ratio", prune_ratio)
    p = make_pruner(pruner, n, epochs, seed=seed, **params)
    gen = torch.Generator().manual_seed(seed)
    net = make_model(model, X_train.shape[1], n_classes, generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    X = torch.as_tensor(np.ascontiguousarray(X_train, dtype=np.float32))
    y = torch.as_tensor(np.asarray(y_train, dtype=np.int64))
    epoch_times = []
    with bar(f"training ({pruner})", total=epochs, enabled=progress) as b:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            net.train()
            for idx in p.sampler(epoch).batches(batch_size):
                per_sample = torch.nn.functional.cross_entropy(net(X[idx]), y[idx],
                                                               reduction="none")
                loss = p.update(idx, per_sample)
                opt.zero_grad()
                loss.backward()
                opt.step()
            epoch_times.append(time.perf_counter() - t0)
            b.advance()
    return {"pruner": pruner, "params": {**params}, "epochs": epochs, "seed": seed,
            "accuracy": accuracy(net, X_test, y_test), "saved_fraction": p.saved_fraction,
            "wall_time_s": float(sum(epoch_times)),
            "wall_time_per_epoch_s": float(np.mean(epoch_times)), "n_train": n}


def train_dataset(store: Store | str | Path | None, dataset: str | None = None, *,
                  pruner: str = "seta", epochs: int = 15, prune_ratio: float = 0.3,
                  pruner_params: dict[str, Any] | None = None, model: str = "mlp",
                  seed: int = 0, embedding: str | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """``curate train``: the stored dataset's train rows → test accuracy with a pruner.
    The seed and the epochs are checked before the store is read."""
    check_seed(seed)
    check_int("", "epochs", epochs)
    st = store if isinstance(store, Store) else Store.open(store)
    info = st.dataset_info(dataset)
    splits = labelled_splits(st, info.name, "train")
    test = splits.need("test", info.name, "to measure accuracy on", "--test-fraction")
    train = splits.rows["train"]
    X = np.asarray(st.embeddings(info.name, embedding)[0])
    y = splits.labels
    out = train_with_pruner(X[train], y[train], X[test], y[test],
                            n_classes=len(splits.classes), pruner=pruner, epochs=epochs,
                            prune_ratio=prune_ratio, pruner_params=pruner_params,
                            model=model, seed=seed, progress=progress)
    return {"dataset": info.name, **out}
