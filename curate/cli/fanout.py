"""Fan-out retrieval commands: index build, fanout query / train-teacher / train-relevance /
synthesize / train-diffusion, and serve (the HTTP service)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from curate.cli.app import (
    DatasetArg,
    JsonOpt,
    State,
    _emit,
    _store,
    _table,
    app,
    fanout_app,
    index_app,
    out,
)


@index_app.command("build")
def index_build(
    dataset: DatasetArg = None,
    factory: Annotated[str, typer.Option(help='FAISS factory: "Flat", "IVF256,Flat", '
                                              '"HNSW32", ...')] = "Flat",
    name: Annotated[str | None, typer.Option(help="Index name (default from the factory).")]
    = None,
    seed: Annotated[int, typer.Option(help="Seed for the training sample.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Build a FAISS index (inner product on normalised vectors; ids = row_idx)."""
    from retrieval import build_index

    _emit(build_index(_store(), dataset, factory=factory, name=name, seed=seed), json_out)


@fanout_app.command("query")
def fanout_query_cmd(
    text: Annotated[str | None, typer.Argument(
        help="The query text (needs a MiniLM index); or give --vector.")] = None,
    index: Annotated[str, typer.Option("--index", help="Index name (curate index build).")]
    = ...,
    vector: Annotated[str | None, typer.Option(
        help="The query as a vector of the index's dimension: a JSON array, or a .npy file "
             "holding one (for an index over your own embeddings).")] = None,
    k: Annotated[int, typer.Option(help="Items to return.")] = 10,
    method: Annotated[str, typer.Option(help="topk, mmr, dpp, ascent, teacher or "
                                             "diffusion.")]
    = "topk",
    mmr_lambda: Annotated[float, typer.Option(help="MMR relevance weight λ.")] = 0.5,
    dpp_theta: Annotated[float, typer.Option(help="DPP relevance weight θ in [0, 1).")] = 0.7,
    model: Annotated[str | None, typer.Option(
        help="Model id (teacher: train-teacher; diffusion: train-diffusion).")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (teacher, diffusion).")]
    = None,
    best_of: Annotated[int | None, typer.Option(
        help="Teacher: fan-outs sampled, best kept (default 8); diffusion: sets sampled and "
             "ranked (default 1).")] = None,
    rounds: Annotated[int | None, typer.Option(
        help="Teacher: cross-entropy-method rounds after best-of-N (default 0).")] = None,
    weights: Annotated[str | None, typer.Option(
        help='Objective weights as JSON, e.g. \'{"alignment": 1, "diversity": 1}\'.')] = None,
    steps: Annotated[int | None, typer.Option(help="Diffusion: Heun steps (default 6).")]
    = None,
    guidance: Annotated[float | None, typer.Option(
        help="Diffusion: guidance weight (default 1).")] = None,
    refine: Annotated[int | None, typer.Option(
        help="Teacher, diffusion: sweeps of reward-guided grounding under the weights "
             "(default 0); ascent: its sweeps (default 2).")] = None,
    view: Annotated[list[str] | None, typer.Option(
        "--view", help="Another view of the query (repeat, in the query set's view-column "
                       "order) for a model trained on view columns.")] = None,
    relevance: Annotated[str | None, typer.Option(
        help="Relevance model id (train-relevance): mmr, dpp, ascent and teacher/diffusion "
             "with --refine select by it instead of cosine.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a query with a set of items and the set's objective values."""
    from retrieval import fanout_query

    res = fanout_query(_store(), index, text=text, vector=_vector(vector), k=k, method=method,
                       mmr_lambda=mmr_lambda,
                       dpp_theta=dpp_theta, model=model, seed=seed, best_of=best_of,
                       rounds=rounds, steps=steps, guidance=guidance, refine=refine,
                       weights=_weights(weights), views=view or None, relevance=relevance)

    def human() -> None:
        import polars as pl

        out.print(_table(pl.DataFrame(res["items"]).select("row_idx", "score", "text"),
                         f"{method} k={k}"))
        out.print({m: round(v, 4) for m, v in res["objectives"].items()})

    _emit(res, json_out, human)


@app.command()
def serve(
    index: Annotated[str, typer.Option("--index", help="Index name to serve.")],
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    max_concurrency: Annotated[int, typer.Option(help="Requests in flight at most.")] = 16,
    timeout_s: Annotated[float, typer.Option(help="Per-request timeout (s).")] = 10.0,
    kernel_threads: Annotated[int, typer.Option(
        help="Threads per numeric kernel (torch, FAISS, BLAS); the requests in flight are "
             "the parallelism. 0: leave the libraries' defaults.")] = 1,
    switch_interval_ms: Annotated[float | None, typer.Option(
        help="The process's GIL switch interval in ms (unset: the library's default, "
             "retrieval.service.SWITCH_INTERVAL_S; Python's own is 5 ms); see "
             "retrieval.service.set_switch_interval.")] = None,
    workers: Annotated[int, typer.Option(
        help="Server processes (uvicorn's multi-process mode; each loads its own copy of "
             "the index and models); see retrieval.service.serve.")] = 1,
    json_out: JsonOpt = False,
) -> None:
    """Serve POST /v1/fanout (and /batch, /healthz, /docs) with uvicorn."""
    from curate.errors import InvalidParameterError
    from retrieval.service import SWITCH_INTERVAL_BOUNDS_S, SWITCH_INTERVAL_S
    from retrieval.service import serve as run

    if kernel_threads < 0:
        raise InvalidParameterError(f"--kernel-threads must be ≥ 0 (0: the libraries' "
                                    f"defaults); got {kernel_threads}")
    interval_s = SWITCH_INTERVAL_S if switch_interval_ms is None else switch_interval_ms / 1e3
    low, high = SWITCH_INTERVAL_BOUNDS_S                       # the library's, in seconds
    if not low <= interval_s <= high:
        raise InvalidParameterError(f"--switch-interval-ms must be in [{1e3 * low:g}, "
                                    f"{1e3 * high:g}]; got {switch_interval_ms}")

    def ready() -> None:
        if json_out:
            sys.stdout.write(json.dumps({"serving": index, "host": host, "port": port,
                                         "workers": workers}) + "\n")
            sys.stdout.flush()

    run(State.store, index, host=host, port=port, workers=workers, ready=ready,
        max_concurrency=max_concurrency, timeout_s=timeout_s,
        kernel_threads=kernel_threads or None, switch_interval_s=interval_s)


def _vector(text: str | None):
    """``--vector``: a JSON array, or a .npy file; the engine checks its dimension and
    values (``retrieval.fanout.check_vector``)."""
    from pathlib import Path

    from curate.errors import InvalidParameterError

    if text is None:
        return None
    if text.endswith(".npy"):
        import numpy as np

        if not Path(text).is_file():
            raise InvalidParameterError(f"--vector file {text!r} does not exist")
        try:
            return np.load(text, allow_pickle=False).reshape(-1)
        except ValueError as exc:
            raise InvalidParameterError(f"--vector file {text!r} is not a numeric .npy array: "
                                        f"{str(exc).splitlines()[0]}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise InvalidParameterError(f"--vector must be a JSON array of numbers or a .npy "
                                    f"file; got {text[:40]!r}") from None


def _weights(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        from curate.errors import InvalidParameterError

        raise InvalidParameterError(f"--weights must be a JSON object of objective → weight; "
                                    f"got {text!r}") from None
    return value


QueryCol = Annotated[str | None, typer.Option(help="Column (when --queries is a table).")]


@fanout_app.command("queries")
def fanout_queries(
    table: Annotated[str, typer.Argument(help="Query table: Parquet, CSV or JSONL.")],
    index: Annotated[str, typer.Option("--index", help="Index the queries are answered on.")],
    id_column: Annotated[str, typer.Option(help="Query id column.")] = "query_id",
    text_column: Annotated[str | None, typer.Option(help="Query text column.")] = "text",
    view_column: Annotated[list[str] | None, typer.Option(
        help="Another text view of the query (repeat for several).")] = None,
    vector_column: QueryCol = None,
    references_column: QueryCol = None,
    item_column: QueryCol = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/val/test split.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Register a query set (embed its views, split 70/10/20, store it); prints its id."""
    from retrieval.queries import register_queries

    res = register_queries(_store(), index, table, id_column=id_column,
                           text_column=None if vector_column else text_column,
                           view_columns=view_column or (), vector_column=vector_column,
                           references_column=references_column, item_column=item_column,
                           seed=seed, progress=not json_out)
    _emit(res, json_out)


def _query_set(store, index: str, queries: str | None, progress: bool) -> str:
    """``--queries``: a stored query-set id or a table file; without it, the bundled WordNet
    query set of the index's dataset."""
    from curate.defaults import wordnet_query_table
    from retrieval.queries import resolve_query_set

    return resolve_query_set(store, index, queries, bundled=wordnet_query_table,
                             progress=progress)


@fanout_app.command("train-teacher")
def fanout_train_teacher(
    index: Annotated[str, typer.Option("--index", help="Index the teacher grounds in.")],
    queries: Annotated[str | None, typer.Option(
        help="Query set: a stored id (`curate fanout queries`) or a table with query_id, "
             "text[, references, item]; default: the bundled WordNet hypernym queries.")]
    = None,
    k: Annotated[int, typer.Option(help="Sub-queries (= items) per fan-out.")] = 10,
    regime: Annotated[str, typer.Option(
        help="open (composite objective) or weak (recall of the references).")] = "open",
    steps: Annotated[int, typer.Option(help="GRPO steps.")] = 200,
    batch: Annotated[int, typer.Option(help="Queries per GRPO step.")] = 32,
    group: Annotated[int, typer.Option(help="Fan-outs sampled per query (G).")] = 8,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-2,
    sigma: Annotated[float | None, typer.Option(
        help="Per-dimension policy noise (default 0.3/√d).")] = None,
    tau: Annotated[float, typer.Option(help="Noise of the view-mixing weights.")] = 0.3,
    beta: Annotated[float, typer.Option(help="KL weight to the initial policy.")] = 0.01,
    weights: Annotated[str | None, typer.Option(
        help="Objective weights of the open reward, as JSON.")] = None,
    seed: Annotated[int, typer.Option(help="Seed (init, sampling).")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Train the RL fan-out teacher (GRPO) on a query set's training split; store it."""
    from retrieval.teacher import train_teacher

    store = _store()
    query_set = _query_set(store, index, queries, not json_out)
    res = train_teacher(store, index, query_set, k=k, regime=regime, steps=steps,
                        batch=batch, group=group, lr=lr, sigma=sigma, tau=tau, beta=beta,
                        weights=_weights(weights), seed=seed, progress=not json_out)
    if not json_out:
        res = {k_: v for k_, v in res.items() if k_ != "reward_history"}
    _emit(res, json_out)


@fanout_app.command("train-relevance")
def fanout_train_relevance(
    index: Annotated[str, typer.Option("--index", help="Index the candidates come from.")],
    queries: Annotated[str | None, typer.Option(
        help="Query set with references: a stored id (`curate fanout queries`) or a table "
             "with query_id, text, references[, item]; default: the bundled WordNet "
             "hypernym queries.")] = None,
    k: Annotated[int, typer.Option(help="k of the validation recall@k.")] = 10,
    pool: Annotated[int, typer.Option(help="Candidates a query view: its nearest items.")]
    = 150,
    hidden: Annotated[int, typer.Option(help="Width of the two hidden layers.")] = 512,
    steps: Annotated[int, typer.Option(help="AdamW updates (the state with the lowest val "
                                            "loss is kept).")] = 600,
    batch: Annotated[int, typer.Option(help="(candidate, query) pairs a step.")] = 4096,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed (init, shuffles).")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Learn query–item relevance from a query set's references (train split); store it."""
    from retrieval.relevance import train_relevance

    store = _store()
    query_set = _query_set(store, index, queries, not json_out)
    res = train_relevance(store, index, query_set, k=k, pool=pool, hidden=hidden,
                          steps=steps, batch=batch, lr=lr, seed=seed,
                          progress=not json_out)
    _emit(res, json_out)


@fanout_app.command("synthesize")
def fanout_synthesize(
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher model id.")],
    n: Annotated[int, typer.Option(help="Fan-outs per query (best-of-n).")] = 16,
    rounds: Annotated[int, typer.Option(
        help="Cross-entropy-method rounds after best-of-n.")] = 0,
    spread: Annotated[float, typer.Option(
        help="Scale of the search's noise over the policy's (1: its own).")] = 1.0,
    warm_start: Annotated[bool, typer.Option(
        help="Also start the search from DPP sets (retrieval.dpp).")] = False,
    keep: Annotated[float, typer.Option(help="Fraction of sets kept, by reward.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed for the sampled fan-outs.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Run the teacher over the training queries; store the high-reward sets."""
    from retrieval.synthesis import synthesize

    _emit(synthesize(_store(), teacher, n=n, rounds=rounds, spread=spread,
                     warm_start=warm_start, keep=keep, seed=seed, progress=not json_out),
          json_out)


@fanout_app.command("train-diffusion")
def fanout_train_diffusion(
    synthesis: Annotated[str, typer.Option("--synthesis", help="Synthesis id.")],
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 128,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    width: Annotated[int | None, typer.Option(help="Transformer width (default 64).")] = None,
    layers: Annotated[int | None, typer.Option(help="Transformer layers (default 2).")]
    = None,
    target: Annotated[str, typer.Option(
        help="What the rows are: subqueries (the teacher's fan-out) or items.")] = "subqueries",
    seed: Annotated[int, typer.Option(help="Seed (split, init, noise).")] = 0,
    device: Annotated[str, typer.Option(help="torch device (cpu, cuda).")] = "cpu",
    json_out: JsonOpt = False,
) -> None:
    """Train the EDM diffusion retriever on a synthesis; store the checkpoint."""
    from retrieval.synthesis import train_diffusion_from_store

    _emit(train_diffusion_from_store(_store(), synthesis, epochs=epochs, batch=batch, lr=lr,
                                     width=width, layers=layers, target=target, seed=seed,
                                     device=device,
                                     progress=not json_out), json_out)
