"""The fan-out HTTP service (FastAPI): a thin layer over ``FanoutEngine``.

    POST /v1/fanout        {query | vector, k, method, weights?, mmr_lambda?} → a set of items
    POST /v1/fanout/batch  {requests: [...]} → one answer per request
    GET  /healthz          → {"status": "ok", pid, index, n, dim, encoder, models, in_flight,
                              batching: [{call, calls, items, busy_s}]}
    GET  /docs, /openapi.json (FastAPI)

Start-up: the engine (index, vectors, texts), the text encoder (when the index is a MiniLM
one) and the models (``preload_models``; default every stored teacher/diffusion model of the
index) are loaded before ``create_app`` returns, so ``/healthz`` answers only once queries are
fast; with ``background_load`` loading runs in a thread instead and ``/healthz`` and the query
endpoints answer 503 until it is done. A model requested by id that was not preloaded is
loaded on first use.

Work runs in a pool of ``max_concurrency`` worker threads, so at most that many requests are
being worked on at once. Each request has a deadline ``timeout_s`` after it arrived: at the
deadline the client gets a 504, and the worker stops within one step of whatever loop it is
in (``FanoutEngine.query(deadline=...)``, ``core.deadline``: between stages, and once a CEM
round, sampler step, coordinate-ascent step or DPP pick inside the searches; a batch also
between its requests), then frees its slot — a cut-off request neither keeps running nor lets
more work in. Text
queries in flight together share one encoder call, and unseeded teacher/diffusion requests one
model call (``retrieval.batching.MicroBatcher``).

Bad input is a 4xx whose body is ``{"detail": "<one line>"}`` (``ErrorResponse``): 413 for a
body over ``max_body_bytes`` (from Content-Length, or counted while it streams in), 422 for
malformed JSON and for fields of the wrong type or shape (strict: "5" and true are not
integers; ``vector`` is a non-empty list of finite numbers; unknown fields are refused), 400
for values Curate rejects (empty query, k out of range, wrong dimension, a zero vector,
unknown method, bad weights, a model of the wrong kind or index). Every status is in the
OpenAPI schema.
Methods: every registered retriever (``retrieval.retriever.RETRIEVERS``: topk, mmr, dpp,
teacher, diffusion; the last two name a stored model).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import pydantic_core
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.checks import SEED_LIMIT, check_int, check_number
from core.errors import CurateError, DeadlineExceededError
from retrieval.ascent import AscentRetriever
from retrieval.diffusion import DiffusionRetriever
from retrieval.fanout import MAX_TEXT, METHODS, FanoutEngine
from retrieval.objectives import MAX_WEIGHT, OBJECTIVES
from retrieval.retriever import MAX_BEST_OF, MAX_REFINE, MAX_ROUNDS, MAX_STEPS
from retrieval.teacher import TeacherRetriever
from stores import Store, files

MAX_BODY_BYTES = 4 << 20        # 4 MiB: a 384-dim vector request is ~8 kB, a full batch ~2 MB
MAX_BATCH = 256
#: the GIL switch interval a server sets (``set_switch_interval``; ``curate serve`` default)
SWITCH_INTERVAL_S = 2e-4
SWITCH_INTERVAL_BOUNDS_S = (1e-6, 1.0)
MAX_WORKERS = 64
#: the environment variable ``serve`` hands each worker process its ``create_app`` arguments in
SERVE_CONFIG_ENV = "CURATE_SERVE_CONFIG"

Finite = Annotated[float, Field(allow_inf_nan=False)]


def _integral(value: Any) -> Any:
    """JSON Schema's integers include 18.0; "5" and true stay what they are (refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integral)]


class ErrorResponse(BaseModel):
    detail: str = Field(..., description="What was wrong, in one line.")


