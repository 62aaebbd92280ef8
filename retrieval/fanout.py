"""One entry point for fan-out queries from Python, the CLI and the service.

Methods: ``topk`` and ``mmr`` (baselines), ``teacher`` (the RL fan-out policy, best-of-N by
the composite reward: slow, high quality) and ``diffusion`` (the distilled set denoiser: one
sampling pass). The last two need a stored model id (``model``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from curate.errors import InvalidParameterError
from retrieval.baselines import FanoutResult, MMRRetriever, TopKRetriever
from retrieval.index import VectorIndex, load_index, normalise
from retrieval.objectives import set_objectives
from retrieval.views import as_views
from stores import Store

METHODS = ("topk", "mmr", "teacher", "diffusion")
POOL = 500                  # the query's neighbourhood for groundedness / coverage
BEST_OF, STEPS, GUIDANCE = 8, 6, 1.0   # teacher's N; diffusion's Heun steps and CFG weight


class FanoutEngine:
    """Index, vectors and sample texts loaded once; answers fan-out queries (used by the CLI
    and, kept in memory, by the service)."""

    def __init__(self, store: Store, index_name: str, max_k: int = 100,
                 micro_batch: bool = False):
        """``micro_batch``: unseeded teacher/diffusion queries from concurrent callers are
        answered in shared batches (``retrieval.batching``; the service turns it on)."""
        t0 = time.perf_counter()
        self.index_name, self.max_k, self.micro_batch = index_name, max_k, micro_batch
        self.batchers: dict[tuple, Any] = {}
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
        self.load_s = time.perf_counter() - t0

    def _model(self, method: str, model_id: str | None):
        """The loaded teacher / diffusion retriever ``model_id`` (cached: loaded once)."""
        made_by = {"teacher": "curate fanout train-teacher",
                   "diffusion": "curate fanout train-diffusion"}[method]
        if model_id is None:
            raise InvalidParameterError(f"method {method!r} needs a model id (from "
                                        f"`{made_by}`)")
        if model_id not in self.models:
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

                self.models[model_id] = load_teacher(self.store, model_id, self.index,
                                                     self.vectors)
            else:
                from retrieval.diffusion import DiffusionRetriever, load_diffusion

                self.models[model_id] = DiffusionRetriever(
                    load_diffusion(self.store, model_id)[0], self.index, self.vectors)
        return self.models[model_id]

    def query(self, *, text: str | None = None, vector: Any = None, k: int = 10,
              method: str = "topk", weights: dict[str, float] | None = None,
              mmr_lambda: float = 0.5, mmr_pool: int = 200, model: str | None = None,
              best_of: int | None = None, seed: int | None = None,
              steps: int | None = None, guidance: float | None = None) -> dict[str, Any]:
        """One query → its set: items (row_idx, sample_id, text, score = cosine to the query,
        sub_query = which fan-out slot found it, −1 for none), objectives, timings. ``seed``
        fixes the teacher's / diffusion's sampling (None: a fresh draw / the model's seed);
        ``best_of`` is the teacher's N; ``steps`` / ``guidance`` are the diffusion sampler's
        Heun steps and classifier-free guidance weight (None: ``BEST_OF``, ``STEPS``,
        ``GUIDANCE``)."""
        if method not in METHODS:
            raise InvalidParameterError(f"method must be one of {', '.join(METHODS)}; got "
                                        f"{method!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.max_k:
            raise InvalidParameterError(f"k must be an integer in [1, {self.max_k}]; got {k!r}")
        if (text is None) == (vector is None):
            raise InvalidParameterError("give exactly one of a query text or a query vector")
        timings: dict[str, float] = {}
        if text is not None:
            if not text.strip():
                raise InvalidParameterError("the query text is empty")
            from curate.embedding import MODEL_NAME, embed_texts
            from retrieval.views import text_views

            if self.index.meta.get("embedding") != MODEL_NAME:
                raise InvalidParameterError(
                    f"index {self.index_name!r} is built on embedding "
                    f"{self.index.meta.get('embedding')!r} ({self.index.dim}-dim); text queries "
                    f"need {MODEL_NAME} embeddings — pass a query vector instead, or index a "
                    "dataset embedded with `curate embed`")
            t0 = time.perf_counter()
            # the baselines read the full text only; fan-out methods get all views
            views = (text_views([text]) if method in ("teacher", "diffusion")
                     else as_views(embed_texts([text])))                  # (1, V, d)
            timings["embed_s"] = time.perf_counter() - t0
        else:
            vec = np.asarray(vector, dtype=np.float32).reshape(-1)
            if vec.shape[0] != self.index.dim:
                raise InvalidParameterError(f"query vector has dimension {vec.shape[0]}; the "
                                            f"index has {self.index.dim}")
            views = as_views(vec[None])
        q = views[:, 0]
        t0 = time.perf_counter()
        if method in ("teacher", "diffusion"):
            defaults = (best_of, steps, guidance) == (None, None, None)
            best_of = BEST_OF if best_of is None else best_of
            steps = STEPS if steps is None else steps
            guidance = GUIDANCE if guidance is None else guidance
            mdl = self._model(method, model)
            if k != mdl.k:
                raise InvalidParameterError(f"{method} model {model!r} returns k={mdl.k} "
                                            f"items; got k={k}")
            if method == "teacher":
                if isinstance(best_of, bool) or not isinstance(best_of, int) or \
                        not 1 <= best_of <= 64:
                    raise InvalidParameterError(f"best_of must be an integer in [1, 64]; got "
                                                f"{best_of!r}")

                def answer(Q, s=seed):
                    return mdl.best_of_n(Q, n=best_of, seed=s)[0]
            else:
                def answer(Q, s=seed):
                    return mdl.retrieve(Q, k, seed=s, steps=steps, guidance=guidance).row_idx
            # shared batches only for unseeded calls with the default sampler settings, so
            # there is one batcher (one worker thread) per model whatever clients send
            if self.micro_batch and seed is None and defaults:
                key = (method, model)
                if key not in self.batchers:
                    from retrieval.batching import MicroBatcher

                    self.batchers[key] = MicroBatcher(answer)
                sets = self.batchers[key].submit(views[0])[None]
            else:
                sets = answer(views)
            res = FanoutResult(sets, np.einsum("bkd,bd->bk", self.vectors[sets], q),
                               np.arange(k)[None])
        else:
            retriever = (TopKRetriever(self.index) if method == "topk" else
                         MMRRetriever(self.index, self.vectors, lam=mmr_lambda, pool=mmr_pool))
            res = retriever.retrieve(q, k)
        timings["retrieve_s"] = time.perf_counter() - t0
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


def fanout_query(store: Store, index_name: str, **kwargs: Any) -> dict[str, Any]:
    """One-shot query (loads the index); see ``FanoutEngine.query`` for the arguments."""
    engine = FanoutEngine(store, index_name, max_k=kwargs.pop("max_k", 100))
    out = engine.query(**kwargs)
    out["timings"] = {"load_s": engine.load_s, **out["timings"]}
    return out
