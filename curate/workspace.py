"""Workspace operations behind ``curate init``, ``ingest``, ``list`` and ``show``: create the
default dataset, ingest a file (and make it the default when there is none), summarise the
store's contents, and gather what is known about one selection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from core.encoders import DEFAULT_BACKEND
from curate.errors import InvalidParameterError
from stores import IngestSpec, Store
from stores.executor import Executor, get_executor


def init_workspace(store: Store, *, default: bool = False, sample: int | None = 20_000,
                   epochs: int = 20, seed: int = 0, backend: str = DEFAULT_BACKEND,
                   executor: Executor | str | None = None, ray_address: str | None = None,
                   progress: bool = False) -> dict[str, Any]:
    """``curate init``: report the (already created) ``store``; with ``default``, also make
    the bundled WordNet dataset the default — built with ``init_default`` (``sample`` rows,
    None for all; ``epochs``, ``seed``, ``backend``; the executor is resolved from
    ``executor``/``ray_address`` only then), or, when the store has it already, just made the
    default again (``existed: True``)."""
    payload: dict[str, Any] = {"store": str(store.root)}
    if default:
        from curate.defaults import DEFAULT_NAME, init_default

        if store.has_dataset(DEFAULT_NAME):
            store.set_default(DEFAULT_NAME)
            payload.update(dataset=DEFAULT_NAME, default=True, existed=True)
        else:
            payload.update(init_default(store, sample=sample, epochs=epochs, seed=seed,
                                        progress=progress, backend=backend,
                                        executor=get_executor(executor, address=ray_address)))
    return payload


def ingest_dataset(store: Store, path: str | Path, name: str, spec: IngestSpec, *,
                   set_default: bool = False, progress: bool = False,
                   executor: Executor | str | None = None) -> dict[str, Any]:
    """``curate ingest``: stream ``path`` into dataset ``name`` (``Store.ingest``) and make it
    the store's default when ``set_default`` or when the store has no default yet. Returns
    the dataset's name, row count, fingerprint and whether it is now the default."""
    info = store.ingest(path, name, spec, progress=progress, executor=executor)
    if set_default or store.default_dataset is None:
        store.set_default(name)
    return {"dataset": info.name, "n_rows": info.n_rows, "fingerprint": info.fingerprint,
            "default": store.default_dataset == name}


@dataclass(frozen=True)
class StoreSummary:
    """What a store holds (``curate list``): datasets, selections, models, indices."""

    default_dataset: str | None
    datasets: pl.DataFrame
    selections: pl.DataFrame
    models: pl.DataFrame
    indices: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"default_dataset": self.default_dataset, "datasets": self.datasets.to_dicts(),
                "selections": self.selections.to_dicts(), "models": self.models.to_dicts(),
                "indices": self.indices}


def summarize_store(store: Store | str | Path | None) -> StoreSummary:
    """The store's datasets (without their paths and sources), selections (id, dataset,
    method, budget, seed, size, creation time), models and indices."""
    from curate.api import open_store

    st = open_store(store)
    return StoreSummary(
        default_dataset=st.default_dataset,
        datasets=st.datasets().drop("path", "source"),
        selections=st.selections().select("id", "dataset", "method", "budget", "seed",
                                          "n_selected", "created_at"),
        models=st.models(), indices=st.indices())


@dataclass(frozen=True)
class SelectionView:
    """One selection as ``curate show`` presents it."""

    selection_id: str
    provenance: dict[str, Any]
    n_selected: int
    lineage: list[dict[str, Any]]
    head: pl.DataFrame
    duplicate_groups: list[list[dict[str, Any]]]

    def to_json(self) -> dict[str, Any]:
        payload = {"selection_id": self.selection_id, "provenance": self.provenance,
                   "n_selected": self.n_selected, "lineage": self.lineage,
                   "head": self.head.to_dicts()}
        if self.duplicate_groups:
            payload["duplicate_groups"] = self.duplicate_groups
        return payload


def describe_selection(store: Store | str | Path | None, selection_id: str,
                       rows: int = 10) -> SelectionView:
    """A selection's provenance, size, lineage (``curate.api.lineage``), first ``rows`` rows
    and, for a dedup selection, its first three duplicate groups. ``rows`` (≥ 0) is checked
    before the store is opened."""
    if rows < 0:
        raise InvalidParameterError(f"--rows must be ≥ 0; got {rows}")
    from curate.api import lineage, open_store
    from curate.groups import duplicate_groups

    st = open_store(store)
    table, prov = st.read_selection(selection_id)
    chain = lineage(st, selection_id)
    return SelectionView(selection_id=selection_id, provenance=prov, n_selected=table.height,
                         lineage=chain, head=table.head(rows),
                         duplicate_groups=duplicate_groups(st, selection_id, n=3))
