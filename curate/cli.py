"""The ``curate`` command line: parse, call one library function, print.

Every command takes ``--json`` (machine-readable output on stdout). Errors print one line
to stderr and exit 2 (bad usage or input) or 1 (runtime failure); ``--debug`` anywhere on the
command line shows the traceback instead. Progress bars go to stderr and are off with --json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import Abort, Exit, TyperException

from curate.errors import CurateError, InvalidParameterError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Curate: decide which data a model trains on.")
signals_app = typer.Typer(no_args_is_help=True, help="Per-sample training signals.")
app.add_typer(signals_app, name="signals")
subsets_app = typer.Typer(no_args_is_help=True, help="Neural subset selection (INSET).")
app.add_typer(subsets_app, name="subsets")
index_app = typer.Typer(no_args_is_help=True, help="FAISS indices over embeddings.")
app.add_typer(index_app, name="index")
fanout_app = typer.Typer(no_args_is_help=True, help="Fan-out retrieval (R4T).")
app.add_typer(fanout_app, name="fanout")

out = Console(soft_wrap=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Replace the output file if it exists.")]
FromOpt = Annotated[str | None, typer.Option(
    "--from", help="Select within this earlier selection's rows (its id).")]
ExecutorOpt = Annotated[str | None, typer.Option(
    "--executor", help="Where parallel stages run: local (default) or ray "
    "[env: CURATE_EXECUTOR].")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="A running Ray cluster (implies --executor ray) [env: RAY_ADDRESS].")]
DatasetArg = Annotated[str | None, typer.Argument(
    help="Dataset name (default: the store's default dataset).")]


class State:
    store: str | None = None


def _store(create: bool = False):
    from stores import Store

    return Store.create(State.store) if create else Store.open(State.store)


def _emit(payload: Any, as_json: bool, human=None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    elif human is not None:
        human()
    else:
        for k, v in payload.items():
            out.print(f"[bold]{k}[/]: {v}")


def _table(frame, title: str | None = None) -> Table:
    t = Table(title=title)
    for c in frame.columns:
        t.add_column(c)
    for row in frame.iter_rows():
        t.add_row(*["" if v is None else str(v) for v in row])
    return t


def _executor(name: str | None, address: str | None):
    """The executor a command asked for (``--executor``, ``--ray-address``, else the env)."""
    from stores.executor import get_executor

    return get_executor(name, address=address)


def _parse_params(items: list[str] | None) -> dict[str, Any]:
    from curate.specs import parse_params

    return parse_params(items)


@app.callback()
def _root(
    store: Annotated[str | None, typer.Option(
        "--store", help="Workspace folder (default $CURATE_HOME or ./.curate).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    State.store = store


@app.command()
def init(
    default: Annotated[bool, typer.Option(
        "--default", help="Also build the bundled WordNet dataset (embed + signals).")] = False,
    full: Annotated[bool, typer.Option("--full", help="With --default: all 117,659 rows.")] = False,
    sample: Annotated[int, typer.Option(help="With --default: stratified sample size.")] = 20_000,
    epochs: Annotated[int, typer.Option(help="With --default: proxy epochs.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed for the sample, split and proxy.")] = 0,
    backend: Annotated[str, typer.Option(
        help="With --default: encoder openvino (bf16 where the CPU has it), torch (float32 "
             "reference), onnx, onnx-int8.")] = "openvino",
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a store (and with --default, the bundled WordNet dataset)."""
    from curate.defaults import DEFAULT_NAME, init_default

    st = _store(create=True)
    payload: dict[str, Any] = {"store": str(st.root)}
    if default:
        if st.has_dataset(DEFAULT_NAME):
            st.set_default(DEFAULT_NAME)
            payload.update(dataset=DEFAULT_NAME, default=True, existed=True)
        else:
            payload.update(init_default(st, sample=None if full else sample, epochs=epochs,
                                        seed=seed, progress=not json_out, backend=backend,
                                        executor=_executor(executor, ray_address)))
    _emit(payload, json_out)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(
        help="Parquet, CSV or JSONL file, a folder of Parquet shards, or an HF dataset folder.")],
    name: Annotated[str, typer.Option("--name", help="Dataset name.")],
    text_column: Annotated[str | None, typer.Option(help="Column with text to embed.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Column with class labels.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Column with unique sample ids.")] = None,
    vector_column: Annotated[str | None, typer.Option(
        help="Column with precomputed vectors (stored as embedding 'ingested').")] = None,
    split_column: Annotated[str, typer.Option(
        help="Column with train/val/test (assigned, stratified, if absent).")] = "split",
    val_fraction: Annotated[float, typer.Option(help="Validation share if assigned.")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="Test share if assigned.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed for the assigned split.")] = 0,
    set_default: Annotated[bool, typer.Option(help="Make it the default dataset.")] = False,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate a file and add it to the store as a dataset."""
    from stores import IngestSpec

    spec = IngestSpec(text_column=text_column, label_column=label_column, id_column=id_column,
                      vector_column=vector_column, split_column=split_column,
                      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    st = _store(create=True)
    info = st.ingest(path, name, spec, progress=not json_out,
                     executor=_executor(executor, ray_address))
    if set_default or st.default_dataset is None:
        st.set_default(name)
    _emit({"dataset": info.name, "n_rows": info.n_rows, "fingerprint": info.fingerprint,
           "default": st.default_dataset == name}, json_out)


@app.command()
def embed(dataset: DatasetArg = None,
          batch_size: Annotated[int | None, typer.Option(
              help="Sentences per batch (default: the backend's, 32 torch, 128 "
                   "openvino).")] = None,
          executor: ExecutorOpt = None,
          ray_address: RayAddressOpt = None,
          actors: Annotated[int | None, typer.Option(
              help="Ray: encoder actors (default: CPUs − 1, min 1).")] = None,
          cpus_per_actor: Annotated[int, typer.Option(help="Ray: CPUs per actor.")] = 1,
          gpus_per_actor: Annotated[float, typer.Option(help="Ray: GPUs per actor.")] = 0.0,
          backend: Annotated[str, typer.Option(
              help="Encoder: openvino (bf16 where the CPU has it), torch (float32 "
                   "reference), onnx, onnx-int8.")] = "openvino",
          json_out: JsonOpt = False) -> None:
    """Embed a dataset's text column with all-MiniLM-L6-v2 (offline)."""
    from curate.embedding import embed_dataset

    _emit(embed_dataset(_store(), dataset, batch_size=batch_size, progress=not json_out,
                        executor=_executor(executor, ray_address), actors=actors,
                        cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor,
                        backend=backend),
          json_out)


