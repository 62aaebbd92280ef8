"""``curate signals``: per-sample loss trajectories (train a proxy, or ingest your own)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.app import DatasetArg, JsonOpt, _emit, _store, signals_app


@signals_app.command("train")
def signals_train(
    dataset: DatasetArg = None,
    epochs: Annotated[int, typer.Option(help="Epochs = checkpoints recorded.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed for init and shuffling.")] = 0,
    model: Annotated[str, typer.Option(help="softmax or mlp (the proxies).")] = "softmax",
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
