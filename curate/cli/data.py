"""Store and dataset commands: init, ingest, embed, list, show, export, gc, verify, sql."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from core.encoders import BACKEND_HELP, DEFAULT_BACKEND
from curate.cli.app import (
    DatasetArg,
    ExecutorOpt,
    JsonOpt,
    OverwriteOpt,
    RayAddressOpt,
    State,
    _emit,
    _executor,
    _store,
    _table,
    app,
    out,
)


@app.command()
def init(
    default: Annotated[bool, typer.Option(
        "--default", help="Also build the bundled WordNet dataset (embed + signals).")] = False,
    full: Annotated[bool, typer.Option("--full", help="With --default: all 117,659 rows.")] = False,
    sample: Annotated[int, typer.Option(help="With --default: stratified sample size.")] = 20_000,
    epochs: Annotated[int, typer.Option(help="With --default: proxy epochs.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed for the sample, split and proxy.")] = 0,
    backend: Annotated[str, typer.Option(
        help=f"With --default: encoder {BACKEND_HELP}.")] = DEFAULT_BACKEND,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a store (and with --default, the bundled WordNet dataset)."""
    from curate.workspace import init_workspace

    _emit(init_workspace(_store(create=True), default=default, sample=None if full else sample,
                         epochs=epochs, seed=seed, backend=backend, executor=executor,
                         ray_address=ray_address, progress=not json_out), json_out)


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
    from curate.workspace import ingest_dataset
    from stores import IngestSpec

    spec = IngestSpec(text_column=text_column, label_column=label_column, id_column=id_column,
                      vector_column=vector_column, split_column=split_column,
                      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    _emit(ingest_dataset(_store(create=True), path, name, spec, set_default=set_default,
                         progress=not json_out, executor=_executor(executor, ray_address)),
          json_out)


@app.command()
def embed(dataset: DatasetArg = None,
          batch_size: Annotated[int | None, typer.Option(
              help="Sentences per batch (default: the backend's, 32 torch, 64 "
                   "openvino).")] = None,
          executor: ExecutorOpt = None,
          ray_address: RayAddressOpt = None,
          actors: Annotated[int | None, typer.Option(
              help="Ray: encoder actors (default: CPUs − 1, min 1).")] = None,
          cpus_per_actor: Annotated[int, typer.Option(help="Ray: CPUs per actor.")] = 1,
          gpus_per_actor: Annotated[float, typer.Option(help="Ray: GPUs per actor.")] = 0.0,
          backend: Annotated[str, typer.Option(
              help=f"Encoder: {BACKEND_HELP}.")] = DEFAULT_BACKEND,
          json_out: JsonOpt = False) -> None:
    """Embed a dataset's text column with all-MiniLM-L6-v2 (offline)."""
    from curate.embedding import embed_dataset

    _emit(embed_dataset(_store(), dataset, batch_size=batch_size, progress=not json_out,
                        executor=_executor(executor, ray_address), actors=actors,
                        cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor,
                        backend=backend),
          json_out)


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List datasets, selections, models and indices."""
    from curate.workspace import summarize_store

    s = summarize_store(State.store)

    def human() -> None:
        out.print(_table(s.datasets, f"datasets (default: {s.default_dataset})"))
        out.print(_table(s.selections, "selections"))
        if s.models.height:
            out.print(_table(s.models, "models"))
        if s.indices:
            out.print("indices: " + ", ".join(s.indices))

    _emit(s.to_json(), json_out, human)


@app.command()
def show(selection_id: Annotated[str, typer.Argument(help="Selection id.")],
         rows: Annotated[int, typer.Option(help="Rows to show.")] = 10,
         json_out: JsonOpt = False) -> None:
    """Show a selection's provenance and its first rows."""
    from curate.workspace import describe_selection

    v = describe_selection(State.store, selection_id, rows)

    def human() -> None:
        prov = v.provenance
        shown = {**prov, "info": {k: val for k, val in prov.get("info", {}).items()
                                  if k != "groups"}}
        out.print_json(json.dumps(shown, default=str))
        for g in v.duplicate_groups:
            out.print(f"duplicate group of {len(g)} (first kept):")
            for r in g:
                text = next((str(val) for k, val in r.items()
                             if k not in ("row_idx", "sample_id", "kept")), "")
                out.print(f"  {'kept ' if r['kept'] else 'drop '} {r['sample_id']}: "
                          f"{text[:100]}")
        if len(v.lineage) > 1:
            out.print("made within: " + " → ".join(
                f"{c['selection_id']} ({c['method']}, {c['n_selected']} of "
                f"{c['n_candidates']})" for c in v.lineage))
        out.print(_table(v.head, f"first {rows} of {v.n_selected}"))

    _emit(v.to_json(), json_out, human)


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