class FanoutRequest(BaseModel):
    # the schema also says "exactly one of query and vector" (a 400 from the engine)
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["query"], "properties": {"query": {"type": "string"}}},
        {"required": ["vector"], "properties": {"vector": {"type": "array"}}}]})

    query: str | None = Field(None, min_length=1, max_length=MAX_TEXT,
                              description="Query text (needs a MiniLM index); give it or "
                                          "`vector`.")
    vector: list[Finite] | None = Field(None, min_length=1,
                                        description="Query vector of the index dimension "
                                                    "(finite, not all zeros).")
    views: list[str] | None = Field(None, max_length=16,
                                    description="The query's other views as texts (teacher / "
                                                "diffusion models trained on a query set's "
                                                "view columns need them; a 'head: body' "
                                                "model splits the text itself).")
    k: Int = Field(10, description="Number of items to return: 1 ≤ k ≤ the service's max_k "
                                   "(teacher/diffusion: the model's k).",
                   json_schema_extra={"minimum": 1})
    method: str = Field("topk", description=", ".join(METHODS) + ".",
                        json_schema_extra={"enum": list(METHODS)})
    weights: dict[str, Finite] | None = Field(
        None, description=f"Objective weights of the composite (each in [0, {MAX_WEIGHT:g}], "
                          "at least one > 0; default 0.5 diversity, 0.5 alignment); "
                          f"keys: {', '.join(OBJECTIVES)}.",
        json_schema_extra={"propertyNames": {"enum": list(OBJECTIVES)},
                           "additionalProperties": {"type": "number", "minimum": 0,
                                                    "maximum": MAX_WEIGHT}})
    mmr_lambda: Finite = Field(0.5, description="MMR relevance weight in [0, 1].",
                               json_schema_extra={"minimum": 0, "maximum": 1})
    dpp_theta: Finite = Field(0.7, description="DPP relevance–diversity trade-off θ in [0, 1) "
                                               "(0: pure diversity).",
                              json_schema_extra={"minimum": 0, "exclusiveMaximum": 1})
    objectives: bool = Field(True, description="Compute the set's objectives (false skips the "
                                               "500-neighbour pool search).")
    model: str | None = Field(None, max_length=64, description="Model id (methods teacher, "
                                                                "diffusion).")
    relevance: str | None = Field(None, max_length=64,
                                  description="A relevance model's id (`curate fanout "
                                              "train-relevance`): mmr, dpp, ascent and "
                                              "teacher/diffusion with refine ≥ 1 select by it "
                                              "instead of cosine.")
    seed: Int | None = Field(None, description="Sampling seed (teacher, diffusion).",
                             json_schema_extra={"minimum": 0, "maximum": SEED_LIMIT - 1})
    best_of: Int | None = Field(None, description=f"Teacher: fan-outs sampled, best kept by "
                                                  f"the weights (N in [1, {MAX_BEST_OF}]; "
                                                  f"default {TeacherRetriever.best_of}); "
                                                  "diffusion: sets sampled and ranked "
                                                  f"(default {DiffusionRetriever.best_of}).",
                                json_schema_extra={"minimum": 1, "maximum": MAX_BEST_OF})
    rounds: Int | None = Field(None, description=f"Teacher: cross-entropy-method rounds after "
                                                 f"best-of-N (in [0, {MAX_ROUNDS}]; default "
                                                 f"{TeacherRetriever.rounds}).",
                               json_schema_extra={"minimum": 0, "maximum": MAX_ROUNDS})
    steps: Int | None = Field(None, description=f"Diffusion: Heun steps in [1, {MAX_STEPS}] "
                                                f"(default {DiffusionRetriever.steps}).",
                              json_schema_extra={"minimum": 1, "maximum": MAX_STEPS})
    guidance: Finite | None = Field(None, description="Diffusion: classifier-free guidance "
                                                      "weight ≥ 0 (default 1).",
                                    json_schema_extra={"minimum": 0})
    refine: Int | None = Field(None, description=f"Teacher, diffusion: sweeps of reward-guided "
                                                 f"grounding under the weights (in [0, "
                                                 f"{MAX_REFINE}]; default 0); ascent: its "
                                                 f"sweeps over the query's top 200, in "
                                                 f"[1, {MAX_REFINE}] (default "
                                                 f"{AscentRetriever.sweeps}).",
                               json_schema_extra={"minimum": 0, "maximum": MAX_REFINE})


class BatchRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    requests: list[FanoutRequest] = Field(..., min_length=1, max_length=MAX_BATCH)


class Item(BaseModel):
    row_idx: int
    sample_id: str
    text: str | None
    score: float = Field(..., description="Cosine to the query.")
    sub_query: int = Field(..., description="The fan-out slot that found it (−1: none).")


