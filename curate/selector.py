"""The ``Selector`` base class, the method registry, and ``Picks``.

A method subclasses ``Selector``, declares what it ``needs``, stores its keyword-only
parameters in ``__init__`` (no work, no I/O), and implements one hook::

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks

The base class owns everything else: parameter types (from the constructor's annotations:
``k="5"`` or ``k=True`` for an ``int`` is refused, never coerced), the seed check
(``check_seed``: an integer in [0, 2**63)), input validation (every array one row per
candidate, finite vectors and losses), the budget rule, the random generator
(``numpy.random.default_rng(seed)``; no global state), checking the picks, and building the
immutable ``Selection`` with its provenance. A method's ``_check_params`` only checks ranges.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import polars as pl

from curate._version import __version__
from curate.budget import Budget, resolve_budget
from curate.checks import check_annotated, check_seed, count_duplicates, did_you_mean
from curate.errors import (
    EmptyDatasetError,
    InvalidParameterError,
    MissingInputError,
    SchemaError,
    UnknownMethodError,
)
from curate.inputs import SelectionInput, all_finite, ids_array, take
from curate.selection import Provenance, Selection
from stores.executor import Executor, LocalExecutor, get_executor


@dataclass(frozen=True)
class Needs:
    """Inputs a method requires; checked before it runs, named in ``curate methods``."""

    labels: bool = False
    embeddings: bool = False
    signals: bool = False
    groups: bool = False
    target: bool = False
    model: bool = False

    def describe(self) -> str:
        parts = [n for n in ("labels", "embeddings", "signals", "groups", "target", "model")
                 if getattr(self, n)]
        return ", ".join(parts) or "nothing"


@dataclass(frozen=True)
class Picks:
    """A method's raw answer: positions into the candidate arrays, in pick order."""

    positions: np.ndarray
    scores: np.ndarray | None = None
    weights: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Selector:
    """Base class of every selection method. See the module docstring."""

    name: ClassVar[str] = ""
    needs: ClassVar[Needs] = Needs()
    summary: ClassVar[str] = ""
    #: False for methods that may return fewer than k rows (e.g. Carathéodory coresets);
    #: they report the actual size in ``provenance.n_selected`` and ``info``.
    exact_budget: ClassVar[bool] = True
    #: True for methods that read the embeddings part by part (``RowSubset``, no gathered copy)
    lazy_embeddings: ClassVar[bool] = False
    #: True for methods that use ``SelectionInput.text_keys`` when the dataset has text
    uses_text: ClassVar[bool] = False
    #: True for methods that use signals when the dataset has them (without needing them)
    uses_signals: ClassVar[bool] = False

    _executor: Executor | None = None

    @property
    def executor(self) -> Executor:
        """The executor of the running ``select`` call (local outside one)."""
        return self._executor or LocalExecutor()

    # -- parameters (sklearn-style: the constructor's keyword arguments) -------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.param_names()}

    def check_params(self) -> None:
        """Raise InvalidParameterError for a parameter of the wrong type (checked against the
        constructor's annotation) or out of range (``_check_params``). NumPy scalars of the
        right kind are accepted and stored as the Python ``bool``/``int``/``float`` they
        hold (FAISS, torch and JSON want those); nothing else is converted."""
        try:
            hints = typing.get_type_hints(type(self).__init__)
        except Exception:  # an annotation that does not resolve: check ranges only
            hints = {}
        for name in self.param_names():
            value = getattr(self, name)
            if name in hints:
                check_annotated(self.name, name, value, hints[name])
            if isinstance(value, np.generic) and isinstance(value, (np.bool_, np.number)):
                setattr(self, name, value.item())
        self._check_params()

    def _check_params(self) -> None:
        """Raise InvalidParameterError for out-of-range parameters (override)."""

    def _check_input(self, data: SelectionInput) -> None:
        """Method-specific input checks beyond ``needs`` (override)."""

    # -- the public entry ------------------------------------------------------------------
    def select(self, data: SelectionInput, budget: Budget, *, seed: int = 0,
               executor: Executor | str | None = None) -> Selection:
        """Select ``budget`` of ``data``'s candidates. Same seed → identical result.

        Checked before any work: the seed, the parameters, the input arrays, the budget.
        ``executor`` (``local`` | ``ray`` | an ``Executor``; default ``$CURATE_EXECUTOR`` or
        local) runs the method's parallel stages — chunked scoring, the parts of a
        partitioned greedy; the result does not depend on it, so it is not in the provenance.
        """
        seed = check_seed(seed)
        self.check_params()
        self._validate(data)
        k = resolve_budget(budget, data.n)
        self._executor = get_executor(executor)
        try:
            picks = self._select(data, k, np.random.default_rng(seed))
        finally:
            self._executor = None
        positions = np.asarray(picks.positions, dtype=np.int64)
        self._check_picks(positions, picks, data.n, k)
        prov = Provenance(
            method=self.name, params=self.get_params(), budget=budget,
            n_selected=len(positions), n_candidates=data.n, seed=seed,
            dataset=data.dataset, dataset_fingerprint=data.fingerprint,
            inputs=dict(data.inputs), info=dict(picks.info), library_version=__version__)
        return Selection(
            indices=data.row_idx[positions],
            weights=None if picks.weights is None else np.asarray(picks.weights, np.float64),
            scores=None if picks.scores is None else np.asarray(picks.scores, np.float64),
            sample_ids=None if data.sample_ids is None
            else ids_array(take(data.sample_ids, positions)),
            provenance=prov)

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        raise NotImplementedError

    # -- shared validation -----------------------------------------------------------------
    def _validate(self, data: SelectionInput) -> None:
        if data.n == 0:
            raise EmptyDatasetError(f"{self.name}: no candidates to select from "
                                    f"(dataset {data.dataset!r} has no 'train' rows)")
        where = f" of {data.dataset!r}" if data.dataset != "<memory>" else ""
        self._check_aligned(data)
        if self.needs.labels and data.labels is None:
            raise MissingInputError(f"{self.name} needs labels: the dataset{where} has no label "
                                    "column (ingest with --label-column)")
        if self.needs.embeddings:
            if data.embeddings is None:
                raise MissingInputError(f"{self.name} needs embeddings: run "
                                        f"`curate embed {_name(data)}`")
            if data.embeddings.ndim != 2 or len(data.embeddings) != data.n:
                raise SchemaError(f"{self.name}: embeddings must be (n={data.n}, d); "
                                  f"got {data.embeddings.shape}")
            if not all_finite(data.embeddings):
                raise SchemaError(f"{self.name}: embeddings{where} contain NaN or inf")
        if self.needs.signals:
            if data.signals is None:
                raise MissingInputError(f"{self.name} needs signals: run "
                                        f"`curate signals train {_name(data)}`")
            s = data.signals
            if s.train_losses.ndim != 2 or s.train_losses.shape[1] != data.n:
                raise SchemaError(f"{self.name}: train_losses must be (E, n={data.n}); "
                                  f"got {s.train_losses.shape}")
            if not (all_finite(s.train_losses.T) and all_finite(s.val_losses.T)):
                raise SchemaError(f"{self.name}: signals contain NaN or inf losses")
        if self.needs.groups and data.groups is None:
            raise MissingInputError(f"{self.name} needs groups: pass --group-column COLUMN")
        if self.needs.model and data.model is None:
            raise MissingInputError(f"{self.name} needs a trained model: pass --model ID "
                                    "(from `curate subsets train`)")
        if self.needs.target and data.target is None:
            raise MissingInputError(f"{self.name} needs a target domain: pass --target DATASET")
        if self.needs.target and data.embeddings is not None and data.target.ndim == 2 \
                and data.target.shape[1] != data.embeddings.shape[1]:
            raise SchemaError(f"{self.name}: target has dimension {data.target.shape[1]}, the "
                              f"pool {data.embeddings.shape[1]}")
        if self.needs.target and (len(data.target) == 0
                                  or not np.isfinite(data.target).all()):
            raise SchemaError(f"{self.name}: the target set is empty or has NaN/inf values")
        self._check_input(data)

    def _check_aligned(self, data: SelectionInput) -> None:
        """Every per-candidate array has exactly one row per candidate (whether or not this
        method uses it), ``row_idx`` is 1-D with unique values, labels are codes ≥ 0."""
        rows = np.asarray(data.row_idx)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise SchemaError(f"{self.name}: row_idx must be a 1-D integer array; got shape "
                              f"{rows.shape} of {rows.dtype}")
        if dup := count_duplicates(rows):
            raise SchemaError(f"{self.name}: row_idx must be unique; got {dup} duplicated "
                              "value(s)")
        per_row = {"labels": data.labels, "embeddings": data.embeddings, "groups": data.groups,
                   "sample_ids": data.sample_ids, "text_keys": data.text_keys,
                   "signals.train_losses (columns)": None if data.signals is None
                   else np.asarray(data.signals.train_losses).T}
        for what, arr in per_row.items():
            dims = 1 if isinstance(arr, pl.Series) else np.ndim(arr)
            if arr is not None and (dims == 0 or len(arr) != data.n):
                got = "a scalar" if dims == 0 else f"{len(arr)} rows"
                raise SchemaError(f"{self.name}: {what} must have one row per candidate "
                                  f"(n={data.n}); got {got}")
        if data.labels is not None:
            labels = np.asarray(data.labels)
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) \
                    or (len(labels) and labels.min() < 0):
                raise SchemaError(f"{self.name}: labels must be a 1-D array of integer class "
                                  f"codes ≥ 0 (SelectionInput.from_arrays encodes any labels); "
                                  f"got {labels.dtype} of shape {labels.shape}")

    def _check_picks(self, positions: np.ndarray, picks: Picks, n: int, k: int) -> None:
        # Internal invariants: a failure here is a bug in the method, not the user's input.
        if self.exact_budget and len(positions) != k:
            raise RuntimeError(f"{self.name} returned {len(positions)} rows for a budget of {k}")
        if len(positions) > k or len(positions) == 0:
            raise RuntimeError(f"{self.name} returned {len(positions)} rows (budget {k})")
        if positions.ndim != 1 or count_duplicates(positions):
            raise RuntimeError(f"{self.name} returned duplicate or non-1-D positions")
        if len(positions) and (positions.min() < 0 or positions.max() >= n):
            raise RuntimeError(f"{self.name} returned positions outside [0, {n})")
        for arr, what in ((picks.scores, "scores"), (picks.weights, "weights")):
            if arr is not None and len(arr) != len(positions):
                raise RuntimeError(f"{self.name} returned {what} not aligned with positions")
        if picks.weights is not None and (np.asarray(picks.weights) < 0).any():
            raise RuntimeError(f"{self.name} returned negative weights")


