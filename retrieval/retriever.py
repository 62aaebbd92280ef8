"""The ``Retriever`` base class, the registry, and ``FanoutResult`` — one interface for every
fan-out retrieval method, as ``curate.selector`` is for selection.

A method subclasses ``Retriever``, declares its parameters as annotated class attributes with
defaults (``lam: float = 0.5``), and implements one hook::

    def _retrieve(self, V: np.ndarray, k: int, weights: dict, seed: int | None,
                  exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]

taking the queries' views V (B, V, d) (unit vectors; view 0 is the full query,
``retrieval.views``) and returning row ids (B, k) and the fan-out slot that found each
(B, k; −1: the query itself). The base class owns the rest:

- parameters are keyword-only, checked once at construction against their annotations
  (``"5"`` is not an int, ``True`` is not a count) and by the method's ``_check_params``;
  an unknown name is refused with the list of known ones;
- ``retrieve(queries, k, *, weights=None, seed=None, exclude=None) -> FanoutResult`` checks
  k (an integer in [1, n − excluded]), the query shape and dimension, the weights
  (``retrieval.objectives.check_weights``) and the seed, then **guarantees k distinct, valid
  row ids for every query**: a slot the method left empty (−1) or filled with a duplicate or
  an excluded row is refilled with the query's nearest unused item (``complete``), and the
  scores are the cosines of the final items to the query;
- ``exclude`` (B,) is one row per query that is never returned (−1: none; the benchmark's
  hypernym, which is not one of its own hyponyms).

A learned relevance model (``retrieval.relevance``, ``relevance=`` at construction) replaces
cosine as the relevance term of the methods with ``uses_relevance`` (mmr, dpp, ascent, and
teacher / diffusion through ``refine``); they then read as many query views as it was
trained on (a one-view model fits any method; a multi-view one must match a model's view
count here, and ``FanoutEngine`` also checks that both were trained on the same view rule).
With ``best_of`` > 1, the teacher and the diffusion retriever still choose among their
candidate sets by the cosine composite; only ``refine`` scores by the relevance model.

Registry: ``RETRIEVERS`` maps a name to ``"module:Class"`` (modules are imported on use, so
``topk`` never imports torch); ``make_retriever(name, index, vectors, model=..., **params)``
builds one and ``retriever_class(name)`` gives the class. ``model`` is the loaded teacher
(``retrieval.teacher.Teacher``) or diffusion model (``retrieval.diffusion.SetDiffusion``)
for the methods whose ``model_kind`` names one.
"""

from __future__ import annotations

import functools
import importlib
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from core.checks import check_annotated, check_int, check_seed, did_you_mean
from core.errors import InvalidParameterError, SchemaError, UnknownMethodError
from retrieval.index import VectorIndex
from retrieval.objectives import check_weights

#: bounds of the model-based methods' query-time work (validated by the methods, shown in the
#: service's schema): the teacher's N and CEM rounds, the diffusion sampler's Heun steps, and
#: the sweeps of reward-guided grounding (``retrieval.ascent``: teacher, diffusion, ascent)
MAX_BEST_OF, MAX_ROUNDS, MAX_STEPS, MAX_REFINE = 64, 20, 100, 10
#: the largest candidate pool a re-ranking method (mmr, dpp) takes: DPP holds three (P, P)
#: float64 arrays per query (P = 2,000: 96 MB)
MAX_POOL = 2_000

RETRIEVERS: dict[str, str] = {
    "topk": "retrieval.baselines:TopKRetriever",
    "mmr": "retrieval.baselines:MMRRetriever",
    "dpp": "retrieval.dpp:DPPRetriever",
    "ascent": "retrieval.ascent:AscentRetriever",
    "teacher": "retrieval.teacher:TeacherRetriever",
    "diffusion": "retrieval.diffusion:DiffusionRetriever",
}


@dataclass(frozen=True)
class FanoutResult:
    """A batch of retrieved sets; arrays are read-only.

    row_idx (B, k) int64: k distinct valid row ids per query, in the method's order.
    scores  (B, k) float32: cosine of each item to the query.
    source  (B, k) int64: the fan-out slot (sub-query) that found each item; −1: the query.
    """

    row_idx: np.ndarray
    scores: np.ndarray
    source: np.ndarray

    def __post_init__(self) -> None:
        for name, dtype in (("row_idx", np.int64), ("scores", np.float32),
                            ("source", np.int64)):
            arr = np.array(getattr(self, name), dtype=dtype)     # a private copy
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if not self.row_idx.shape == self.scores.shape == self.source.shape \
                or self.row_idx.ndim != 2:
            raise SchemaError(f"FanoutResult arrays must all be (B, k); got "
                              f"{self.row_idx.shape}, {self.scores.shape}, "
                              f"{self.source.shape}")

    @property
    def k(self) -> int:
        return int(self.row_idx.shape[1])

    def __len__(self) -> int:
        return int(self.row_idx.shape[0])