class Objectives(BaseModel):
    """``retrieval.objectives``: each set-level objective and the weighted composite."""

    groundedness: float = Field(..., description="Share of the set inside the query's 500 "
                                                 "nearest items (a diagnostic).")
    diversity: float = Field(..., description="Vendi score of the set, in [1, k].")
    alignment: float = Field(..., description="Mean cosine of the items to the query.")
    coverage: float = Field(..., description="Mean over the query's 500 neighbours of the "
                                             "best cosine to the set.")
    complementarity: float = Field(..., description="Mean of 1 − the item's best cosine to "
                                                    "another item.")
    coherence: float = Field(..., description="Mean cosine of the items to their centroid.")
    composite: float = Field(..., description="Σ weight × objective (diversity as Vendi/k).")


class Timings(BaseModel):
    load_s: float | None = None
    embed_s: float | None = Field(None, description="Embedding the query text.")
    retrieve_s: float
    objectives_s: float | None = None


class FanoutResponse(BaseModel):
    method: str
    k: int
    index: str
    index_meta: dict[str, Any]
    model_version: str | None
    relevance_model: str | None = Field(None, description="The relevance model the set was "
                                                          "selected by (null: cosine).")
    items: list[Item]
    objectives: Objectives | None = Field(..., description="The set's objectives (null when the "
                                                           "request says objectives: false).")
    timings: Timings


class BatchResponse(BaseModel):
    results: list[FanoutResponse]


class SharedCall(BaseModel):
    call: str = Field(..., description="`encoder`, or method/model/k of a model call.")
    calls: int = Field(..., description="Batched calls run so far.")
    items: int = Field(..., description="Queries they held (items / calls: the mean batch).")
    busy_s: float = Field(..., description="Seconds the calls ran in all.")


class Health(BaseModel):
    status: str
    pid: int = Field(..., description="The server process that answered (``curate serve "
                                      "--workers N``: each process has its own counters "
                                      "below).")
    index: str
    n: int
    dim: int
    encoder: bool = Field(..., description="Whether the text encoder is loaded (text queries).")
    models: list[str] = Field(..., description="Models loaded so far.")
    skipped_models: dict[str, str] = Field(
        default_factory=dict, description="Stored models of the index that could not be "
                                          "loaded at start-up, each with the reason (a "
                                          "request naming one gets that error).")
    in_flight: int = Field(..., description="Requests being worked on now.")
    batching: list[SharedCall] = Field(..., description="The calls concurrent queries share "
                                                        "(text encoder, teacher / diffusion "
                                                        "model calls).")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {400: "A value Curate rejects (see detail).",
            413: "The request body is larger than the service's limit.",
            422: "Malformed JSON, or a field of the wrong type or shape.",
            503: "The service is still loading (index, encoder, models).",
            504: "The request ran past the service's timeout."}
    return {c: {"model": ErrorResponse, "description": what[c]} for c in codes}


