"""One entry point for fan-out queries from Python, the CLI and the service.

Methods: ``topk`` and ``mmr`` (baselines), ``teacher`` (the RL fan-out policy, best-of-N by
the composite reward: slow, high quality) and ``diffusion`` (the distilled set denoiser: one
sampling pass). The last two need a stored model id (``model``).

Input is validated here, so Python callers and the service get the same one-line
``InvalidParameterError``: ``check_text``, ``check_vector``, ``check_model_id``,
``retrieval.objectives.check_weights``, and k, seed, mmr_lambda, best_of, steps, guidance
(``curate.checks``) whatever the method. ``deadline`` bounds a query's work
(``core.deadline``: checked between stages, and once a step inside the retrievers' long loops,
so a cut-off query stops within one step)."""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core.checks import check_int, check_number, check_seed
from core.deadline import check_deadline, deadline_scope
from core.encoders import query_backend
from core.errors import CurateError, InvalidParameterError
from retrieval.index import VectorIndex, load_index, normalise
from retrieval.objectives import DEFAULT_WEIGHTS, check_weights, score_sets
from retrieval.retriever import (
    MAX_BEST_OF,
    MAX_POOL,
    MAX_REFINE,
    MAX_ROUNDS,
    MAX_STEPS,
    RETRIEVERS,
    Retriever,
    retriever_class,
)
from retrieval.views import VIEWS, as_views
from stores import Store

METHODS = tuple(RETRIEVERS)
MAX_TEXT = 10_000           # characters; MiniLM reads the first 256 word pieces anyway
MODEL_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")     # the store's artifact names