def _name(data: SelectionInput) -> str:
    return data.dataset if data.dataset != "<memory>" else "NAME"


# -- registry --------------------------------------------------------------------------------
REGISTRY: dict[str, type[Selector]] = {}


def register(name: str):
    """Class decorator: register a selector under a lowercase name."""
    def wrap(cls: type[Selector]) -> type[Selector]:
        key = name.lower()
        if key in REGISTRY:
            raise ValueError(f"selector {key!r} registered twice")
        cls.name = key
        doc = (cls.__doc__ or "").strip().splitlines()
        cls.summary = doc[0] if doc else ""
        REGISTRY[key] = cls
        return cls
    return wrap


def available_methods() -> list[str]:
    _load_methods()
    return sorted(REGISTRY)


def describe_methods() -> list[dict[str, str]]:
    """One row per registered method (``curate methods``): its name, what it needs, its
    parameters (comma-joined) and its one-line summary."""
    rows = []
    for name in available_methods():
        cls = get_selector_class(name)
        rows.append({"method": name, "kind": "selector", "needs": cls.needs.describe(),
                     "params": ", ".join(cls.param_names()), "summary": cls.summary})
    return rows


def get_selector_class(name: str) -> type[Selector]:
    _load_methods()
    key = str(name).lower()
    if key not in REGISTRY:
        raise UnknownMethodError(f"unknown method {name!r}{did_you_mean(key, REGISTRY)} "
                                 f"(available: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[key]


def make_selector(name: str, **params: Any) -> Selector:
    """Instantiate a registered selector; unknown parameters get a clear error."""
    cls = get_selector_class(name)
    allowed = cls.param_names()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidParameterError(f"{cls.name} has no parameter {unknown[0]!r}; "
                                    f"parameters: {', '.join(allowed) or 'none'}")
    selector = cls(**params)
    selector.check_params()
    return selector


def _load_methods() -> None:
    import curate.methods  # noqa: F401  (registers every method on import)