class BodyLimit:
    """Pure ASGI middleware: 413 for a request body over ``max_bytes``, from Content-Length
    or, without one, counted while it streams in (it never holds more than that). Before
    answering it reads and discards the rest of the body, up to ``drain_bytes`` (a client
    that sends its whole body before reading, like urllib, then sees the 413 rather than a
    reset connection); a client that asked ``Expect: 100-continue`` is answered at once, so
    it never sends the body."""

    def __init__(self, app, max_bytes: int, drain_bytes: int = 16 << 20):
        self.app, self.max_bytes, self.drain_bytes = app, max_bytes, drain_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            if headers.get(b"expect", b"").lower() != b"100-continue":
                await self._drain(receive, 0)
            return await self._reject(send)
        body, more = bytearray(), True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":        # the client went away
                return
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > self.max_bytes:
                if more:
                    await self._drain(receive, len(body))
                return await self._reject(send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _drain(self, receive, seen: int) -> None:
        """Read and drop body chunks until the body ends or ``drain_bytes`` are read."""
        while seen <= self.drain_bytes:
            msg = await receive()
            if msg["type"] != "http.request" or not msg.get("more_body", False):
                return
            seen += len(msg.get("body", b""))

    async def _reject(self, send) -> None:
        payload = json.dumps({"detail": f"request body is larger than {self.max_bytes} "
                                        "bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


class FastJSONRequest(Request):
    """A request whose JSON body is parsed by pydantic-core's Rust parser (``from_json``)
    instead of the standard library's: a 384-float query vector (~8 kB) takes ~25 µs
    instead of ~125 µs, time the event loop holds the GIL for (~10 % of a top-k request's
    server CPU under load, py-spy). Valid JSON parses to the same values, NaN and Infinity
    included. A body it refuses (malformed JSON, or an escaped lone surrogate, which the
    standard library turns into a string that the request's checks then refuse by field) is
    parsed again by ``json.loads``, so every error is the one it always was."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body)
            except ValueError:
                self._json = json.loads(body)
        return self._json


class FastJSONRoute(APIRoute):
    """An ``APIRoute`` whose handler reads its body through ``FastJSONRequest``."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Any:
            return await handler(FastJSONRequest(request.scope, request.receive))

        return route


def one_line(exc: RequestValidationError) -> str:
    """The first validation error as ``where: what; got what`` (FastAPI gives a list)."""
    errs = exc.errors()
    if not errs:
        return "invalid request"
    e = errs[0]
    where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
    got = repr(e["input"]) if "input" in e and e.get("type") != "missing" else ""
    got = f"; got {got[:60]}{'…' if len(got) > 60 else ''}" if got else ""
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return " ".join(f"{where}: {e.get('msg', 'invalid')}{got}{more}".split())


class Runner:
    """The engine behind a pool of ``max_concurrency`` worker threads, loaded now or in the
    background; ``in_flight`` counts the workers busy on a request. ``thread_init`` runs in
    each worker at its start and once more after loading (``limit_kernel_threads``)."""

    def __init__(self, load: Callable[[], FanoutEngine], preload: list[str] | None,
                 max_concurrency: int, background: bool,
                 thread_init: Callable[[], Any] | None = None):
        self.preload = preload
        self.engine: FanoutEngine | None = None
        self.loaded: dict[str, Any] = {}
        self.error: str | None = None
        self.in_flight = 0
        self._count = threading.Lock()
        self.thread_init = thread_init
        self.pool = ThreadPoolExecutor(max_workers=max_concurrency,
                                       thread_name_prefix="fanout", initializer=thread_init)
        if background:
            threading.Thread(target=self._load, args=(load,), daemon=True,
                             name="fanout-load").start()
        else:
            self._load(load, reraise=True)

    def _load(self, load, reraise: bool = False) -> None:
        try:
            engine = load()
            self.loaded = engine.warm_up(self.preload)
            for model_id, why in self.loaded.get("skipped", {}).items():
                print(f"warning: not serving model {model_id!r}: {why}", file=sys.stderr)
            if self.thread_init is not None:       # libraries the loading brought in
                self.thread_init()
            self.engine = engine
        except Exception as exc:  # noqa: BLE001 — reported by /healthz (background load)
            self.error = f"loading failed: {str(exc).splitlines()[0] if str(exc) else exc!r}"
            if reraise:
                raise

    def ready(self) -> FanoutEngine:
        if self.engine is None:
            raise HTTPException(503, self.error or "the service is still loading (index, text "
                                                   "encoder, models)")
        return self.engine

    def _work(self, fn, deadline: float, args):
        with self._count:
            self.in_flight += 1
        try:
            return fn(deadline, *args)
        finally:
            with self._count:
                self.in_flight -= 1

    async def run(self, fn, *args, timeout_s: float):
        """``fn(deadline, *args)`` in a worker; 504 at the deadline (the worker stops at the
        engine's next deadline check, within one step of its loop, and then frees its
        slot)."""
        self.ready()
        deadline = time.monotonic() + timeout_s
        fut = asyncio.wrap_future(self.pool.submit(self._work, fn, deadline, args))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except (TimeoutError, DeadlineExceededError):
            raise HTTPException(504, f"request took longer than {timeout_s} s") from None


def document_limits(app: FastAPI, *, max_k: int, dim: int) -> None:
    """Put this app's k range and vector dimension into its OpenAPI request schema."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base()
            props = schema["components"]["schemas"]["FanoutRequest"]["properties"]
            props["k"]["maximum"] = max_k
            props["vector"]["anyOf"][0].update(minItems=dim, maxItems=dim)
        return app.openapi_schema

    app.openapi = openapi


def pin_mmap_threshold(nbytes: int = 1 << 20) -> bool:
    """Fix glibc's mmap threshold (by default it starts at 128 KiB and rises to 32 MiB as
    large blocks are freed). A long-running server frees many large temporaries of varying
    size (encoder activations, batched model tensors) from many threads; once the threshold
    had risen they were carved from the heap arenas, which fragment, and the process's RSS
    kept growing under a mixed load. Pinned, blocks over ``nbytes`` are mapped and unmapped
    whole; at 1 MiB the per-request arrays (a 500 × 384 pool is 768 kB) stay on the heap,
    where they are reused, so pinning costs no throughput (at 128 kB their page faults cost
    ~1 ms of CPU a query). Returns whether it applied (False off glibc)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, nbytes))          # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def set_switch_interval(seconds: float) -> float:
    """Set how long a thread may hold the GIL while another waits for it
    (``sys.setswitchinterval``; Python's default 5 ms); returns the previous value.
    Why a server lowers it: a thread that comes back from a GIL-free call (a torch operator,
    a FAISS search) waits for the GIL until the holder's interval runs out, so with request
    threads running Python, each such return can cost up to the whole interval. The shared
    model call makes several (its tensors in and out around the traced sampler): at 5 ms the
    diffusion sampler's batch took ~3× its own time under load. At 0.2 ms a batch-8 sampler
    call beside 4 busy Python threads took 18 ms instead of 84 (the call alone: 7 ms); the
    cost is more frequent switches between Python threads."""
    check_number("serve", "switch_interval_s", seconds, *SWITCH_INTERVAL_BOUNDS_S)
    old = sys.getswitchinterval()
    sys.setswitchinterval(float(seconds))
    return old


