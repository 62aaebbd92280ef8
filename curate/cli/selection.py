"""Selection commands: select, dedup, methods, calibrate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.app import (
    DatasetArg,
    ExecutorOpt,
    FromOpt,
    JsonOpt,
    OverwriteOpt,
    RayAddressOpt,
    State,
    _emit,
    _executor,
    _parse_params,
    _table,
    app,
    out,
)


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
def methods(json_out: JsonOpt = False) -> None:
    """List selection methods and training-time pruners, what each needs, its parameters."""
    from curate.pruning.pruners import describe_pruners
    from curate.selector import describe_methods

    rows = describe_methods() + describe_pruners()

    def human() -> None:
        import polars as pl

        frame = pl.DataFrame(rows)
        out.print(_table(frame.filter(pl.col("kind") == "selector").drop("kind"),
                         "selection methods (curate select --method NAME)"))
        out.print(_table(frame.filter(pl.col("kind") == "pruner").drop("kind"),
                         "training-time pruners (curate train --pruner NAME)"))

    _emit(rows, json_out, human)


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
    from curate.calibration import calibrate_file

    _emit(calibrate_file(path, metrics=metrics, out=out_path, mode=mode, strategy=strategy,
                         k=k, reference=reference, seed=seed, overwrite=overwrite), json_out)
