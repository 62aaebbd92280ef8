"""A writer process for the fault-injection tests: ``python -m tests.reliability.writer ROOT OP``.

Imports only ``stores`` (fast: no torch) and performs one write path of the store. The test
sets ``$CURATE_FAULT_AT`` so the process dies like ``kill -9`` at one step of that path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

from stores import IngestSpec, Signals, Store, files

OPS = ("ingest", "embeddings", "signals", "selection", "model", "index")


def base_frame(n: int = 40) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame({"uid": [f"u{i}" for i in range(n)],
                         "label": [f"c{i % 3}" for i in range(n)],
                         "vec": rng.normal(size=(n, 4)).astype(np.float32).tolist()})


def build_base(root: Path) -> Store:
    """The store every fault case starts from: dataset ``base`` with vectors and signals."""
    st = Store.create(root)
    path = root.parent / "base.parquet"
    base_frame().write_parquet(path)
    st.ingest(path, "base", IngestSpec(label_column="label", id_column="uid",
                                       vector_column="vec"))
    st.write_signals("base", "proxy", signals(0))
    return st


def signals(version: int) -> Signals:
    rows = np.arange(40)
    losses = np.full((3, 36), 1.0 + version, dtype=np.float32)
    return Signals(train_rows=rows[:36], train_losses=losses, val_rows=rows[36:],
                   val_losses=np.ones((3, 4), dtype=np.float32), meta={"version": version})


def selection_table() -> pl.DataFrame:
    return pl.DataFrame({"row_idx": [3, 1], "sample_id": ["u3", "u1"], "rank": [0, 1],
                         "weight": [1.0, 1.0], "score": [0.5, 0.25]})


def provenance() -> dict:
    return {"dataset": "base", "method": "random", "budget": 2, "n_candidates": 36,
            "seed": 7, "params": {}, "n_selected": 2}


RUN = {"created_at": "2026-12-01T00:00:00+00:00", "wall_time_s": 0.1}


def run(root: Path, op: str) -> None:
    st = Store.open(root)
    if op == "ingest":
        st.add_dataset(base_frame(), "fresh", IngestSpec(label_column="label", id_column="uid"),
                       vectors=np.ones((40, 4), dtype=np.float32))
    elif op == "embeddings":
        st.write_embeddings("base", "ingested", np.full((40, 4), 2.0, np.float32), False)
    elif op == "signals":
        st.write_signals("base", "proxy", signals(1))
    elif op == "selection":
        st.write_selection("random-0123456789", selection_table(), provenance(), RUN,
                           exist_ok=True)
    elif op == "model":
        st.write_model("toy", lambda d: files.write_json(d / "weights.json", {"w": 1}),
                       {"note": "fault test"})
    elif op == "index":
        st.write_index("idx", lambda d: files.write_json(d / "index.faiss.json", {"n": 40}),
                       {"n": 40})
    else:
        raise SystemExit(f"unknown op {op}")


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2])


def child(root: str, op: str, fault: str | None) -> None:
    """Target of a forkserver process: arm the fault point (or not) and write."""
    import os

    os.environ.pop(files.FAULT_ENV, None)
    if fault:
        os.environ[files.FAULT_ENV] = fault
    run(Path(root), op)