def limit_kernel_threads(n: int) -> dict[str, int]:
    """Cap the threads each numeric kernel may use: torch's intra-op pool, FAISS's OpenMP
    and every BLAS/OpenMP pool loaded so far (threadpoolctl). A server works on up to
    ``max_concurrency`` requests at once, each in its own worker, so parallelism comes from
    the requests; a kernel that also fans out over every core makes the workers' thread
    pools oversubscribe the machine, and their idle threads spin (OpenMP and OpenBLAS
    busy-wait after a parallel region) on cores another request needs. OpenMP's count is a
    per-thread setting (a thread started later begins from the environment's), so
    ``create_app`` runs this in every thread that computes — each request worker and each
    batching thread at its start — and again after loading (libraries loaded by the engine
    and encoder, scipy's BLAS among them). Measured on 2 cores (README, "Service load"): one
    request at a time, top-k with objectives 8.6 → 0.95 ms and diffusion 50 → 13.7 ms; under
    16 clients diffusion serves 1.4× the queries. The cost: a torch text encoder (one
    batched call at a time, which does use a second core) serves 0.7× the text queries —
    torch's count is process-wide, so it cannot keep its own. Returns the counts read back in
    the calling thread (``blas_openmp``: the largest of threadpoolctl's pools)."""
    import faiss
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    check_int("serve", "kernel_threads", n, 1)
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    threadpool_limits(limits=n)
    return {"torch": torch.get_num_threads(), "faiss": faiss.omp_get_max_threads(),
            "blas_openmp": max((p["num_threads"] for p in threadpool_info()), default=n)}


