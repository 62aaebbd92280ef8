"""Saving and loading trained set models in the store (``models/<kind>-<hex>/``):
``weights.pt`` (a torch state dict) and ``model.json`` (kind, dim, hidden, scores, data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from curate.errors import InvalidParameterError, SchemaError
from curate.subsets.models import SetFunction, make_set_model
from stores import Store, files


def save_set_model(store: Store, model: SetFunction, kind: str, meta: dict[str, Any]) -> str:
    dim = model.phi[0].in_features
    hidden = model.phi[0].out_features

    def write(folder: Path) -> None:
        files.atomic_write(folder / "weights.pt", lambda p: torch.save(model.state_dict(), p))

    return store.write_model(kind, write, {"dim": dim, "hidden": hidden, **meta})


def load_set_model(store: Store, model_id: str) -> tuple[SetFunction, dict[str, Any]]:
    path = store.model_path(model_id)
    meta = files.read_json(path / "model.json")
    if meta.get("kind") not in ("inset", "equivset"):
        raise SchemaError(f"model {model_id!r} is a {meta.get('kind')!r} model, not a set model")
    model = make_set_model(meta["kind"], int(meta["dim"]), int(meta["hidden"]))
    model.load_state_dict(torch.load(path / "weights.pt", weights_only=True))
    model.eval()
    return model, meta


def train_from_store(store: Store, data_path: str | Path, kind: str, *,
                     dataset: str | None = None, epochs: int = 20, hidden: int = 64,
                     max_sets: int | None = 2000, seed: int = 0,
                     progress: bool = False) -> dict[str, Any]:
    """``curate subsets train``: (V, S*) pairs from ``data_path`` — a long table
    (``ground_set``, ``item``, ``in_subset`` and optionally a ``vector`` column;
    ``curate.subsets.long_format``) or a hyponym-sets file (``set_id``, ``members``,
    ``size``) — with item features from the vector column or ``dataset``'s embeddings (items
    matched on ``sample_id``); train, evaluate on the held-out split, store the model. The
    parameters (seed, epochs, hidden, max_sets, kind) are checked before the store is
    read."""
    import numpy as np

    from curate.checks import check_choice, check_int
    from curate.subsets.data import build_pairs, split
    from curate.subsets.long_format import is_long_format, long_pairs
    from curate.subsets.models import MODELS
    from curate.subsets.tasks import split_seed
    from curate.subsets.train import (
        check_set_training,
        mean_jaccard,
        predict,
        random_mjc,
        train_set_model,
    )
    from stores import read_table

    check_choice("", "model", kind, MODELS)
    seed = check_set_training(epochs=epochs, batch_size=64, lr=1e-3, hidden=hidden,
                              patience=5, seed=seed)  # ground-set size checked once known
    if max_sets is not None:
        check_int("", "max_sets", max_sets)
    table = read_table(data_path)
    own_vectors = is_long_format(table) and "vector" in table.columns
    if own_vectors and dataset is not None:
        raise InvalidParameterError(f"{data_path} brings its own item vectors (a 'vector' "
                                    "column); --dataset would not be used: drop one of them")
    info = None if own_vectors else store.dataset_info(dataset)
    source = "vector column" if info is None else None
    if is_long_format(table):
        if info is None:
            data = long_pairs(table)
        else:
            X, emb = store.embeddings(info.name)
            ids = store.samples(info.name, ["sample_id"])["sample_id"].to_numpy()
            data = long_pairs(table, sample_ids=ids, embeddings=X)
            source = emb.model
        if max_sets is not None and len(data) > max_sets:
            keep = np.random.default_rng(split_seed(seed, 3)).choice(len(data), max_sets,
                                                                     replace=False)
            data = data.take(np.sort(keep))
    else:
        X, emb = store.embeddings(info.name)
        ids = store.samples(info.name, ["sample_id"])["sample_id"].to_list()
        data = build_pairs(table, ids, np.asarray(X), seed=seed, max_sets=max_sets)
        source = emb.model
    if len(data) < 10:
        where = "the table" if info is None else repr(info.name)
        raise SchemaError(f"only {len(data)} usable ground sets in {data_path} (members in "
                          f"{where}); need at least 10 (add sets, or use a fuller dataset, "
                          "e.g. `curate init --default --full`)")
    train, val, test = split(data, seed=seed)
    model, fit = train_set_model(kind, train, val, epochs=epochs, hidden=hidden, seed=seed,
                                 progress=progress)
    test_mjc = mean_jaccard(predict(model, test.features, test.targets.sum(1), seed=seed),
                            test.targets)
    meta = {"dataset": None if info is None else info.name, "embedding": source,
            "data": str(Path(data_path).absolute()),
            "seed": seed, "epochs_run": fit["epochs_run"], "val_mjc": fit["val_mjc"],
            "test_mjc": test_mjc, "random_mjc": random_mjc(test.targets, seed),
            "n_train": len(train), "n_val": len(val), "n_test": len(test)}
    model_id = save_set_model(store, model, kind, meta)
    return {"model_id": model_id, "kind": kind, **meta, "train_time_s": fit["train_time_s"]}


def train_subsets(store: Store | str | Path | None, data_path: str | Path | None = None,
                  kind: str = "inset", **kwargs: Any) -> dict[str, Any]:
    """``curate subsets train``: check ``kind`` (one of ``MODELS``) before anything is read,
    default ``data_path`` to the bundled WordNet hyponym sets, open the store and run
    ``train_from_store`` with ``kwargs`` (dataset, epochs, hidden, max_sets, seed, progress)."""
    from curate.api import open_store
    from curate.subsets.models import MODELS

    if kind not in MODELS:
        raise InvalidParameterError(f"--model must be one of {', '.join(MODELS)}; got {kind!r}")
    if data_path is None:
        from curate.defaults import hyponym_sets_path

        data_path = hyponym_sets_path()
    return train_from_store(open_store(store), data_path, kind, **kwargs)