class Retriever:
    """Base class of every fan-out retriever. See the module docstring."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: "teacher" / "diffusion": the stored model kind the method needs (None: no model)
    model_kind: ClassVar[str | None] = None
    #: True for methods that read every query view (the others read view 0, the full query)
    fans_out: ClassVar[bool] = False
    #: True for methods whose answer depends on the seed
    seeded: ClassVar[bool] = False
    #: True for methods whose answer depends on the request's objective weights
    weighted: ClassVar[bool] = False
    #: True for methods that select by a relevance term a learned relevance model can replace
    #: (``retrieval.relevance``: mmr, dpp, ascent, and teacher / diffusion with ``refine``)
    uses_relevance: ClassVar[bool] = False
    #: True for methods whose cost a query falls steeply with the batch (a model call, a
    #: vectorised search): the service runs concurrent default-setting queries as one call
    batched: ClassVar[bool] = False

    def __init__(self, index: VectorIndex, vectors: np.ndarray, *, model: Any = None,
                 relevance: Any = None, **params: Any):
        known = self.param_names()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidParameterError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)}; known: "
                f"{', '.join(known) or 'none'}")
        self.index, self.vectors = index, vectors
        if vectors.shape != (int(index.meta["n"]), index.dim):
            raise SchemaError(f"{self.name}: vectors are {vectors.shape}; the index holds "
                              f"({index.meta['n']}, {index.dim})")
        hints = _hints(type(self))
        for p in known:
            value = params.get(p, getattr(type(self), p))
            check_annotated(self.name, p, value, hints[p])
            setattr(self, p, value.item() if isinstance(value, np.generic) else value)
        if self.model_kind is not None and model is None:
            raise InvalidParameterError(f"method {self.name!r} needs a {self.model_kind} "
                                        "model (from `curate fanout train-"
                                        f"{self.model_kind}`)")
        self.model = model
        if relevance is not None:
            self.check_takes_relevance()
            if relevance.dim != index.dim:
                raise SchemaError(f"the relevance model reads {relevance.dim}-d vectors; the "
                                  f"index holds {index.dim}-d ones")
            views = getattr(model, "views", None) or getattr(
                getattr(model, "cfg", None), "views", None)
            # view 0 is always the full query: a one-view relevance model fits any model
            if views is not None and relevance.views > 1 and int(views) != relevance.views:
                raise InvalidParameterError(f"the relevance model reads {relevance.views} "
                                            f"query views; the {self.model_kind} model "
                                            f"{int(views)}")
        self.relevance = relevance
        self._check_params()

    @classmethod
    def check_takes_relevance(cls) -> None:
        """Raise InvalidParameterError unless the method selects by a relevance term."""
        if not cls.uses_relevance:
            raise InvalidParameterError(f"{cls.name} does not re-rank by relevance; a "
                                        "relevance model applies to "
                                        f"{', '.join(_relevance_methods())}")

    @classmethod
    def param_names(cls) -> list[str]:
        """The method's parameters: annotated class attributes that are not ClassVars."""
        return list(_param_names(cls))

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.param_names()}

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {p: getattr(cls, p) for p in cls.param_names()}

    def _check_params(self) -> None:
        """Raise InvalidParameterError for out-of-range parameters (override)."""

    @property
    def k_fixed(self) -> int | None:
        """The only k the method can return (a trained model's k), or None for any k."""
        return None

    @property
    def n_views(self) -> int | None:
        """How many query views the method reads (a trained model's, else a relevance
        model's), None: any."""
        views = getattr(self.model, "views", None)
        if views is None and self.relevance is not None:
            return self.relevance.views
        return views

    # -- the one entry point --------------------------------------------------------------
    def retrieve(self, queries: np.ndarray, k: int, *, weights: dict[str, float] | None = None,
                 seed: int | None = None, exclude: np.ndarray | None = None) -> FanoutResult:
        """Sets of k distinct rows for (B, d) query vectors or (B, V, d) views."""
        from retrieval.views import as_views

        n = int(self.index.meta["n"])
        V = as_views(_check_queries(queries, self.index.dim), self.n_views)
        B = V.shape[0]
        ex = None
        if exclude is not None:
            ex = np.asarray(exclude, dtype=np.int64).reshape(-1)
            if ex.shape[0] != B or ((ex < -1) | (ex >= n)).any():
                raise InvalidParameterError(f"exclude must hold one row id in [−1, {n}) per "
                                            f"query ({B}); got shape {ex.shape}")
        most = n - (0 if ex is None or (ex < 0).all() else 1)
        check_int(self.name, "k", k, 1, most)
        if self.k_fixed is not None and k != self.k_fixed:
            raise InvalidParameterError(f"{self.name}: the model returns k={self.k_fixed} "
                                        f"items; got k={k}")
        w = check_weights(weights)
        if self.weighted:                   # before any search runs, not after it
            from retrieval.ascent import check_relevance_weights

            check_relevance_weights(w, self.relevance is not None)
        if seed is not None:
            check_seed(seed)
        wide = self.fans_out or self.relevance is not None
        rows, source = self._retrieve(V if wide else V[:, :1], int(k), w, seed, ex)
        return self._result(V[:, 0], rows, source, ex)

    def _result(self, q: np.ndarray, rows: Any, source: Any,
                exclude: np.ndarray | None = None) -> FanoutResult:
        """The answer from a method's rows and sources (B, k) for unit queries q (B, d):
        refilled to k distinct valid rows (``complete``), scored by cosine to the query."""
        rows, source = complete(self.index, self.vectors, q, np.asarray(rows, dtype=np.int64),
                                np.asarray(source, dtype=np.int64), exclude)
        scores = np.einsum("bkd,bd->bk", self.vectors[rows], q)
        return FanoutResult(rows, scores, source)

    # -- the service's shared model call ---------------------------------------------------
    # An unseeded request under the default weights and parameters is answered in two
    # stages so that concurrent requests share one model call (``FanoutEngine`` with
    # ``micro_batch``): ``batch_stage`` runs on the stacked views of every request waiting
    # (one batching thread per model), ``finish_stage`` in each request's own thread on its
    # row of the batch's output. A method splits where the rest is per-query work that
    # releases the GIL (FAISS searches): the batching thread then starts the next model call
    # while the requests of the last one finish in parallel. By default the whole answer is
    # the batched stage.
    def batch_stage(self, V: np.ndarray, k: int) -> np.ndarray:
        """(B, ...) per-query output of the shared call on views V (B, V, d); default: the
        whole answer as (B, 2, k) rows and sources."""
        res = self.retrieve(V, k)
        return np.stack([res.row_idx, res.source], axis=1)

    def finish_stage(self, V: np.ndarray, part: np.ndarray, k: int) -> FanoutResult:
        """The answer for views V (B, V, d) from its rows ``part`` of ``batch_stage``."""
        return self._result(V[:, 0], part[:, 0], part[:, 1])

    def _retrieve(self, V: np.ndarray, k: int, weights: dict[str, float], seed: int | None,
                  exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, evaluated once per class: it compiles every
    annotation string (~1 ms), and the service builds a retriever for every request."""
    return typing.get_type_hints(cls)


@functools.cache
def _param_names(cls: type) -> tuple[str, ...]:
    return tuple(n for n, h in _hints(cls).items() if not n.startswith("_")
                 and typing.get_origin(h) is not ClassVar and h is not ClassVar
                 and n in _own_attributes(cls))


def _own_attributes(cls: type) -> set[str]:
    """Names given a default in ``cls`` or a Retriever subclass above it (not the base)."""
    out: set[str] = set()
    for klass in cls.__mro__:
        if klass is Retriever or not issubclass(klass, Retriever):
            continue
        out |= {n for n in vars(klass).get("__annotations__", {}) if n in vars(klass)}
    return out


def _check_queries(queries: Any, dim: int) -> np.ndarray:
    Q = np.asarray(queries, dtype=np.float32)
    if Q.ndim == 1:
        Q = Q[None]
    if Q.ndim not in (2, 3) or Q.shape[0] == 0 or Q.shape[-1] != dim:
        raise InvalidParameterError(f"queries must be (B, {dim}) vectors or (B, V, {dim}) "
                                    f"views with B ≥ 1; got shape {Q.shape}")
    if not np.isfinite(Q).all():
        raise InvalidParameterError("queries must hold finite numbers; got NaN or inf")
    if (np.abs(Q).max(axis=-1) == 0).any():
        raise InvalidParameterError("a query vector is all zeros; it has no direction")
    return Q


def complete(index: VectorIndex, vectors: np.ndarray, q: np.ndarray, rows: np.ndarray,
             source: np.ndarray, exclude: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Make every set k distinct valid rows: a slot holding −1, an out-of-range id, an
    excluded row or a repeat of an earlier slot is refilled, in order, with the query's
    nearest items not in the set (``source`` −1 for them). Only the sets that need it are
    searched: the index's k + 2 nearest neighbours of the query always hold enough unused
    items (at most k − m kept + 1 excluded of them are taken, for m slots to fill); where an
    approximate index returns fewer valid hits, exact cosines over ``vectors`` (n, d) decide.
    Shapes: q (B, d) unit rows, rows/source (B, k), exclude (B,) or None."""
    B, k = rows.shape
    n = len(vectors)
    rows, source = rows.copy(), source.copy()
    bad = (rows < 0) | (rows >= n)
    if exclude is not None:
        bad |= rows == exclude[:, None]
    order = np.argsort(np.where(bad, n, rows), axis=1, kind="stable")
    srt = np.take_along_axis(np.where(bad, -1, rows), order, axis=1)
    repeat = np.zeros_like(bad)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    np.put_along_axis(repeat, order[:, 1:], dup, axis=1)       # later copies are repeats
    bad |= repeat
    need = np.flatnonzero(bad.any(1))
    if len(need) == 0:
        return rows, source
    keep = np.where(bad[need], -1, rows[need])                  # (b, k) what stays
    ex = np.full(len(need), -1) if exclude is None else exclude[need]
    _, cand = index.search(q[need], min(n, k + 2))              # (b, k + 2) best first
    taken = (cand[:, :, None] == keep[:, None, :]).any(2) | (cand == ex[:, None]) | (cand < 0)
    m = bad[need].sum(1)
    short = (~taken).sum(1) < m
    if short.any():                                             # approximate index: exact
        sims = q[need[short]] @ vectors.T
        r, c = np.nonzero(keep[short] >= 0)
        sims[r, keep[short][r, c]] = -np.inf
        e = ex[short]
        sims[np.flatnonzero(e >= 0), e[e >= 0]] = -np.inf
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k + 2]
        cand = cand.copy()
        cand[short] = top
        taken[short] = ~np.isfinite(np.take_along_axis(sims, top, axis=1))
    free = np.where(taken, n, np.arange(cand.shape[1])[None, :])
    free_pos = np.sort(free, axis=1)                            # unused candidates, best first
    slot = np.clip(np.cumsum(bad[need], axis=1) - 1, 0, cand.shape[1] - 1)
    pos = np.take_along_axis(free_pos, slot, axis=1)
    fill = np.take_along_axis(cand, np.clip(pos, 0, cand.shape[1] - 1), axis=1)
    rows[need] = np.where(bad[need], fill, rows[need])
    source[need] = np.where(bad[need], -1, source[need])
    return rows, source


def retriever_class(name: str) -> type[Retriever]:
    """The registered class for ``name`` (its module imported now)."""
    if name not in RETRIEVERS:
        raise UnknownMethodError(f"unknown retrieval method {name!r}"
                                 f"{did_you_mean(name, RETRIEVERS)}; known: "
                                 f"{', '.join(RETRIEVERS)}")
    module, cls = RETRIEVERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_retriever(name: str, index: VectorIndex, vectors: np.ndarray, *, model: Any = None,
                   relevance: Any = None, **params: Any) -> Retriever:
    """Build the registered retriever ``name`` over ``index`` and its unit ``vectors``
    (``relevance``: a ``retrieval.relevance.Relevance`` for the methods that use one)."""
    return retriever_class(name)(index, vectors, model=model, relevance=relevance, **params)


def _relevance_methods() -> list[str]:
    return [n for n in RETRIEVERS if retriever_class(n).uses_relevance]


__all__ = ["MAX_BEST_OF", "MAX_POOL", "MAX_REFINE", "MAX_ROUNDS", "MAX_STEPS", "RETRIEVERS",
           "FanoutResult", "Retriever", "complete", "make_retriever", "retriever_class"]