def create_app(store_root: str | Path | None, index_name: str, *, max_k: int = 100,
               max_concurrency: int = 16, timeout_s: float = 10.0,
               max_body_bytes: int = MAX_BODY_BYTES,
               preload_models: Sequence[str] | None = None,
               background_load: bool = False,
               kernel_threads: int | None = None,
               switch_interval_s: float | None = None) -> FastAPI:
    """The service app over index ``index_name`` of the store at ``store_root``.
    ``preload_models``: model ids loaded at start-up (None: every stored teacher/diffusion
    model trained on the index; ``[]``: none). ``kernel_threads``: cap every numeric
    kernel's threads in this thread, each request worker and each batching thread
    (``limit_kernel_threads``; ``curate serve`` passes 1; None: leave the settings).
    ``switch_interval_s``: the process's GIL switch interval (``set_switch_interval``;
    ``curate serve`` passes ``SWITCH_INTERVAL_S``; None: leave Python's 5 ms)."""
    check_app_options(max_k=max_k, max_concurrency=max_concurrency, timeout_s=timeout_s,
                      max_body_bytes=max_body_bytes, kernel_threads=kernel_threads,
                      switch_interval_s=switch_interval_s)
    pin_mmap_threshold()
    if switch_interval_s is not None:
        set_switch_interval(switch_interval_s)
    cap = None
    if kernel_threads is not None:
        cap = functools.partial(limit_kernel_threads, kernel_threads)
        cap()                                   # here too: a bad value fails before loading
    store = Store.open(store_root)
    dim = int(files.read_json(store.index_path(index_name) / "index.json")["dim"])

    def load() -> FanoutEngine:
        return FanoutEngine(store, index_name, max_k=max_k, micro_batch=True,
                            thread_init=cap)

    runner = Runner(load, None if preload_models is None else list(preload_models),
                    max_concurrency, background_load, cap)
    app = FastAPI(title="Curate fan-out retrieval", version="0.2.0")
    app.router.route_class = FastJSONRoute
    app.state.runner = runner
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    document_limits(app, max_k=max_k, dim=dim)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": one_line(exc)}, status_code=422)

    def answer(deadline: float, req: FanoutRequest) -> dict[str, Any]:
        try:
            return runner.engine.query(
                text=req.query, vector=req.vector, k=req.k, method=req.method,
                weights=req.weights, mmr_lambda=req.mmr_lambda, dpp_theta=req.dpp_theta,
                model=req.model, seed=req.seed, best_of=req.best_of, rounds=req.rounds,
                steps=req.steps, guidance=req.guidance, refine=req.refine,
                objectives=req.objectives, relevance=req.relevance,
                deadline=deadline, views=req.views)
        except DeadlineExceededError:
            raise
        except CurateError as exc:
            raise HTTPException(400, str(exc).splitlines()[0]) from None

    def answer_all(deadline: float, reqs: list[FanoutRequest]) -> list[dict[str, Any]]:
        return [answer(deadline, r) for r in reqs]

    @app.get("/healthz", response_model=Health, responses=_errors(503))
    async def healthz() -> dict[str, Any]:
        engine = runner.ready()
        return {"status": "ok", "pid": os.getpid(), "index": index_name,
                "n": engine.index.meta["n"], "dim": engine.index.dim,
                "encoder": runner.loaded.get("encoder", False),
                "models": sorted(engine.models),
                "skipped_models": runner.loaded.get("skipped", {}),
                "in_flight": runner.in_flight,
                "batching": engine.batch_stats()}

    @app.post("/v1/fanout", response_model=FanoutResponse,
              responses=_errors(400, 413, 422, 503, 504))
    async def fanout(req: FanoutRequest) -> dict[str, Any]:
        return await runner.run(answer, req, timeout_s=timeout_s)

    @app.post("/v1/fanout/batch", response_model=BatchResponse,
              responses=_errors(400, 413, 422, 503, 504))
    async def fanout_batch(batch: BatchRequest) -> dict[str, Any]:
        return {"results": await runner.run(answer_all, batch.requests, timeout_s=timeout_s)}

    return app


def check_app_options(*, max_k: int = 100, max_concurrency: int = 16, timeout_s: float = 10.0,
                      max_body_bytes: int = MAX_BODY_BYTES, kernel_threads: int | None = None,
                      switch_interval_s: float | None = None, **_: Any) -> None:
    """``create_app``'s numeric options, each a one-line ``InvalidParameterError`` when bad
    (``serve`` checks them before any process starts; other keywords are ignored here)."""
    check_int("serve", "max_k", max_k, 1)
    check_int("serve", "max_concurrency", max_concurrency, 1)
    check_number("serve", "timeout_s", timeout_s, 0.0, 86_400.0, low_open=True)
    check_int("serve", "max_body_bytes", max_body_bytes, 1)
    if kernel_threads is not None:
        check_int("serve", "kernel_threads", kernel_threads, 1)
    if switch_interval_s is not None:
        check_number("serve", "switch_interval_s", switch_interval_s,
                     *SWITCH_INTERVAL_BOUNDS_S)


def check_serve(store_root: str | Path | None, index_name: str, *, workers: int = 1,
                **app_kwargs: Any) -> Store:
    """What ``serve`` checks before any process loads anything: the worker count,
    ``create_app``'s options (``check_app_options``) and that the store holds the index (one
    ``CurateError`` each). Returns the open store."""
    check_int("serve", "workers", workers, 1, MAX_WORKERS)
    check_app_options(**app_kwargs)
    store = Store.open(store_root)
    store.index_path(index_name)            # an unknown index: one line, before any fork
    return store


