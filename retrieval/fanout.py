"""One entry point for fan-out queries from Python, the CLI and (later) the service."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from curate.errors import InvalidParameterError
from retrieval.baselines import MMRRetriever, TopKRetriever
from retrieval.index import VectorIndex, load_index, normalise
from retrieval.objectives import set_objectives
from stores import Store

METHODS = ("topk", "mmr")   # teacher and diffusion: not built yet
POOL = 500                  # the query's neighbourhood for groundedness / coverage


def fanout_query(store: Store, index_name: str, *, text: str | None = None,
                 vector: np.ndarray | None = None, k: int = 10, method: str = "topk",
                 weights: dict[str, float] | None = None, mmr_lambda: float = 0.5,
                 mmr_pool: int = 200, max_k: int = 100) -> dict[str, Any]:
    if method not in METHODS:
        raise InvalidParameterError(f"method must be one of {', '.join(METHODS)}; got "
                                    f"{method!r} (teacher and diffusion are not built yet)")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        raise InvalidParameterError(f"k must be an integer in [1, {max_k}]; got {k!r}")
    if (text is None) == (vector is None):
        raise InvalidParameterError("give exactly one of a query text or a query vector")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    index: VectorIndex = load_index(store, index_name)
    timings["load_s"] = time.perf_counter() - t0
    if text is not None:
        if not text.strip():
            raise InvalidParameterError("the query text is empty")
        from curate.embedding import MODEL_NAME, embed_texts

        if index.meta.get("embedding") != MODEL_NAME:
            raise InvalidParameterError(
                f"index {index_name!r} is built on embedding {index.meta.get('embedding')!r} "
                f"({index.dim}-dim); text queries need {MODEL_NAME} embeddings — pass a query "
                "vector instead, or index a dataset embedded with `curate embed`")
        t0 = time.perf_counter()
        vector = embed_texts([text])[0]
        timings["embed_s"] = time.perf_counter() - t0
    q = normalise(np.asarray(vector, dtype=np.float32).reshape(1, -1))
    vectors = np.asarray(store.embeddings(index.meta["dataset"], index.meta["embedding"])[0])
    retriever = (TopKRetriever(index) if method == "topk" else
                 MMRRetriever(index, vectors, lam=mmr_lambda, pool=mmr_pool))
    t0 = time.perf_counter()
    res = retriever.retrieve(q, k)
    timings["retrieve_s"] = time.perf_counter() - t0
    rows = res.row_idx[0][res.row_idx[0] >= 0]
    _, pool_rows = index.search(q, POOL)
    S = normalise(vectors[rows])[None]
    P = normalise(vectors[pool_rows[0][pool_rows[0] >= 0]])[None]
    objectives = {m: float(v[0]) for m, v in set_objectives(q, S, P, weights).items()}
    info = store.dataset_info(index.meta["dataset"])
    cols = ["row_idx", "sample_id"] + ([info.text_column] if info.text_column else [])
    samples = store.samples(info.name, cols)
    items = []
    for r, s, src in zip(rows, res.scores[0], res.source[0], strict=False):
        row = samples.row(int(r), named=True)
        items.append({"row_idx": int(r), "sample_id": row["sample_id"],
                      "text": row.get(info.text_column) if info.text_column else None,
                      "score": float(s), "sub_query": int(src)})
    return {"method": method, "k": k, "index": index_name, "index_meta": index.meta,
            "items": items, "objectives": objectives, "timings": timings}
