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
from dataclasses import replace
from pathlib import Path
from typing import Any

from curate._version import __version__
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
    return _content_id(p.dataset, p.dataset_fingerprint, p.inputs, p.method, p.params,
                       p.budget, p.seed, p.library_version)


def _content_id(dataset: str, fingerprint: str, inputs: dict, method: str, params: dict,
                budget: Budget, seed: int, version: str) -> str:
    key = {"dataset": dataset, "fingerprint": fingerprint, "inputs": inputs,
           "method": method, "params": params, "budget": budget, "seed": seed,
           "version": version}
    return f"{method}-{files.sha256_json(key)[:10]}"


def select(*, method: str, budget: Budget, dataset: str | None = None,
           store: Store | str | Path | None = None, seed: int = 0,
           params: dict[str, Any] | None = None, embedding: str | None = None,
           signal: str | None = None, group_column: str | None = None,
           target: str | None = None, model: str | None = None,
           save: bool = True, executor: Executor | str | None = None,
           within: str | None = None) -> Selection:
    """Run ``method`` on ``dataset`` (the store's default if None) and save the selection.

    ``within`` (a stored selection id; CLI ``--from``) runs the method inside that
    selection's rows: the budget is a share of them, the parent's id goes into the
    provenance (``inputs["from"]``, part of the content address) and the dataset is the
    parent's.
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
    parent = None
    if within is not None:
        parent = parent_selection(st, within, dataset)
        dataset = parent.provenance.dataset
    name = st.resolve_dataset(dataset)
    needs = selector.needs
    _check_available(st, name, selector.name, needs.embeddings, needs.signals)
    signals = needs.signals or (selector.uses_signals and bool(st.signal_names(name)))
    data = load_input(st, name, labels=needs.labels, embeddings=needs.embeddings,
                      signals=signals, embedding=embedding, signal=signal,
                      group_column=group_column, target=target, model=model,
                      lazy_embeddings=selector.lazy_embeddings,
                      within=None if parent is None else parent.indices,
                      texts=selector.uses_text)
    if parent is not None:
        if not data.n:
            raise MissingInputError(f"selection {within!r} has no training rows of "
                                    f"{name!r} to select from")
        data = replace(data, inputs={**data.inputs, "from": within})
    # the id is known before the method runs: a request already answered is not recomputed
    sid = _content_id(data.dataset, data.fingerprint, dict(data.inputs), selector.name,
                      selector.get_params(), budget, seed, __version__)
    if save and st.has_selection(sid):  # same request, same data: the stored one is the answer
        return load_selection(st, sid)
    t0 = time.perf_counter()
    result = selector.select(data, budget, seed=seed, executor=executor)
    run = {"created_at": now_iso(), "wall_time_s": round(time.perf_counter() - t0, 6)}
    if not save:
        return result.with_location(None, None, run)
    if selection_id(result) != sid:
        raise RuntimeError(f"selection id changed while selecting: {sid} → "
                           f"{selection_id(result)}")
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


def parent_selection(st: Store, selection_id: str, dataset: str | None) -> Selection:
    """The selection to select within: it must exist, be of ``dataset`` (when given) and of
    the dataset's current version."""
    parent = load_selection(st, selection_id)
    p = parent.provenance
    if dataset is not None and st.resolve_dataset(dataset) != p.dataset:
        raise InvalidParameterError(f"selection {selection_id!r} is of dataset {p.dataset!r}, "
                                    f"not {dataset!r}")
    if st.dataset_info(p.dataset).fingerprint != p.dataset_fingerprint:
        raise InvalidParameterError(f"selection {selection_id!r} was made on another version "
                                    f"of {p.dataset!r}; select again")
    return parent


def lineage(st: Store, selection_id: str) -> list[dict[str, Any]]:
    """The chain of selections ``selection_id`` was made within, oldest first: one
    ``{"selection_id", "method", "n_selected", "n_candidates"}`` per link."""
    chain, seen, sid = [], set(), selection_id
    while sid is not None and sid not in seen:
        seen.add(sid)
        prov = load_selection(st, sid).provenance
        chain.append({"selection_id": sid, "method": prov.method,
                      "n_selected": prov.n_selected, "n_candidates": prov.n_candidates})
        sid = prov.inputs.get("from")
    return chain[::-1]


def load_selection(store: Store | str | Path | None, selection_id: str) -> Selection:
    st = open_store(store)
    table, prov = st.read_selection(selection_id)
    return Selection.from_frame(table, prov, selection_id=selection_id,
                                path=st.selection_path(selection_id))