def exit_with_parent(parent_pid: int) -> bool:
    """Linux: have the kernel send this process SIGTERM when its parent (the uvicorn
    supervisor, ``parent_pid``) dies (``prctl(PR_SET_PDEATHSIG)``), so a worker never outlives
    a supervisor that was killed without stopping it (SIGKILL, the OOM killer); if the
    parent is already gone, stop now. Returns whether the kernel took the request (False off
    Linux/glibc)."""
    import ctypes
    import ctypes.util
    import signal

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) == 0      # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)
    return ok


def app_from_env() -> FastAPI:
    """The app of one worker process of ``serve(workers > 1)``: ``create_app`` with the
    keyword arguments ``serve`` put in ``$CURATE_SERVE_CONFIG`` (JSON); uvicorn calls it in
    each process it starts (``factory=True``). A failure is written, as one line and its exit
    code, to the config's ``error_file`` and the process exits with uvicorn's start-up-failure
    status, which stops the supervisor (rather than restarting the worker); ``serve`` then
    raises it."""
    from uvicorn.config import STARTUP_FAILURE

    cfg = json.loads(os.environ[SERVE_CONFIG_ENV])
    error_file, parent = cfg.pop("error_file", None), cfg.pop("parent_pid", None)
    if parent is not None:
        exit_with_parent(int(parent))
    try:
        return create_app(**cfg)
    except Exception as exc:  # noqa: BLE001 — handed to the parent as one line
        text = str(exc).splitlines()[0] if str(exc) else ""
        line = text if isinstance(exc, CurateError) else f"{type(exc).__name__}: {text}"
        if error_file:
            with contextlib.suppress(OSError):
                Path(error_file).write_text(json.dumps(
                    {"error": line, "exit_code": getattr(exc, "exit_code", 1)}))
        sys.exit(STARTUP_FAILURE)


def serve(store_root: str | Path | None, index_name: str, *, host: str = "127.0.0.1",
          port: int = 8000, workers: int = 1, ready: Callable[[], Any] | None = None,
          **app_kwargs: Any) -> None:
    """Serve the app (``create_app(store_root, index_name, **app_kwargs)``) with uvicorn until
    it is stopped; ``ready`` runs once the arguments are checked (and, with one worker, the
    app is loaded), before uvicorn starts — with several workers, before they load.

    ``workers`` > 1 runs uvicorn's own multi-process mode (its supervisor binds the socket and
    starts that many processes, each building the app with ``app_from_env`` and taking
    connections from the shared socket; it restarts a process that dies once it served). The
    options and the index are checked before any process starts; a worker that fails while
    loading stops the server, and its one-line error is raised here as a ``CurateError`` with
    the worker's exit code. A worker exits when the supervisor dies (``exit_with_parent``).
    SIGINT/SIGTERM while the workers load stops them once loading ends.
    Why several: a process runs Python under one GIL, and a request's parsing, validation,
    engine bookkeeping and response encoding are Python — one process serves at most one
    core's worth of it, however many threads it has. The cost: each process holds its own
    copy of the engine (the index, the normalised vectors, the models, the encoder; ~1.7 GB
    each on full WordNet with every benchmark model), concurrent queries share batched calls
    only with requests in the same process, and ``/healthz`` (``pid``, ``in_flight``,
    ``batching``) describes the process that answered it."""
    import tempfile

    store = check_serve(store_root, index_name, workers=workers, **app_kwargs)
    import uvicorn

    if workers == 1:
        app = create_app(store_root, index_name, **app_kwargs)
        if ready is not None:
            ready()
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    before = os.environ.get(SERVE_CONFIG_ENV)
    with tempfile.TemporaryDirectory(prefix="curate-serve-") as tmp:
        error_file = Path(tmp) / "error.json"
        os.environ[SERVE_CONFIG_ENV] = json.dumps(
            {"store_root": str(store.root), "index_name": index_name, **app_kwargs,
             "error_file": str(error_file), "parent_pid": os.getpid()})
        try:
            if ready is not None:
                ready()
            uvicorn.run("retrieval.service:app_from_env", factory=True, workers=workers,
                        host=host, port=port, log_level="warning")
        finally:
            if before is None:
                os.environ.pop(SERVE_CONFIG_ENV, None)
            else:
                os.environ[SERVE_CONFIG_ENV] = before
        failed = json.loads(error_file.read_text()) if error_file.exists() else None
    if failed is not None:
        err = CurateError(f"a server process failed to start: {failed['error']}")
        err.exit_code = int(failed.get("exit_code", 1))
        raise err