@signals_app.command("train")
def signals_train(
    dataset: DatasetArg = None,
    epochs: Annotated[int, typer.Option(help="Epochs = checkpoints recorded.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed for init and shuffling.")] = 0,
    model: Annotated[str, typer.Option(help="softmax or mlp.")] = "softmax",
    name: Annotated[str, typer.Option(help="Signal name.")] = "proxy",
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-2,
    json_out: JsonOpt = False,
) -> None:
    """Train a proxy model and store per-sample loss trajectories."""
    from curate.signals import train_signals

    _emit(train_signals(_store(), dataset, name=name, model=model, epochs=epochs, seed=seed,
                        lr=lr, progress=not json_out), json_out)


@signals_app.command("ingest")
def signals_ingest(
    path: Annotated[Path, typer.Argument(help=".npz with train_rows, train_losses, val_rows, "
                                              "val_losses.")],
    dataset: DatasetArg = None,
    name: Annotated[str, typer.Option(help="Signal name.")] = "ingested",
    json_out: JsonOpt = False,
) -> None:
    """Store loss trajectories computed elsewhere."""
    from curate.signals import ingest_signals

    st = _store()
    sig = ingest_signals(st, dataset, path, name)
    _emit({"dataset": st.resolve_dataset(dataset), "signal": name,
           "n_checkpoints": sig.n_checkpoints, "n_train": len(sig.train_rows),
           "n_val": len(sig.val_rows)}, json_out)


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
    text: Annotated[str, typer.Argument(help="The query text.")],
    index: Annotated[str, typer.Option("--index", help="Index name (curate index build).")],
    k: Annotated[int, typer.Option(help="Items to return.")] = 10,
    method: Annotated[str, typer.Option(help="topk, mmr, teacher or diffusion.")] = "topk",
    mmr_lambda: Annotated[float, typer.Option(help="MMR relevance weight λ.")] = 0.5,
    model: Annotated[str | None, typer.Option(
        help="Model id (teacher: train-teacher; diffusion: train-diffusion).")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (teacher, diffusion).")]
    = None,
    best_of: Annotated[int | None, typer.Option(
        help="Teacher: fan-outs sampled, best kept (default 8).")] = None,
    steps: Annotated[int | None, typer.Option(help="Diffusion: Heun steps (default 6).")]
    = None,
    guidance: Annotated[float | None, typer.Option(
        help="Diffusion: guidance weight (default 1).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a query with a set of items and the set's objective values."""
    from retrieval import fanout_query

    res = fanout_query(_store(), index, text=text, k=k, method=method, mmr_lambda=mmr_lambda,
                       model=model, seed=seed, best_of=best_of, steps=steps,
                       guidance=guidance)

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
    json_out: JsonOpt = False,
) -> None:
    """Serve POST /v1/fanout (and /batch, /healthz, /docs) with uvicorn."""
    import uvicorn

    from retrieval.service import create_app

    app_ = create_app(State.store, index, max_concurrency=max_concurrency, timeout_s=timeout_s)
    if json_out:
        sys.stdout.write(json.dumps({"serving": index, "host": host, "port": port}) + "\n")
        sys.stdout.flush()
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@fanout_app.command("train-teacher")
def fanout_train_teacher(
    index: Annotated[str, typer.Option("--index", help="Index the teacher grounds in.")],
    k: Annotated[int, typer.Option(help="Sub-queries (= items) per fan-out.")] = 10,
    regime: Annotated[str, typer.Option(help="open (composite) or weak (hyponym recall).")]
    = "open",
    steps: Annotated[int, typer.Option(help="GRPO steps.")] = 200,
    batch: Annotated[int, typer.Option(help="Queries per GRPO step.")] = 32,
    group: Annotated[int, typer.Option(help="Fan-outs sampled per query (G).")] = 8,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-2,
    sigma: Annotated[float | None, typer.Option(
        help="Per-dimension policy noise (default 0.3/√d).")] = None,
    tau: Annotated[float, typer.Option(help="Noise of the view-mixing weights.")] = 0.3,
    beta: Annotated[float, typer.Option(help="KL weight to the initial policy.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed (split, init, sampling).")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Train the RL fan-out teacher (GRPO) on WordNet hypernym queries; store it."""
    from retrieval.teacher import train_teacher

    res = train_teacher(_store(), index, k=k, regime=regime, steps=steps, batch=batch,
                        group=group, lr=lr, sigma=sigma, tau=tau, beta=beta, seed=seed,
                        progress=not json_out)
    if not json_out:
        res = {k_: v for k_, v in res.items() if k_ != "reward_history"}
    _emit(res, json_out)


@fanout_app.command("synthesize")
def fanout_synthesize(
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher model id.")],
    n: Annotated[int, typer.Option(help="Fan-outs per query (best-of-n).")] = 16,
    keep: Annotated[float, typer.Option(help="Fraction of sets kept, by reward.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed for the sampled fan-outs.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Run the teacher over the training queries; store the high-reward sets."""
    from retrieval.synthesis import synthesize

    _emit(synthesize(_store(), teacher, n=n, keep=keep, seed=seed, progress=not json_out),
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


@subsets_app.command("train")
def subsets_train(
    data: Annotated[Path | None, typer.Option(
        "--data", help="Sets file: set_id, members (default: bundled WordNet hyponym sets).")
    ] = None,
    model: Annotated[str, typer.Option("--model", help="inset or equivset.")] = "inset",
    dataset: Annotated[str | None, typer.Option(
        help="Dataset whose embeddings are the item features (default dataset).")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping).")] = 20,
    hidden: Annotated[int, typer.Option(help="Hidden width.")] = 64,
    max_sets: Annotated[int, typer.Option(help="Ground sets to build at most.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed for data, split and init.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Train an INSET/EquiVSet set function on (V, S*) pairs and store it."""
    from curate.subsets.models import MODELS
    from curate.subsets.persist import train_from_store

    if model not in MODELS:
        raise InvalidParameterError(f"--model must be one of {', '.join(MODELS)}; got {model!r}")
    if data is None:
        from curate.defaults import hyponym_sets_path

        data = hyponym_sets_path()
    _emit(train_from_store(_store(), data, model, dataset=dataset, epochs=epochs, hidden=hidden,
                           max_sets=max_sets, seed=seed, progress=not json_out), json_out)


@app.command()
def select(
    dataset: DatasetArg = None,
    method: Annotated[str, typer.Option("--method", "-m", help="See `curate methods`.")] = ...,
    budget: Annotated[str, typer.Option("--budget", "-b",
                                        help="Fraction in (0, 1] or a count ≥ 1.")] = ...,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Method parameter key=value (repeatable).")] = None,
    embedding: Annotated[str | None, typer.Option(help="Embedding model to use.")] = None,
    signal: Annotated[str | None, typer.Option(help="Signal name to use.")] = None,
    group_column: Annotated[str | None, typer.Option(
        help="Column with groups/sources (snp).")] = None,
    target: Annotated[str | None, typer.Option(
        help="Dataset holding the target domain (snp).")] = None,
    model: Annotated[str | None, typer.Option(
        help="Trained model id (inset; see `curate subsets train`).")] = None,
    within: FromOpt = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Select a subset with a registered method and save it as an immutable selection."""
    import curate

    sel = curate.select(method=method, budget=curate.parse_budget(budget), dataset=dataset,
                        store=State.store, seed=seed, params=_parse_params(param),
                        embedding=embedding, signal=signal, group_column=group_column,
                        target=target, model=model, within=within,
                        executor=_executor(executor, ray_address))
    p = sel.provenance
    payload = {"selection_id": sel.id, "dataset": p.dataset, "method": p.method,
               "budget": p.budget, "seed": p.seed, "n_candidates": p.n_candidates,
               "from": p.inputs.get("from"),
               "n_selected": p.n_selected, "params": p.params, "info": p.info,
               "path": str(sel.path),
               "wall_time_s": sel.run.get("wall_time_s")}

    def human() -> None:
        brief = {k: v for k, v in payload.items() if k not in ("info", "from")
                 or (k == "from" and v)}
        if "why" in p.info:                 # auto: what it chose and why, not the evidence
            brief["chose"] = p.info["why"]
        elif len(str(p.info)) > 400:
            brief["info"] = "(see `curate show`)"
        else:
            brief["info"] = p.info
        for k, v in brief.items():
            out.print(f"[bold]{k}[/]: {v}")

    _emit(payload, json_out, human)


@app.command()
def train(
    dataset: DatasetArg = None,
    pruner: Annotated[str, typer.Option(
        help="full, dynamic_random, infobatch or seta.")] = "seta",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 15,
    prune_ratio: Annotated[float, typer.Option(help="Pruning ratio r.")] = 0.3,
    model: Annotated[str, typer.Option(help="mlp or softmax.")] = "mlp",
    seed: Annotated[int, typer.Option(help="Seed for init, shuffling and pruning.")] = 0,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Pruner parameter key=value, e.g. groups=5 window=0.9.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train the downstream model with a dynamic pruner; report accuracy and measured savings."""
    from curate.pruning import train_dataset

    _emit(train_dataset(State.store, dataset, pruner=pruner, epochs=epochs,
                        prune_ratio=prune_ratio, pruner_params=_parse_params(param),
                        model=model, seed=seed, progress=not json_out), json_out)


@app.command()
def calibrate(
    path: Annotated[Path, typer.Argument(help="Candidate pool: Parquet, CSV or JSONL.")],
    metrics: Annotated[str, typer.Option(
        help="Metric columns with weights, e.g. 'rouge1=1,rouge2=1' (weights default 1).")],
    out_path: Annotated[Path, typer.Option("--out", "-o",
                                           help="Chosen candidates (.parquet/.csv/.jsonl).")],
    mode: Annotated[str, typer.Option(help="relevance or faithfulness.")] = "relevance",
    strategy: Annotated[str, typer.Option(help="See the module docs.")] = "max_margin",
    k: Annotated[int, typer.Option(help="Candidates per instance (relevance).")] = 4,
    reference: Annotated[str, typer.Option(
        help="Faithfulness: positive, ensure or remove.")] = "positive",
    seed: Annotated[int, typer.Option(help="Seed for sampled subsets.")] = 0,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Choose calibration sets per instance; write them and their diagnostics."""
    from curate.calibration import select_calibration
    from stores import files, read_table

    fmt = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}.get(out_path.suffix)
    if fmt is None:
        raise InvalidParameterError(f"--out must end in .parquet, .csv or .jsonl; got {out_path}")
    diag_path = out_path.with_name(f"{out_path.stem}.diagnostics{out_path.suffix}")
    for p, what in ((out_path, "the calibration sets"), (diag_path, "the diagnostics")):
        files.check_output_path(p, overwrite=overwrite, what=what)
    weights = {}
    for item in metrics.split(","):
        name, _, w = item.strip().partition("=")
        if not name:
            raise InvalidParameterError(f"--metrics must look like 'm1=1,m2=0.5'; got {metrics!r}")
        try:
            weights[name] = float(w) if w else 1.0
        except ValueError:
            raise InvalidParameterError(f"metric weight for {name!r} is not a number: {w!r}") \
                from None
    rows, diag = select_calibration(read_table(path), metrics=weights, mode=mode,
                                    strategy=strategy, k=k, reference=reference, seed=seed)
    files.write_frame(out_path, rows, fmt)
    files.write_frame(diag_path, diag, fmt)
    summary = {c: diag[c].mean() for c in ("margin", "diversity", "likelihood", "surprise",
                                           "length", "padded")}
    _emit({"instances": diag.height, "rows": rows.height, "mode": mode, "strategy": strategy,
           "out": str(out_path), "diagnostics": str(diag_path), "mean": summary}, json_out)


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List datasets, selections, models and indices."""
    st = _store()
    ds = st.datasets().drop("path", "source")
    sels = st.selections().select("id", "dataset", "method", "budget", "seed", "n_selected",
                                  "created_at")
    models = st.models()
    payload = {"default_dataset": st.default_dataset, "datasets": ds.to_dicts(),
               "selections": sels.to_dicts(), "models": models.to_dicts(),
               "indices": st.indices()}

    def human() -> None:
        out.print(_table(ds, f"datasets (default: {st.default_dataset})"))
        out.print(_table(sels, "selections"))
        if models.height:
            out.print(_table(models, "models"))
        if payload["indices"]:
            out.print("indices: " + ", ".join(payload["indices"]))

    _emit(payload, json_out, human)


@app.command()
def compare(
    dataset: DatasetArg = None,
    methods: Annotated[str, typer.Option(
        help="Comma list of method specs, parameters after colons: "
             "cld,el2n:policy=ccs,herding (random and stratified are always run).")] = ...,
    budgets: Annotated[str, typer.Option(
        help="Comma list of budgets (fractions or counts).")] = "0.01,0.05,0.1,0.3",
    seeds: Annotated[int, typer.Option(help="Seeds per method and budget.")] = 3,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for compare.json/.png/.html (default: ./compare-NAME).")]
        = None,
    overwrite: OverwriteOpt = False,
    within: FromOpt = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Which method helps on this dataset: accuracy vs random/stratified, with a plot."""
    import curate
    from curate.comparison import compare as run_compare
    from curate.comparison import table_rows, write_report
    from curate.specs import parse_list

    rep = run_compare(State.store, dataset, methods=parse_list(methods, "--methods"),
                      budgets=[curate.parse_budget(b) for b in parse_list(budgets, "--budgets")],
                      seeds=seeds, seed=seed, within=within,
                      executor=_executor(executor, ray_address), progress=not json_out)
    paths = write_report(rep, out_dir or Path(f"compare-{rep.dataset}"), overwrite=overwrite)

    def human() -> None:
        rows = table_rows(rep)
        t = Table(title=f"{rep.dataset}: {rep.n_candidates:,} candidates, full pool "
                        f"{rep.full_pool_accuracy:.4f}")
        for c in rows[0]:
            t.add_column(c)
        for r in rows:
            t.add_row(*r.values())
        out.print(t)
        out.print(f"report: {paths['html']} (plot {paths['png']}, data {paths['json']})")

    _emit({**rep.to_json(), "paths": paths}, json_out, human)


@app.command()
def dedup(
    dataset: DatasetArg = None,
    eps: Annotated[float, typer.Option(
        help="Semantic duplicates: cosine ≥ 1 − eps within a k-means cell.")] = 0.05,
    exact: Annotated[bool, typer.Option(help="Exact duplicates of the normalised text.")] = True,
    semantic: Annotated[bool, typer.Option(help="Semantic duplicates (SemDeDup).")] = True,
    keep: Annotated[str, typer.Option(
        help="Row kept per group: least-central (SemDeDup) or first (lowest row).")]
        = "least-central",
    cell_size: Annotated[int, typer.Option(help="Rows per k-means cell.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed for the cells and the order.")] = 0,
    within: FromOpt = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove exact and semantic duplicates; the kept rows are a selection."""
    import curate

    sel = curate.select(method="dedup", budget=1.0, dataset=dataset, store=State.store,
                        seed=seed, within=within, executor=_executor(executor, ray_address),
                        params={"eps": eps, "exact": exact, "semantic": semantic,
                                "keep": keep, "cell_size": cell_size})
    info = sel.provenance.info
    _emit({"selection_id": sel.id, "dataset": sel.provenance.dataset,
           "n_candidates": sel.provenance.n_candidates, "n_kept": info["n_kept"],
           "n_removed": info["n_removed"], "groups": info["groups_total"],
           "exact_pairs": info["exact_pairs"], "semantic_pairs": info["semantic_pairs"],
           "from": within, "path": str(sel.path)}, json_out)


@app.command()
def show(selection_id: Annotated[str, typer.Argument(help="Selection id.")],
         rows: Annotated[int, typer.Option(help="Rows to show.")] = 10,
         json_out: JsonOpt = False) -> None:
    """Show a selection's provenance and its first rows."""
    if rows < 0:
        raise InvalidParameterError(f"--rows must be ≥ 0; got {rows}")
    from curate.api import lineage
    from curate.groups import duplicate_groups

    st = _store()
    table, prov = st.read_selection(selection_id)
    chain = lineage(st, selection_id)
    payload = {"selection_id": selection_id, "provenance": prov, "n_selected": table.height,
               "lineage": chain, "head": table.head(rows).to_dicts()}

    groups = duplicate_groups(st, selection_id, n=3)
    if groups:
        payload["duplicate_groups"] = groups

    def human() -> None:
        shown = {**prov, "info": {k: v for k, v in prov.get("info", {}).items()
                                  if k != "groups"}}
        out.print_json(json.dumps(shown, default=str))
        for g in groups:
            out.print(f"duplicate group of {len(g)} (first kept):")
            for r in g:
                text = next((str(v) for k, v in r.items()
                             if k not in ("row_idx", "sample_id", "kept")), "")
                out.print(f"  {'kept ' if r['kept'] else 'drop '} {r['sample_id']}: "
                          f"{text[:100]}")
        if len(chain) > 1:
            out.print("made within: " + " → ".join(
                f"{c['selection_id']} ({c['method']}, {c['n_selected']} of "
                f"{c['n_candidates']})" for c in chain))
        out.print(_table(table.head(rows), f"first {rows} of {table.height}"))

    _emit(payload, json_out, human)


@app.command()
def export(selection_id: Annotated[str, typer.Argument(help="Selection id.")],
           fmt: Annotated[str, typer.Option("--format", "-f",
                                            help="parquet, jsonl, csv or npy.")] = "parquet",
           out_path: Annotated[Path, typer.Option("--out", "-o", help="Output file.")] = ...,
           overwrite: OverwriteOpt = False,
           json_out: JsonOpt = False) -> None:
    """Export a selection's rows (joined with the samples) or its indices (npy)."""
    from curate.training import export_selection

    path = export_selection(_store(), selection_id, fmt, out_path, overwrite=overwrite)
    _emit({"selection_id": selection_id, "format": fmt, "path": str(path)}, json_out)


@app.command()
def evaluate(selection_id: Annotated[str, typer.Argument(help="Selection id.")],
             seeds: Annotated[int, typer.Option(help="Random baselines to draw.")] = 5,
             seed: Annotated[int, typer.Option(help="First seed of the random baselines.")] = 0,
             json_out: JsonOpt = False) -> None:
    """Downstream accuracy of a selection vs random subsets of the same size."""
    from curate.evaluate import evaluate_selection

    rep = evaluate_selection(State.store, selection_id, seeds=seeds, seed=seed,
                             progress=not json_out)

    def human() -> None:
        t = Table(title=f"{rep.dataset}: {rep.n_selected} of {rep.n_candidates} candidates, "
                        f"test rows {rep.n_test}")
        for c in ("training set", "rows", "test accuracy"):
            t.add_column(c)
        for a in rep.arms:
            t.add_row(a.name, str(a.n_train), a.summary())
        out.print(t)
        out.print("The selection is deterministic and the downstream fit too: it is one run. "
                  "Random's spread is over the subsets drawn.")

    _emit(rep.to_json(), json_out, human)


@app.command()
def methods(json_out: JsonOpt = False) -> None:
    """List selection methods, what each needs, and its parameters."""
    from curate.selector import available_methods, get_selector_class

    rows = []
    for name in available_methods():
        cls = get_selector_class(name)
        rows.append({"method": name, "needs": cls.needs.describe(),
                     "params": ", ".join(cls.param_names()), "summary": cls.summary})

    def human() -> None:
        import polars as pl

        out.print(_table(pl.DataFrame(rows), "selection methods"))

    _emit(rows, json_out, human)


@app.command()
def gc(
    all_hosts: Annotated[bool, typer.Option(
        "--all-hosts", help="Also remove temp leftovers of writers on other hosts "
        "(only when no other node is writing).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Recover after killed writers: remove temp leftovers, register or remove orphan
    folders, drop catalog rows whose folders were deleted."""
    from stores.recovery import recover

    rep = recover(_store(), wait=True, drop_dangling=True, all_hosts=all_hosts)
    _emit(rep.to_json(), json_out)


@app.command()
def verify(
    quick: Annotated[bool, typer.Option(
        "--quick", help="Hash large files by sampled blocks (as reads do), not whole.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check every artefact's files against the content hashes in the catalog."""
    st = _store()
    problems = st.verify(full=not quick)
    _emit({"store": str(st.root), "ok": not problems, "problems": problems}, json_out)
    if problems:
        from stores.integrity import CorruptArtefactError

        raise CorruptArtefactError(f"{len(problems)} damaged artefact(s); first: {problems[0]}")


@app.command()
def sql(query: Annotated[str, typer.Argument(help="Read-only SQL over the store's views.")],
        json_out: JsonOpt = False) -> None:
    """Run SQL over datasets, selections and the catalog (DuckDB)."""
    frame = _store().sql(query)
    _emit(frame.to_dicts(), json_out, lambda: out.print(_table(frame)))


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors, exit 2 for bad input, 1 for runtime failures."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CURATE_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="curate", standalone_mode=False)
    except CurateError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exit as exc:
        return exc.exit_code
    except Abort:
        print("aborted", file=sys.stderr)
        return 1
    except TyperException as exc:  # click-level usage errors (missing option, bad type)
        if debug:
            raise
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment failure: still one line
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
