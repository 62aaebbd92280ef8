"""Shared fixtures: synthetic stores (fast, no text model) and tiny in-memory inputs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.inputs import CandidateSignals, SelectionInput
from curate.signals import train_signals
from stores import IngestSpec, Store

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def blobs(n: int = 400, n_classes: int = 4, dim: int = 16, seed: int = 0) -> pl.DataFrame:
    """Gaussian blobs with some label noise, as a frame with text, label, id and vector."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 2
    y = rng.integers(0, n_classes, size=n)
    X = centres[y] + rng.normal(size=(n, dim))
    noisy = rng.random(n) < 0.1
    y = np.where(noisy, rng.integers(0, n_classes, size=n), y)
    return pl.DataFrame({
        "uid": [f"s{i:05d}" for i in range(n)],
        "text": [f"sample number {i}" for i in range(n)],
        "label": [f"class_{c}" for c in y],
        "vec": X.astype(np.float32).tolist(),
    })


def build_synthetic_store(root: Path, n: int = 400, epochs: int = 5) -> Store:
    store = Store.create(root)
    path = root.parent / f"{root.name}-blobs.parquet"
    blobs(n).write_parquet(path)
    store.ingest(path, "blobs", IngestSpec(text_column="text", label_column="label",
                                           id_column="uid", vector_column="vec"))
    store.set_default("blobs")
    train_signals(store, "blobs", epochs=epochs, seed=0)
    return store


@pytest.fixture(scope="session")
def synthetic_store_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("template") / "store"
    build_synthetic_store(root)
    return root


@pytest.fixture
def synthetic_store(tmp_path, synthetic_store_template) -> Store:
    """A fresh copy of a small labelled store with vectors and 5-epoch signals."""
    import shutil

    root = tmp_path / "store"
    shutil.copytree(synthetic_store_template, root)  # a store is a folder: copy it whole
    return Store.open(root)


def tree_hash(root: Path) -> str:
    """Hash of every file (path + bytes) under ``root``: proof that nothing changed."""
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _tiny_set_model(dim: int):
    import torch

    from curate.models import init_linear_layers
    from curate.subsets import make_set_model

    return init_linear_layers(make_set_model("inset", dim, hidden=8),
                              torch.Generator().manual_seed(0))


def make_input(n: int = 60, n_classes: int = 3, dim: int = 8, epochs: int = 5,
               seed: int = 0, n_val: int = 15) -> SelectionInput:
    """An in-memory candidate pool satisfying every method's needs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    decay = np.exp(-np.arange(1, epochs + 1)[:, None] * rng.uniform(0.05, 0.5, size=(1, n)))
    train_losses = (rng.uniform(0.5, 2.0, size=(1, n)) * decay
                    + 0.05 * rng.random((epochs, n))).astype(np.float32)
    val_labels = np.arange(n_val) % n_classes
    val_losses = (np.exp(-np.arange(1, epochs + 1)[:, None] * 0.2)
                  + 0.05 * rng.random((epochs, n_val))).astype(np.float32)
    sig = CandidateSignals(train_losses=train_losses, val_losses=val_losses,
                           val_labels=val_labels,
                           train_correct=rng.random((epochs, n)) < 0.7,
                           train_probs=rng.dirichlet(np.ones(n_classes), size=n))
    return SelectionInput(row_idx=np.arange(100, 100 + n, dtype=np.int64), labels=labels,
                          classes=tuple(f"c{i}" for i in range(n_classes)), embeddings=emb,
                          signals=sig, groups=np.arange(n) % 6, model=_tiny_set_model(dim),
                          target=rng.normal(0.5, 1.0, size=(20, dim)).astype(np.float32),
                          sample_ids=np.array([f"id{i}" for i in range(n)]))


@pytest.fixture(scope="session")
def wordnet_home(tmp_path_factory) -> Path:
    """A default store on a 600-row stratified sample of the bundled WordNet (real MiniLM)."""
    from curate.cli import main

    home = tmp_path_factory.mktemp("wn") / ".curate"
    assert main(["--store", str(home), "init", "--default", "--sample", "600", "--epochs", "6",
                 "--json"]) == 0
    return home


def pytest_collection_modifyitems(config, items):
    """Run the ``slow`` tests (the notebooks) first: with ``-n 2 --dist loadfile`` the
    longest files then start at once on separate workers instead of ending the run on one."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
