"""The fan-out HTTP service (FastAPI): a thin layer over ``FanoutEngine``.

    POST /v1/fanout        {query | vector, k, method, weights?, mmr_lambda?} → a set of items
    POST /v1/fanout/batch  {requests: [...]} → one answer per request
    GET  /healthz          → {"status": "ok", index, n, dim}
    GET  /docs, /openapi.json (FastAPI)

The engine (index, vectors, texts) is loaded once at start-up. Work runs in worker threads
with at most ``max_concurrency`` requests in flight (an ``asyncio.Semaphore``) and each request
is cut off after ``timeout_s`` (504). Unseeded teacher/diffusion requests in flight together
share one batched model call (``retrieval.batching.MicroBatcher``). Bad input is a 4xx with
a one-line ``detail``: 422 for malformed JSON or fields of the wrong type, 400 for values
Curate rejects (empty query, k out of range, wrong dimension, NaN, unknown method, a model of
the wrong kind or index).
Methods: topk, mmr, teacher, diffusion (the last two name a stored model).
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from curate.errors import CurateError
from retrieval.fanout import FanoutEngine
from stores import Store


class FanoutRequest(BaseModel):
    query: str | None = Field(None, description="Query text (needs a MiniLM index).")
    vector: list[float] | None = Field(None, description="Query vector (index dimension).")
    k: int = Field(10, description="Number of items to return.")
    method: str = Field("topk", description="topk, mmr, teacher or diffusion.")
    weights: dict[str, float] | None = Field(None, description="Objective weights.")
    mmr_lambda: float = Field(0.5, description="MMR relevance weight.")
    model: str | None = Field(None, description="Model id (methods teacher, diffusion).")
    seed: int | None = Field(None, description="Sampling seed (teacher, diffusion).")
    best_of: int | None = Field(None, description="Teacher: fan-outs sampled, best kept (N; "
                                "default 8).")
    steps: int | None = Field(None, description="Diffusion: Heun steps (default 6).")
    guidance: float | None = Field(None, description="Diffusion: classifier-free guidance "
                                   "weight (default 1).")


class BatchRequest(BaseModel):
    requests: list[FanoutRequest] = Field(..., max_length=256)


def create_app(store_root: str | Path | None, index_name: str, *, max_k: int = 100,
               max_concurrency: int = 16, timeout_s: float = 10.0) -> FastAPI:
    engine = FanoutEngine(Store.open(store_root), index_name, max_k=max_k, micro_batch=True)
    gate = asyncio.Semaphore(max_concurrency)
    app = FastAPI(title="Curate fan-out retrieval", version="0.1.0")

    def run(req: FanoutRequest) -> dict[str, Any]:
        if req.vector is not None and not all(math.isfinite(v) for v in req.vector):
            raise HTTPException(400, "vector contains NaN or inf")
        try:
            return engine.query(text=req.query, vector=req.vector, k=req.k, method=req.method,
                                weights=req.weights, mmr_lambda=req.mmr_lambda,
                                model=req.model, seed=req.seed, best_of=req.best_of,
                                steps=req.steps, guidance=req.guidance)
        except CurateError as exc:
            raise HTTPException(400, str(exc)) from None

    async def guarded(fn, *args):
        async with gate:
            try:
                return await asyncio.wait_for(run_in_threadpool(fn, *args), timeout_s)
            except TimeoutError:
                raise HTTPException(504, f"request took longer than {timeout_s} s") from None

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "index": index_name, "n": engine.index.meta["n"],
                "dim": engine.index.dim}

    @app.post("/v1/fanout")
    async def fanout(req: FanoutRequest) -> dict[str, Any]:
        return await guarded(run, req)

    @app.post("/v1/fanout/batch")
    async def fanout_batch(batch: BatchRequest) -> dict[str, Any]:
        return {"results": await guarded(lambda reqs: [run(r) for r in reqs], batch.requests)}

    return app
