"""The root ``curate`` Typer app, its sub-apps, the option types the commands share and the
helpers every command uses to open the store, resolve the executor and print."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

#: the order ``curate --help`` lists the top-level commands in (the sub-apps follow)
COMMAND_ORDER = ("init", "ingest", "embed", "serve", "select", "train", "calibrate", "list",
                 "compare", "dedup", "show", "export", "evaluate", "methods", "gc", "verify",
                 "sql")


class OrderedGroup(TyperGroup):
    """Lists commands in ``COMMAND_ORDER`` (then the rest, as registered), whichever module
    registered them first."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))


app = typer.Typer(cls=OrderedGroup, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
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
    "(env: CURATE_EXECUTOR).")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="A running Ray cluster (implies --executor ray; env: RAY_ADDRESS).")]
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
