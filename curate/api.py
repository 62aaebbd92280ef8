"""The one selection path used by Python, notebooks and the CLI.

``select(method=..., budget=..., dataset=..., store=...)`` resolves the store and dataset,
builds the selector (validating its parameters), loads exactly the inputs it needs, runs it,
and saves the result as an immutable selection. Nothing is written unless everything
before the write succeeded.

Selection ids are content addresses: ``<method>-<10 hex>`` hashed from the dataset
fingerprint, inputs, method, parameters, budget, seed and library version. The same request
on the same data gives the same id; asking again returns the stored selection unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from curate.budget import Budget
from curate.checks import check_seed
from curate.errors import InvalidParameterError, MissingInputError
from curate.inputs import load_input
from curate.selection import Selection
from curate.selector import make_selector
from stores import Store, files
from stores.executor import Executor, get_executor
from stores.store import now_iso


def open_store(store: Store | str | Path | None) -> Store:
    return store if isinstance(store, Store) else Store.open(store)


def selection_id(selection: Selection) -> str:
    p = selection.provenance
    key = {"dataset": p.dataset, "fingerprint": p.dataset_fingerprint, "inputs": p.inputs,
           "method": p.method, "params": p.params, "budget": p.budget, "seed": p.seed,
           "version": p.library_version}
    return f"{p.method}-{files.sha256_json(key)[:10]}"


def select(*, method: str, budget: Budget, dataset: str | None = None,
           store: Store | str | Path | None = None, seed: int = 0,
           params: dict[str, Any] | None = None, embedding: str | None = None,
           signal: str | None = None, group_column: str | None = None,
           target: str | None = None, model: str | None = None,
           save: bool = True, executor: Executor | str | None = None) -> Selection:
    """Run ``method`` on ``dataset`` (the store's default if None) and save the selection.

    Returns the ``Selection`` with ``id`` and ``path`` set (unless ``save=False``).
    The seed (an integer in [0, 2**63)) and the method's parameters are checked before the
    store is opened or any input loaded. ``executor`` (``local`` | ``ray`` | an ``Executor``;
    default ``$CURATE_EXECUTOR``, else local) runs the method's parallel stages; the
    selection (and its id) is the same on every executor. Only this process writes.
    """
    seed = check_seed(seed)
    if params is not None and not isinstance(params, dict):
        raise InvalidParameterError(f"params must be a dict of method parameters; got "
                                    f"{type(params).__name__}")
    selector = make_selector(method, **(params or {}))
    executor = get_executor(executor)   # before any I/O: a missing Ray is one line
    st = open_store(store)
    name = st.resolve_dataset(dataset)
    needs = selector.needs
    _check_available(st, name, selector.name, needs.embeddings, needs.signals)
    data = load_input(st, name, labels=needs.labels, embeddings=needs.embeddings,
                      signals=needs.signals, embedding=embedding, signal=signal,
                      group_column=group_column, target=target, model=model,
                      lazy_embeddings=selector.lazy_embeddings)
    t0 = time.perf_counter()
    result = selector.select(data, budget, seed=seed, executor=executor)
    run = {"created_at": now_iso(), "wall_time_s": round(time.perf_counter() - t0, 6)}
    if not save:
        return result.with_location(None, None, run)
    sid = selection_id(result)
    if st.has_selection(sid):  # same request, same data: the stored one is the answer
        return load_selection(st, sid)
    path = st.write_selection(sid, result.to_frame(), result.provenance.to_json(), run,
                             exist_ok=True)
    return result.with_location(sid, path, run)


def _check_available(st: Store, name: str, method: str, embeddings: bool,
                     signals: bool) -> None:
    """Say what to run when a method's stored inputs are missing."""
    if embeddings and not st.embedding_models(name):
        raise MissingInputError(f"{method} needs embeddings: run `curate embed {name}`")
    if signals and not st.signal_names(name):
        raise MissingInputError(f"{method} needs signals: run `curate signals train {name}`")


def load_selection(store: Store | str | Path | None, selection_id: str) -> Selection:
    st = open_store(store)
    table, prov = st.read_selection(selection_id)
    return Selection.from_frame(table, prov, selection_id=selection_id,
                                path=st.selection_path(selection_id))
