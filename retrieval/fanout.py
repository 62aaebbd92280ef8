"""One entry point for fan-out queries from Python, the CLI and the service.

Methods: ``topk`` and ``mmr`` (baselines), ``teacher`` (the RL fan-out policy, best-of-N by
the composite reward: slow, high quality) and ``diffusion`` (the distilled set denoiser: one
sampling pass). The last two need a stored model id (``model``).

Input is validated here, so Python callers and the service get the same one-line
``InvalidParameterError``: ``check_text``, ``check_vector``, ``check_model_id``,
``retrieval.objectives.check_weights``, and k, seed, mmr_lambda, best_of, steps, guidance
(``curate.checks``) whatever the method. ``deadline`` bounds a query's work
(``check_deadline`` between stages)."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import numpy as np

from curate.checks import check_int, check_number, check_seed
from curate.errors import DeadlineExceededError, InvalidParameterError
from retrieval.baselines import FanoutResult, MMRRetriever, TopKRetriever
from retrieval.index import VectorIndex, load_index, normalise
from retrieval.objectives import check_weights, set_objectives
from retrieval.views import as_views
from stores import Store

METHODS = ("topk", "mmr", "teacher", "diffusion")
POOL = 500                  # the query's neighbourhood for groundedness / coverage
BEST_OF, STEPS, GUIDANCE = 8, 6, 1.0   # teacher's N; diffusion's Heun steps and CFG weight
MAX_BEST_OF, MAX_STEPS = 64, 100   # the teacher's N; retrieval.diffusion's Heun steps
MAX_TEXT = 10_000           # characters; MiniLM reads the first 256 word pieces anyway
MODEL_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")     # the store's artifact names


class FanoutEngine:
    """Index, vectors and sample texts loaded once; answers fan-out queries (used by the CLI
    and, kept in memory, by the service)."""

    def __init__(self, store: Store, index_name: str, max_k: int = 100,
                 micro_batch: bool = False):
        """``micro_batch``: concurrent callers share batched calls — text queries one encoder
        call, unseeded teacher/diffusion queries one model call (``retrieval.batching``; the
        service turns it on)."""
        t0 = time.perf_counter()
        self.index_name, self.max_k, self.micro_batch = index_name, max_k, micro_batch
        self.batchers: dict[tuple, Any] = {}
        self._loading, self._batching = threading.Lock(), threading.Lock()
        self.index: VectorIndex = load_index(store, index_name)
        meta = self.index.meta
        self.vectors = normalise(np.asarray(store.embeddings(meta["dataset"],
                                                             meta["embedding"])[0]))
        info = store.dataset_info(meta["dataset"])
        cols = ["sample_id"] + ([info.text_column] if info.text_column else [])
        frame = store.samples(info.name, cols)
        self.sample_ids = frame["sample_id"].to_list()
        self.texts = frame[info.text_column].to_list() if info.text_column else None
        self.store = store
        self.models: dict[str, Any] = {}
        self.topk = TopKRetriever(self.index)
        self.load_s = time.perf_counter() - t0

    @property
    def text_queries(self) -> bool:
        """Whether the index can be queried by text (it is built on MiniLM embeddings)."""
        from curate.embedding import MODEL_NAME

        return self.index.meta.get("embedding") == MODEL_NAME

    def servable_models(self) -> list[str]:
        """Ids of the stored teacher / diffusion models trained on this engine's index (one
        whose model.json cannot be read is left out; asked for by id, it says why)."""
        from stores import files

        frame = self.store.models()
        out = []
        for model_id, kind in zip(frame["id"].to_list(), frame["kind"].to_list(), strict=True):
            if kind not in ("teacher", "diffusion"):
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
        and ``models`` (ids; None: every ``servable_models``). Returns what is loaded."""
        if self.text_queries:
            self._embed(("warm up",), None)
        for model_id in self.servable_models() if models is None else models:
            self.load_model(model_id)
        return {"encoder": self.text_queries, "models": sorted(self.models)}

    def load_model(self, model_id: str):
        """The teacher or diffusion retriever ``model_id`` (its kind read from the store)."""
        from stores import files

        check_model_id(model_id)
        kind = files.read_json(self.store.model_path(model_id) / "model.json").get("kind")
        if kind not in ("teacher", "diffusion"):
            raise InvalidParameterError(f"model {model_id!r} is a {kind!r} model; the service "
                                        "serves teacher and diffusion models")
        return self._model(kind, model_id)

    def _model(self, method: str, model_id: str | None):
        """The loaded teacher / diffusion retriever ``model_id`` (cached: loaded once)."""
        made_by = {"teacher": "curate fanout train-teacher",
                   "diffusion": "curate fanout train-diffusion"}[method]
        if model_id is None:
            raise InvalidParameterError(f"method {method!r} needs a model id (from "
                                        f"`{made_by}`)")
        check_model_id(model_id)
        with self._loading:            # concurrent first requests load a model once
            if model_id not in self.models:
                self.models[model_id] = self._load(method, model_id, made_by)
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
        if method == "teacher":
            from retrieval.teacher import load_teacher

            return load_teacher(self.store, model_id, self.index, self.vectors)
        from retrieval.diffusion import DiffusionRetriever, load_diffusion

        return DiffusionRetriever(load_diffusion(self.store, model_id)[0], self.index,
                                  self.vectors)

    def _batcher(self, key: tuple, fn, **kwargs):
        """The shared ``MicroBatcher`` for ``key`` (one worker thread per key, made once)."""
        with self._batching:
            if key not in self.batchers:
                from retrieval.batching import MicroBatcher

                self.batchers[key] = MicroBatcher(fn, name=f"batch-{key[0]}", **kwargs)
        return self.batchers[key]

    def _embed(self, texts: tuple[str, ...], deadline: float | None) -> np.ndarray:
        """(len(texts), 384) MiniLM vectors; with ``micro_batch`` concurrent callers share
        one encoder call."""
        from retrieval.views import embed_groups

        if not self.micro_batch:
            return embed_groups([texts])[0]
        return self._batcher(("encoder",), embed_groups, stack=list).submit(texts, deadline)

    def _query_views(self, text: str | None, vector: Any, method: str,
                     deadline: float | None) -> np.ndarray:
        """(1, V, d) views of a query text or vector, validated."""
        if text is not None:
            check_text(text)
            if not self.text_queries:
                from curate.embedding import MODEL_NAME

                raise InvalidParameterError(
                    f"index {self.index_name!r} is built on embedding "
                    f"{self.index.meta.get('embedding')!r} ({self.index.dim}-dim); text queries "
                    f"need {MODEL_NAME} embeddings — pass a query vector instead, or index a "
                    "dataset embedded with `curate embed`")
            from retrieval.views import query_texts

            # the baselines read the full text only; fan-out methods get all views
            fan = method in ("teacher", "diffusion")
            E = self._embed(query_texts(text, views=fan), deadline)
            return E[None] if fan else as_views(E)                   # (1, V, d)
        vec = check_vector(vector, self.index.dim)
        return as_views(vec[None])

    def query(self, *, text: str | None = None, vector: Any = None, k: int = 10,
              method: str = "topk", weights: dict[str, float] | None = None,
              mmr_lambda: float = 0.5, mmr_pool: int = 200, model: str | None = None,
              best_of: int | None = None, seed: int | None = None,
              steps: int | None = None, guidance: float | None = None,
              deadline: float | None = None) -> dict[str, Any]:
        """One query → its set: items (row_idx, sample_id, text, score = cosine to the query,
        sub_query = which fan-out slot found it, −1 for none), objectives, timings. ``seed``
        fixes the teacher's / diffusion's sampling (None: a fresh draw / the model's seed);
        ``best_of`` is the teacher's N; ``steps`` / ``guidance`` are the diffusion sampler's
        Heun steps and classifier-free guidance weight (None: ``BEST_OF``, ``STEPS``,
        ``GUIDANCE``). ``deadline`` (a ``time.monotonic()`` instant) stops the query between
        stages with ``DeadlineExceededError`` once it has passed (the service's timeout)."""
        if method not in METHODS:
            raise InvalidParameterError(f"method must be one of {', '.join(METHODS)}; got "
                                        f"{method!r}")
        check_int("", "k", k, 1, self.max_k)
        if (text is None) == (vector is None):
            raise InvalidParameterError("give exactly one of a query text or a query vector")
        # every parameter is checked whatever the method, so a bad one never passes unseen
        weights = check_weights(weights)
        check_number("", "mmr_lambda", mmr_lambda, 0.0, 1.0)
        if seed is not None:
            check_seed(seed)
        for name, value, hi in (("best_of", best_of, MAX_BEST_OF), ("steps", steps, MAX_STEPS)):
            if value is not None:
                check_int("", name, value, 1, hi)
        if guidance is not None:
            check_number("", "guidance", guidance, 0.0)
        check_deadline(deadline, "before it started")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        views = self._query_views(text, vector, method, deadline)
        if text is not None:
            timings["embed_s"] = time.perf_counter() - t0
        check_deadline(deadline, "embedding the query")
        q = views[:, 0]
        t0 = time.perf_counter()
        if method in ("teacher", "diffusion"):
            res = self._fanout(method, views, k, model, best_of, seed, steps, guidance,
                               deadline)
        elif method == "topk":
            res = self.topk.retrieve(q, k)
        else:
            res = MMRRetriever(self.index, self.vectors, lam=mmr_lambda,
                               pool=mmr_pool).retrieve(q, k)
        timings["retrieve_s"] = time.perf_counter() - t0
        check_deadline(deadline, "retrieval")
        t0 = time.perf_counter()
        rows = res.row_idx[0][res.row_idx[0] >= 0]
        _, pool_rows = self.index.search(q, POOL)
        objectives = {m: float(v[0]) for m, v in set_objectives(
            q, self.vectors[rows][None], self.vectors[pool_rows[0][pool_rows[0] >= 0]][None],
            weights).items()}
        timings["objectives_s"] = time.perf_counter() - t0
        items = [{"row_idx": int(r), "sample_id": self.sample_ids[int(r)],
                  "text": self.texts[int(r)] if self.texts is not None else None,
                  "score": float(s), "sub_query": int(src)}
                 for r, s, src in zip(rows, res.scores[0], res.source[0], strict=False)]
        return {"method": method, "k": k, "index": self.index_name,
                "index_meta": self.index.meta, "model_version": model, "items": items,
                "objectives": objectives, "timings": timings}

    def _fanout(self, method: str, views: np.ndarray, k: int, model: str | None,
                best_of: int | None, seed: int | None, steps: int | None,
                guidance: float | None, deadline: float | None) -> FanoutResult:
        """The teacher's / diffusion retriever's set for (1, V, d) views."""
        defaults = (best_of, steps, guidance) == (None, None, None)
        best_of = BEST_OF if best_of is None else best_of
        steps = STEPS if steps is None else steps
        guidance = GUIDANCE if guidance is None else guidance
        mdl = self._model(method, model)
        if k != mdl.k:
            raise InvalidParameterError(f"{method} model {model!r} returns k={mdl.k} "
                                        f"items; got k={k}")
        if method == "teacher":
            def answer(Q, s=seed):
                return mdl.best_of_n(Q, n=best_of, seed=s)[0]
        else:
            def answer(Q, s=seed):
                return mdl.retrieve(Q, k, seed=s, steps=steps, guidance=guidance).row_idx
        # shared batches only for unseeded calls with the default sampler settings, so
        # there is one batcher (one worker thread) per model whatever clients send
        if self.micro_batch and seed is None and defaults:
            sets = self._batcher((method, model), answer).submit(views[0], deadline)[None]
        else:
            sets = answer(views)
        q = views[:, 0]
        return FanoutResult(sets, np.einsum("bkd,bd->bk", self.vectors[sets], q),
                            np.arange(k)[None])


def check_deadline(deadline: float | None, stage: str) -> None:
    """Raise ``DeadlineExceededError`` when ``deadline`` (``time.monotonic()``) has passed."""
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceededError(f"the query ran past its deadline ({stage})")


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
