"""Commands that train the downstream model to judge data: compare, evaluate, train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

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
    app,
    out,
)


@app.command()
def train(
    dataset: DatasetArg = None,
    pruner: Annotated[str, typer.Option(
        help="full, dynamic_random, infobatch or seta.")] = "seta",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 15,
    prune_ratio: Annotated[float, typer.Option(help="Pruning ratio r.")] = 0.3,
    model: Annotated[str, typer.Option(help="mlp, softmax or cnn (flat square images).")] \
        = "mlp",
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
    from curate.comparison import compare_and_report, table_rows
    from curate.specs import parse_list

    rep, paths = compare_and_report(
        State.store, dataset, methods=parse_list(methods, "--methods"),
        budgets=[curate.parse_budget(b) for b in parse_list(budgets, "--budgets")],
        seeds=seeds, seed=seed, within=within, executor=_executor(executor, ray_address),
        progress=not json_out, out=out_dir, overwrite=overwrite)

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