class FanoutEngine:
    """Index, vectors and sample texts loaded once; answers fan-out queries (used by the CLI
    and, kept in memory, by the service)."""

    def __init__(self, store: Store, index_name: str, max_k: int = 100,
                 micro_batch: bool = False, thread_init: Callable[[], Any] | None = None):
        """``micro_batch``: concurrent callers share batched calls — text queries one encoder
        call, default-setting queries of a ``batched`` method (teacher, diffusion, ascent) one
        call (``retrieval.batching``; the service turns it on). ``thread_init``: run at the
        start of each batching thread."""
        t0 = time.perf_counter()
        self.index_name, self.max_k, self.micro_batch = index_name, max_k, micro_batch
        self.thread_init = thread_init
        self.batchers: dict[tuple, Any] = {}
        self._loading, self._batching = threading.Lock(), threading.Lock()
        self.index: VectorIndex = load_index(store, index_name)
        meta = self.index.meta
        vectors, items = store.embeddings(meta["dataset"], meta["embedding"])
        self.vectors = normalise(np.asarray(vectors))
        #: the encoder backend text queries are embedded with: the items' own
        self.query_backend = query_backend(meta, items.backend)
        info = store.dataset_info(meta["dataset"])
        cols = ["sample_id"] + ([info.text_column] if info.text_column else [])
        frame = store.samples(info.name, cols)
        self.sample_ids = frame["sample_id"].to_list()
        self.texts = frame[info.text_column].to_list() if info.text_column else None
        self.store = store
        self.models: dict[str, Any] = {}
        self._kinds: dict[str, str] = {}          # model id → its kind, once loaded
        #: model id → (view rule, view names) of the query set it was trained on
        self.view_rules: dict[str, tuple[str, list[str]]] = {}
        self._plain: dict[str, Retriever] = {}
        self.load_s = time.perf_counter() - t0

    @property
    def text_queries(self) -> bool:
        """Whether the index can be queried by text (it is built on MiniLM embeddings)."""
        from core.encoders import MODEL_NAME

        return self.index.meta.get("embedding") == MODEL_NAME

    def servable_models(self) -> list[str]:
        """Ids of the stored teacher / diffusion / relevance models trained on this engine's
        index (one whose model.json cannot be read is left out; asked for by id, it says
        why)."""
        from stores import files

        frame = self.store.models()
        out = []
        for model_id, kind in zip(frame["id"].to_list(), frame["kind"].to_list(), strict=True):
            if kind not in ("teacher", "diffusion", "relevance"):
                continue
            try:
                meta = files.read_json(self.store.model_path(model_id) / "model.json")
            except (OSError, ValueError):
                continue
            if meta.get("index") == self.index_name:
                out.append(model_id)
        return out

    def warm_up(self, models: list[str] | None = None) -> dict[str, Any]:
        """Load now what queries would otherwise load on first use: the text encoder (when
        the index takes text queries; one encoding runs, so the first request pays nothing)
        and ``models`` (ids; None: every ``servable_models``). Returns what is loaded.

        A model named in ``models`` that cannot be loaded is an error. With ``models=None``
        one that cannot (e.g. written by an older Curate) is skipped — a store's stale model
        does not stop the others being served — and ``skipped`` maps its id to the reason
        (a request naming it gets that error)."""
        if self.text_queries:
            self._embed(("warm up",), None)
        skipped: dict[str, str] = {}
        for model_id in self.servable_models() if models is None else models:
            try:
                self.load_model(model_id)
            except CurateError as exc:
                if models is not None:
                    raise
                skipped[model_id] = (str(exc).splitlines() or [repr(exc)])[0]
        return {"encoder": self.text_queries, "models": sorted(self.models),
                "skipped": skipped}

    def load_model(self, model_id: str):
        """The teacher, diffusion or relevance model ``model_id`` (its kind read from the
        store)."""
        from stores import files

        check_model_id(model_id)
        kind = files.read_json(self.store.model_path(model_id) / "model.json").get("kind")
        if kind not in ("teacher", "diffusion", "relevance"):
            raise InvalidParameterError(f"model {model_id!r} is a {kind!r} model; the service "
                                        "serves teacher, diffusion and relevance models")
        return self._model(kind, model_id)

    def _model(self, method: str, model_id: str | None):
        """The loaded teacher / diffusion / relevance model ``model_id`` (cached: loaded
        once)."""
        made_by = {"teacher": "curate fanout train-teacher",
                   "diffusion": "curate fanout train-diffusion",
                   "relevance": "curate fanout train-relevance"}[method]
        if model_id is None:
            raise InvalidParameterError(f"method {method!r} needs a model id (from "
                                        f"`{made_by}`)")
        check_model_id(model_id)
        with self._loading:            # concurrent first requests load a model once
            if model_id not in self.models:
                self.models[model_id] = self._load(method, model_id, made_by)
                self._kinds[model_id] = method
        if self._kinds.get(model_id, method) != method:     # loaded before as another kind
            raise InvalidParameterError(f"model {model_id!r} is a "
                                        f"{self._kinds[model_id]!r} model; {method!r} needs "
                                        f"one from `{made_by}`")
        return self.models[model_id]

    def _load(self, method: str, model_id: str, made_by: str):
        from stores import files

        meta = files.read_json(self.store.model_path(model_id) / "model.json")
        if meta.get("kind") != method:
            raise InvalidParameterError(f"model {model_id!r} is a {meta.get('kind')!r} "
                                        f"model; method {method!r} needs one from "
                                        f"`{made_by}`")
        if meta.get("index") != self.index_name:
            raise InvalidParameterError(f"model {model_id!r} was trained on index "
                                        f"{meta.get('index')!r}; this engine serves "
                                        f"{self.index_name!r}")
        from retrieval.queries import model_views

        self.view_rules[model_id] = model_views(self.store, meta)
        if method == "teacher":
            from retrieval.teacher import load_teacher

            return load_teacher(self.store, model_id, self.index, self.vectors)
        if method == "relevance":
            from retrieval.relevance import load_relevance

            return load_relevance(self.store, model_id)
        from retrieval.diffusion import DiffusionRetriever, load_diffusion

        model = load_diffusion(self.store, model_id)[0]
        model.warm_up(DiffusionRetriever.steps, DiffusionRetriever.guidance)
        return model

    def _batcher(self, key: tuple, fn, **kwargs):
        """The shared ``MicroBatcher`` for ``key`` (one worker thread per key, made once)."""
        with self._batching:
            if key not in self.batchers:
                from retrieval.batching import MicroBatcher

                self.batchers[key] = MicroBatcher(fn, name=f"batch-{key[0]}",
                                                  thread_init=self.thread_init, **kwargs)
        return self.batchers[key]

    def batch_stats(self) -> list[dict[str, Any]]:
        """Each shared call so far (``micro_batch``): ``call`` names it (``encoder``, or
        method/model/k), with ``MicroBatcher.stats`` (calls, items, busy seconds)."""
        with self._batching:
            batchers = list(self.batchers.items())
        return [{"call": "/".join(str(x) for x in key), **b.stats()} for key, b in batchers]

    def _score_batch(self, batch: tuple[np.ndarray, np.ndarray]) -> list[dict[str, float]]:
        """The objectives of B answered queries at once (the service's shared objectives
        call, default weights): one pool search and one ``score_sets`` over (B, d) queries
        and their (B, k) sets, instead of one per request thread (README, "Service load":
        what it changed under 16 clients); each query's numbers are the same."""
        Q, rows = batch
        out = score_sets(self.index, self.vectors, Q, rows)
        return [{m: float(v[i]) for m, v in out.items()} for i in range(len(Q))]

    def _embed(self, texts: tuple[str, ...], deadline: float | None) -> np.ndarray:
        """(len(texts), 384) MiniLM vectors; with ``micro_batch`` concurrent callers share
        one encoder call."""
        from retrieval.views import embed_groups

        embed = functools.partial(embed_groups, backend=self.query_backend)
        if not self.micro_batch:
            return embed([texts])[0]
        return self._batcher(("encoder",), embed, stack=list).submit(texts, deadline)

    def _query_views(self, text: str | None, vector: Any, views: int | None,
                     deadline: float | None, extra: list[str] | None = None,
                     rule: tuple[str, list[str]] = ("colon", []),
                     model: str | None = None) -> np.ndarray:
        """(1, V, d) views of a query text or vector, validated. ``extra``: the query's other
        views as texts (V − 1 of them), for a model trained on a query set's view columns
        (``rule`` ``columns``, from ``retrieval.queries.model_views``): such a model refuses
        a query without them rather than guess them from the text."""
        n = views or 1
        names = rule[1][1:] or [f"view {i}" for i in range(1, n)]
        if extra is not None:
            if not isinstance(extra, list) or not all(isinstance(v, str) for v in extra):
                raise InvalidParameterError("views must be a list of texts")
            if len(extra) != n - 1:
                want = (f"{n - 1} ({', '.join(names)})" if n > 1
                        else "none (this method reads one view)")
                raise InvalidParameterError(f"the query brings {len(extra)} extra view(s); "
                                            f"the method takes {want}")
            if vector is not None and extra:
                raise InvalidParameterError("views are texts: give the query as text with "
                                            "its views, not as a vector")
        elif rule[0] == "columns" and n > 1 and vector is not None:
            raise InvalidParameterError(
                f"model {model!r} was trained on the query views ({', '.join(rule[1]) or n}) "
                "of its query set's columns: it needs a text query with its views, not a "
                "vector")
        elif rule[0] == "columns" and n > 1:
            raise InvalidParameterError(
                f"model {model!r} was trained on the query views "
                f"({', '.join(rule[1]) or n}) of its query set's columns; give the other "
                f"view(s) with the query (views: [{', '.join(names)}]) — they are not "
                "guessed from the text")
        if text is not None:
            check_text(text)
            for v in extra or ():
                check_text(v)
            if not self.text_queries:
                from core.encoders import MODEL_NAME

                raise InvalidParameterError(
                    f"index {self.index_name!r} is built on embedding "
                    f"{self.index.meta.get('embedding')!r} ({self.index.dim}-dim); text queries "
                    f"need {MODEL_NAME} embeddings — pass a query vector instead, or index a "
                    "dataset embedded with `curate embed`")
            from retrieval.views import query_texts

            # given views are used as they are; else the baselines read the full text, a
            # 3-view "colon" model gets (full, head, body) of a "head: body" text
            # (``retrieval.views``), any other model the text in every view
            texts = ((text, *extra) if extra else
                     query_texts(text, views=views == len(VIEWS) and rule[0] == "colon"))
            E = self._embed(tuple(texts), deadline)
            return as_views(E[None], views)                          # (1, V, d)
        vec = check_vector(vector, self.index.dim)
        return as_views(vec[None, None], views)

    def retriever(self, method: str, model: str | None = None, relevance: str | None = None,
                  **params: Any) -> Retriever:
        """The registered retriever ``method`` over this engine's index (``model``: the
        stored teacher / diffusion model id it needs; ``relevance``: a stored relevance
        model's id, ``retrieval.relevance``; each loaded once and cached)."""
        cls = retriever_class(method)
        mdl = rel = None
        if relevance is not None:
            cls.check_takes_relevance()                 # before loading anything
        if cls.model_kind is not None:
            mdl = self._model(cls.model_kind, model)
        if relevance is not None:
            rel = self._model("relevance", relevance)
            if mdl is not None and rel.views > 1 and (self.view_rules[relevance]
                                                      != self.view_rules[model]):
                raise InvalidParameterError(
                    f"relevance model {relevance!r} reads the query views "
                    f"{self.view_rules[relevance]}; the {cls.model_kind} model {model!r} "
                    f"{self.view_rules[model]}: train both on the same query set")
        if not params and cls.model_kind is None and rel is None:
            if method not in self._plain:
                self._plain[method] = cls(self.index, self.vectors)
            return self._plain[method]
        return cls(self.index, self.vectors, model=mdl, relevance=rel, **params)

    def query(self, *, text: str | None = None, vector: Any = None, k: int = 10,
              method: str = "topk", weights: dict[str, float] | None = None,
              mmr_lambda: float = 0.5, mmr_pool: int = 200, dpp_theta: float = 0.7,
              model: str | None = None, best_of: int | None = None,
              rounds: int | None = None, seed: int | None = None,
              steps: int | None = None, guidance: float | None = None,
              refine: int | None = None,
              objectives: bool = True, deadline: float | None = None,
              views: list[str] | None = None, relevance: str | None = None
              ) -> dict[str, Any]:
        """One query → its set: items (row_idx, sample_id, text, score = cosine to the query,
        sub_query = which fan-out slot found it, −1 for the query itself), objectives (None
        with ``objectives=False``, which skips the ``POOL``-item neighbourhood search),
        timings. ``views``: the query's other views as texts, for a model trained on a query
        set's view columns (see ``_query_views``). ``method`` is any registered retriever
        (``retrieval.retriever.RETRIEVERS``);
        its parameters: ``mmr_lambda``/``mmr_pool`` (mmr), ``dpp_theta`` (dpp; the pool is
        ``mmr_pool``), ``best_of``/``rounds`` (teacher: N and CEM rounds; diffusion: sets
        sampled and ranked), ``steps``/``guidance`` (diffusion), ``refine`` (teacher,
        diffusion: sweeps of reward-guided grounding, ``retrieval.ascent``; ascent: its
        sweeps over the top ``mmr_pool``). ``relevance``: a relevance model's id
        (``curate fanout train-relevance``): mmr, dpp, ascent and the teacher's / diffusion's
        ``refine`` then select by it instead of cosine. ``weights`` drive the teacher's search,
        diffusion's ranking and grounding, ascent and the reported composite. ``seed`` fixes
        the sampling (None: a fresh draw / the model's seed). ``deadline`` (a
        ``time.monotonic()`` instant) stops the query with ``DeadlineExceededError`` once it
        has passed — between stages, and inside the retrieval within one step of its loop
        (``core.deadline``; the service's timeout)."""
        if method not in METHODS:
            raise InvalidParameterError(f"method must be one of {', '.join(METHODS)}; got "
                                        f"{method!r}")
        check_int("", "k", k, 1, self.max_k)
        if (text is None) == (vector is None):
            raise InvalidParameterError("give exactly one of a query text or a query vector")
        # every parameter is checked whatever the method, so a bad one never passes unseen
        weights = check_weights(weights)
        check_number("", "mmr_lambda", mmr_lambda, 0.0, 1.0)
        check_number("", "dpp_theta", dpp_theta, 0.0, 1.0, high_open=True)
        check_int("", "mmr_pool", mmr_pool, 1, MAX_POOL)
        if seed is not None:
            check_seed(seed)
        for name, value, lo, hi in (("best_of", best_of, 1, MAX_BEST_OF),
                                    ("rounds", rounds, 0, MAX_ROUNDS),
                                    ("steps", steps, 1, MAX_STEPS),
                                    ("refine", refine, 0, MAX_REFINE)):
            if value is not None:
                check_int("", name, value, lo, hi)
        if guidance is not None:
            check_number("", "guidance", guidance, 0.0)
        if not isinstance(objectives, bool):
            raise InvalidParameterError(f"objectives must be true or false; got {objectives!r}")
        check_deadline(deadline, "before it started")
        params = {"mmr": {"lam": mmr_lambda, "pool": mmr_pool},
                  "dpp": {"theta": dpp_theta, "pool": mmr_pool},
                  "ascent": {"pool": mmr_pool, "sweeps": refine},
                  "teacher": {"best_of": best_of, "rounds": rounds, "refine": refine},
                  "diffusion": {"steps": steps, "guidance": guidance, "best_of": best_of,
                                "refine": refine}
                  }.get(method, {})
        params = {p: v for p, v in params.items() if v is not None}
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        retr = self.retriever(method, model, relevance, **params)
        reads = model if retr.model_kind else relevance       # the model whose views it reads
        rule = self.view_rules.get(reads, ("colon", [])) if reads else ("single", [])
        wide = retr.fans_out or retr.relevance is not None
        views = self._query_views(text, vector, retr.n_views if wide else 1,
                                  deadline, views, rule, reads)
        if text is not None:
            timings["embed_s"] = time.perf_counter() - t0
        check_deadline(deadline, "embedding the query")
        q = views[:, 0]
        t0 = time.perf_counter()
        if retr.k_fixed is not None and k != retr.k_fixed:
            raise InvalidParameterError(f"{method}: the model returns k={retr.k_fixed} items; "
                                        f"got k={k}")
        shared = (self.micro_batch and retr.batched and seed is None and relevance is None
                  and weights == DEFAULT_WEIGHTS and retr.get_params() == retr.default_params())
        if shared:   # one batcher (one worker thread) per method, model and k: defaults only
            key = (method, model if retr.model_kind else None, k)   # a model-free method
            part = self._batcher(key, functools.partial(retr.batch_stage, k=k)  # ignores it
                                 ).submit(views[0], deadline)
            check_deadline(deadline, "the shared model call")
            res = retr.finish_stage(views, part[None], k)
        else:
            with deadline_scope(deadline):       # its long loops stop soon after the deadline
                res = retr.retrieve(views, k, weights=weights, seed=seed)
        timings["retrieve_s"] = time.perf_counter() - t0
        check_deadline(deadline, "retrieval")
        obj = None
        if objectives:
            t0 = time.perf_counter()
            if self.micro_batch and weights == DEFAULT_WEIGHTS:
                obj = self._batcher(("objectives", k), self._score_batch, stack=_stack_sets
                                    ).submit((q[0], res.row_idx[0]), deadline)
            else:
                obj = {m: float(v[0]) for m, v in
                       score_sets(self.index, self.vectors, q, res.row_idx, weights).items()}
            timings["objectives_s"] = time.perf_counter() - t0
        items = [{"row_idx": int(r), "sample_id": self.sample_ids[int(r)],
                  "text": self.texts[int(r)] if self.texts is not None else None,
                  "score": float(sc), "sub_query": int(src)}
                 for r, sc, src in zip(res.row_idx[0], res.scores[0], res.source[0],
                                       strict=True)]
        return {"method": method, "k": k, "index": self.index_name,
                "index_meta": self.index.meta,
                "model_version": model if retr.model_kind else None,
                "relevance_model": relevance, "items": items,
                "objectives": obj, "timings": timings}


