"""``curate subsets``: train neural set functions (INSET, EquiVSet) for subset selection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.app import JsonOpt, State, _emit, subsets_app


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
    from curate.subsets.persist import train_subsets

    _emit(train_subsets(State.store, data, model, dataset=dataset, epochs=epochs,
                        hidden=hidden, max_sets=max_sets, seed=seed, progress=not json_out),
          json_out)
