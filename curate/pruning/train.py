"""Train the downstream model with a dynamic pruner and measure what it saved.

The model is ``curate.models`` (``mlp`` by default, or ``softmax``), trained with Adam on the
embeddings of the candidate (train) rows; accuracy is measured on the test rows. The saved
fraction is counted from the sample-iterations the pruner actually planned, and wall time is
measured around the whole loop.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from curate.checks import check_int, check_number, check_seed
from curate.inputs import labelled_splits
from curate.models import accuracy, make_model
from curate.progress import bar
from curate.pruning.pruners import make_pruner
from stores import Store


class IndexedTensors(Dataset):
    """(index, x, y) triples, so the batch carries the indices the pruner needs."""

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.X = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
        self.y = torch.as_tensor(np.asarray(y, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return i, self.X[i], self.y[i]


def _collate(batch):
    idx = torch.tensor([b[0] for b in batch])
    return idx, torch.stack([b[1] for b in batch]), torch.stack([b[2] for b in batch])


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
    data = IndexedTensors(X_train, y_train)
    t0 = time.perf_counter()
    with bar(f"training ({pruner})", total=epochs, enabled=progress) as b:
        for epoch in range(epochs):
            net.train()
            loader = DataLoader(data, batch_size=batch_size, sampler=p.sampler(epoch),
                                collate_fn=_collate)
            for idx, xb, yb in loader:
                per_sample = torch.nn.functional.cross_entropy(net(xb), yb, reduction="none")
                loss = p.update(idx, per_sample)
                opt.zero_grad()
                loss.backward()
                opt.step()
            b.advance()
    wall = time.perf_counter() - t0
    return {"pruner": pruner, "params": {**params}, "epochs": epochs, "seed": seed,
            "accuracy": accuracy(net, X_test, y_test), "saved_fraction": p.saved_fraction,
            "wall_time_s": wall, "n_train": n}


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