def _stack_sets(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(B, d) float32 queries and (B, k) int64 sets from B (query, set) pairs."""
    return (np.stack([np.asarray(q, dtype=np.float32) for q, _ in items]),
            np.stack([np.asarray(r, dtype=np.int64) for _, r in items]))


def check_text(text: Any) -> str:
    """A query text: a non-blank string of at most ``MAX_TEXT`` characters, valid Unicode."""
    if not isinstance(text, str):
        raise InvalidParameterError(f"the query text must be a string; got "
                                    f"{type(text).__name__}")
    if not text.strip():
        raise InvalidParameterError("the query text is empty")
    if len(text) > MAX_TEXT:
        raise InvalidParameterError(f"the query text has {len(text)} characters; at most "
                                    f"{MAX_TEXT} are allowed")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameterError("the query text is not valid Unicode (it holds a lone "
                                    "surrogate)") from None
    return text


def check_vector(vector: Any, dim: int) -> np.ndarray:
    """A query vector as a (dim,) float32 unit vector: finite numbers, not all zeros (scaled
    before it is normalised, so any finite float64 values work)."""
    try:
        vec = np.asarray(vector, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidParameterError("the query vector must be a list of numbers") from None
    if vec.shape[0] != dim:
        raise InvalidParameterError(f"query vector has dimension {vec.shape[0]}; the "
                                    f"index has {dim}")
    if not np.isfinite(vec).all():
        raise InvalidParameterError("the query vector must hold finite numbers; got NaN or "
                                    "inf")
    top = np.abs(vec).max()
    if top == 0:
        raise InvalidParameterError("the query vector is all zeros; it has no direction")
    vec = vec / top
    return (vec / np.linalg.norm(vec)).astype(np.float32)


def check_model_id(model_id: Any) -> str:
    """A model id as the store writes them (``teacher-<hex>``): letters, digits, '_.-'."""
    if not isinstance(model_id, str) or not MODEL_ID.match(model_id):
        raise InvalidParameterError(f"a model id starts with a letter and uses only letters, "
                                    f"digits, '_', '-', '.' (at most 64 characters); got "
                                    f"{model_id!r}")
    return model_id


def fanout_query(store: Store, index_name: str, **kwargs: Any) -> dict[str, Any]:
    """One-shot query (loads the index); see ``FanoutEngine.query`` for the arguments."""
    engine = FanoutEngine(store, index_name, max_k=kwargs.pop("max_k", 100))
    out = engine.query(**kwargs)
    out["timings"] = {"load_s": engine.load_s, **out["timings"]}
    return out
