"""Bad input, tried as a new user would: every case must be a clean refusal and leave the
store byte-for-byte as it was.

    python benchmarks/reliability.py        # ~1-2 min on 2 cores

Builds a small synthetic store (labelled blobs with vectors, proxy signals, one selection,
a Flat index) and runs a catalogue of bad inputs against the CLI (in-process ``main``), the
Python API and the fan-out service (in-process ASGI client). For each case it records:
clean (a non-zero exit / ``CurateError`` / 4xx, one line, no traceback), a traceback (any
other exception, a 5xx, or "Traceback" in the output), and whether any byte under the store
changed. It also replays the fault-injection matrix (a writer killed at every step of every
write path; the same code as ``tests/reliability``) and the concurrent-writer check.

Writes ``results/reliability.json`` and ``results/reliability.md``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from common import RESULTS, write_json  # noqa: E402

from tests.conftest import blobs, build_synthetic_store, tree_hash  # noqa: E402


def cli_cases(root: Path, sel: str, work: Path) -> list[tuple[str, list[str]]]:
    s = ["--store", str(root)]
    bad = work / "bad"
    bad.mkdir()
    frame = blobs(30)
    frame.write_parquet(bad / "ok.parquet")
    frame.with_columns(uid=pl.lit("same")).write_parquet(bad / "dup.parquet")
    frame.with_columns(vec=pl.Series([[math.nan] * 16] + frame["vec"].to_list()[1:])) \
        .write_parquet(bad / "nan.parquet")
    frame.with_columns(vec=pl.Series([[1.0]] + frame["vec"].to_list()[1:])) \
        .write_parquet(bad / "ragged.parquet")
    frame.with_columns(label=pl.Series([None] + frame["label"].to_list()[1:])) \
        .write_parquet(bad / "nulllabel.parquet")
    frame.with_columns(split=pl.lit("holdout")).write_parquet(bad / "split.parquet")
    (bad / "empty.csv").write_text("")
    (bad / "garbage.parquet").write_bytes(b"not a parquet file")
    (bad / "data.xlsx").write_text("x")
    existing = work / "existing.parquet"
    existing.write_text("keep me")
    pool = pl.DataFrame({"instance_id": ["a"] * 6, "candidate_id": [f"c{i}" for i in range(6)],
                         "m": [0.1, 0.5, 0.9, 0.3, 0.7, 0.2], "text": ["t"] * 6,
                         "likelihood": [-1.0] * 6})
    pool.write_parquet(bad / "pool.parquet")
    pool.with_columns(m=pl.lit(math.inf)).write_parquet(bad / "pool_inf.parquet")
    pool.with_columns(m=pl.lit("high")).write_parquet(bad / "pool_str.parquet")
    pool.with_columns(candidate_id=pl.lit("c0")).write_parquet(bad / "pool_dup.parquet")
    ing = [*s, "ingest"]
    spec = ["--label-column", "label", "--id-column", "uid", "--vector-column", "vec"]
    sel_ = [*s, "select"]
    cases = [
        ("select: unknown method", [*sel_, "--method", "cdl", "--budget", "0.1"]),
        ("select: budget 0", [*sel_, "--method", "random", "--budget", "0"]),
        ("select: budget -1", [*sel_, "--method", "random", "--budget", "-1"]),
        ("select: budget 1.5", [*sel_, "--method", "random", "--budget", "1.5"]),
        ("select: budget nan", [*sel_, "--method", "random", "--budget", "nan"]),
        ("select: budget inf", [*sel_, "--method", "random", "--budget", "inf"]),
        ("select: budget text", [*sel_, "--method", "random", "--budget", "ten"]),
        ("select: budget > N", [*sel_, "--method", "random", "--budget", "1000000"]),
        ("select: seed -1", [*sel_, "--method", "random", "--budget", "5", "--seed", "-1"]),
        ("select: seed 2**70", [*sel_, "--method", "random", "--budget", "5", "--seed",
                                str(2**70)]),
        ("select: param without =", [*sel_, "--method", "cld", "--budget", "5", "-p", "x"]),
        ("select: unknown param", [*sel_, "--method", "cld", "--budget", "5", "-p", "zz=1"]),
        ("select: param wrong type", [*sel_, "--method", "kcenter", "--budget", "5", "-p",
                                      "metric=7"]),
        ("select: unknown embedding", [*sel_, "--method", "kcenter", "--budget", "5",
                                       "--embedding", "nope"]),
        ("select: unknown signal", [*sel_, "--method", "cld", "--budget", "5",
                                    "--signal", "nope"]),
        ("select: unknown dataset", [*s, "select", "nope", "--method", "random",
                                     "--budget", "5"]),
        ("select: snp without groups", [*sel_, "--method", "snp", "--budget", "5"]),
        ("select: inset without model", [*sel_, "--method", "inset", "--budget", "5"]),
        ("select: missing budget", [*sel_, "--method", "random"]),
        ("export: into the catalog", [*s, "export", sel, "--format", "csv", "--out",
                                      str(root / "catalog.duckdb")]),
        ("export: onto a selection", [*s, "export", sel, "--out",
                                      str(root / "selections" / sel / "selection.parquet")]),
        ("export: into a dataset folder", [*s, "export", sel, "--out",
                                           str(root / "datasets" / "blobs" / "x.parquet")]),
        ("export: existing file", [*s, "export", sel, "--out", str(existing)]),
        ("export: a folder", [*s, "export", sel, "--out", str(work)]),
        ("export: missing folder", [*s, "export", sel, "--out", str(work / "no" / "x.csv")]),
        ("export: bad format", [*s, "export", sel, "--format", "xlsx", "--out",
                                str(work / "x.xlsx")]),
        ("export: unknown selection", [*s, "export", "random-0000000000", "--out",
                                       str(work / "x.parquet")]),
        ("show: unknown selection", [*s, "show", "nope"]),
        ("show: rows -1", [*s, "show", sel, "--rows", "-1"]),
        ("evaluate: unknown selection", [*s, "evaluate", "nope"]),
        ("evaluate: seeds 0", [*s, "evaluate", sel, "--seeds", "0"]),
        ("evaluate: seed 2**64", [*s, "evaluate", sel, "--seed", str(2**64)]),
        ("ingest: missing file", [*ing, str(bad / "missing.parquet"), "--name", "x"]),
        ("ingest: empty file", [*ing, str(bad / "empty.csv"), "--name", "x"]),
        ("ingest: corrupt parquet", [*ing, str(bad / "garbage.parquet"), "--name", "x"]),
        ("ingest: unknown format", [*ing, str(bad / "data.xlsx"), "--name", "x"]),
        ("ingest: duplicate ids", [*ing, str(bad / "dup.parquet"), "--name", "x", *spec]),
        ("ingest: NaN vector", [*ing, str(bad / "nan.parquet"), "--name", "x", *spec]),
        ("ingest: ragged vectors", [*ing, str(bad / "ragged.parquet"), "--name", "x", *spec]),
        ("ingest: null label", [*ing, str(bad / "nulllabel.parquet"), "--name", "x", *spec]),
        ("ingest: bad split value", [*ing, str(bad / "split.parquet"), "--name", "x", *spec]),
        ("ingest: missing column", [*ing, str(bad / "ok.parquet"), "--name", "x",
                                    "--label-column", "nope"]),
        ("ingest: reserved name", [*ing, str(bad / "ok.parquet"), "--name", "selections"]),
        ("ingest: bad name", [*ing, str(bad / "ok.parquet"), "--name", "../escape"]),
        ("ingest: name taken", [*ing, str(bad / "ok.parquet"), "--name", "blobs"]),
        ("ingest: val fraction 2", [*ing, str(bad / "ok.parquet"), "--name", "x",
                                    "--val-fraction", "2"]),
        ("ingest: seed -5", [*ing, str(bad / "ok.parquet"), "--name", "x", "--seed", "-5"]),
        ("calibrate: out in the store", ["calibrate", str(bad / "pool.parquet"), "--metrics",
                                         "m=1", "--out", str(root / "catalog.duckdb")]),
        ("calibrate: out exists", ["calibrate", str(bad / "pool.parquet"), "--metrics", "m=1",
                                   "--out", str(existing)]),
        ("calibrate: k 1000000", ["calibrate", str(bad / "pool.parquet"), "--metrics", "m=1",
                                  "--k", "1000000", "--out", str(work / "c1.parquet")]),
        ("calibrate: k 0", ["calibrate", str(bad / "pool.parquet"), "--metrics", "m=1",
                            "--k", "0", "--out", str(work / "c2.parquet")]),
        ("calibrate: inf metric", ["calibrate", str(bad / "pool_inf.parquet"), "--metrics",
                                   "m=1", "--out", str(work / "c3.parquet")]),
        ("calibrate: string metric", ["calibrate", str(bad / "pool_str.parquet"),
                                      "--metrics", "m=1", "--out", str(work / "c4.parquet")]),
        ("calibrate: duplicate candidates", ["calibrate", str(bad / "pool_dup.parquet"),
                                             "--metrics", "m=1", "--out",
                                             str(work / "c5.parquet")]),
        ("calibrate: NaN weight", ["calibrate", str(bad / "pool.parquet"), "--metrics",
                                   "m=nan", "--out", str(work / "c6.parquet")]),
        ("calibrate: unknown metric", ["calibrate", str(bad / "pool.parquet"), "--metrics",
                                       "zz=1", "--out", str(work / "c7.parquet")]),
        ("calibrate: unknown mode", ["calibrate", str(bad / "pool.parquet"), "--metrics",
                                     "m=1", "--mode", "fast", "--out",
                                     str(work / "c8.parquet")]),
        ("calibrate: unknown strategy", ["calibrate", str(bad / "pool.parquet"), "--metrics",
                                         "m=1", "--strategy", "best", "--out",
                                         str(work / "c9.parquet")]),
        ("signals: epochs 0", [*s, "signals", "train", "--epochs", "0"]),
        ("signals: lr -1", [*s, "signals", "train", "--lr", "-1"]),
        ("signals: unknown model", [*s, "signals", "train", "--model", "resnet"]),
        ("signals: bad name", [*s, "signals", "train", "--name", "a/b"]),
        ("signals ingest: missing file", [*s, "signals", "ingest", str(bad / "x.npz")]),
        ("index: bad factory", [*s, "index", "build", "--factory", "IVF0,Flat"]),
        ("index: name taken", [*s, "index", "build", "--name", "flat"]),
        ("fanout query: unknown index", [*s, "fanout", "query", "x", "--index", "nope"]),
        ("fanout query: k 0", [*s, "fanout", "query", "x", "--index", "flat", "--k", "0"]),
        ("train: unknown pruner", [*s, "train", "--pruner", "magic"]),
        ("train: prune ratio 2", [*s, "train", "--prune-ratio", "2"]),
        ("list: no store", ["--store", str(work / "nostore"), "list"]),
        ("unknown command", [*s, "frobnicate"]),
    ]
    from tests.reliability.test_store_safety import REFUSED

    for q in REFUSED:
        cases.append((f"sql: {q[:40]}", [*s, "sql", q.format(out=work / "leak.csv",
                                                            root=root)]))
    return cases


def run_cli(args: list[str]) -> dict:
    from curate.cli import main

    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(args)
        crashed = False
    except BaseException as exc:  # noqa: BLE001 - a crash is what we count
        code, crashed = -1, True
        err.write(f"Traceback: {type(exc).__name__}: {exc}")
    text = err.getvalue().strip()
    traceback = crashed or "Traceback" in text or "(run with --debug" in text
    clean = code not in (0, -1) and not traceback and len(text.splitlines()) == 1
    return {"exit": code, "clean": clean, "traceback": traceback, "message": text[:300]}


def python_cases(root: Path) -> list[tuple[str, object]]:
    import curate
    from curate.inputs import SelectionInput
    from curate.selector import make_selector
    from stores import IngestSpec, Store

    st = Store.open(root)
    emb = np.zeros((5, 4), np.float32)

    def sel(**kw):
        return lambda: curate.select(store=st, **{"method": "random", "budget": 5, **kw})

    return [
        ("select k='5'", sel(budget="5")),
        ("select budget True", sel(budget=True)),
        ("select budget nan", sel(budget=float("nan"))),
        ("select seed 2**70", sel(seed=2**70)),
        ("select seed -1", sel(seed=-1)),
        ("select seed 1.5", sel(seed=1.5)),
        ("select kcenter k wrong type", sel(method="herding", params={"per_class": "yes"})),
        ("select unknown param", sel(method="cld", params={"nope": 1})),
        ("from_arrays 3 labels 5 embeddings", lambda: make_selector("stratified").select(
            SelectionInput.from_arrays(labels=[0, 1, 0], embeddings=emb), 2, seed=0)),
        ("cld on one class", lambda: _one_class_cld()),
        ("ingest frame with inf vector", lambda: st.add_dataset(
            blobs(10), "v", IngestSpec(id_column="uid"),
            vectors=np.full((10, 2), np.inf, np.float32))),
        ("write_selection wrong columns", lambda: st.write_selection(
            "random-00", pl.DataFrame({"x": [1]}), {}, {})),
        ("sql DETACH", lambda: st.sql("DETACH cat")),
        ("embeddings wrong shape", lambda: st.write_embeddings(
            "blobs", "bad", np.zeros((3, 2), np.float32), False)),
    ]


def _one_class_cld():
    from curate.inputs import CandidateSignals, SelectionInput
    from curate.selector import make_selector

    n, e = 20, 4
    rng = np.random.default_rng(0)
    # one class whose trajectories all fall by a constant step: every CLD score is 0
    steps = (2.0 - 0.1 * np.arange(e, dtype=np.float32))[:, None]
    data = SelectionInput(row_idx=np.arange(n), labels=np.zeros(n, np.int64), classes=("a",),
                          signals=CandidateSignals(
                              train_losses=steps + rng.random((1, n)).astype(np.float32),
                              val_losses=steps + rng.random((1, 5)).astype(np.float32),
                              val_labels=np.zeros(5, np.int64)))
    return make_selector("cld").select(data, 5, seed=0)


def run_python(fn) -> dict:
    from stores import CurateError

    try:
        fn()
        return {"clean": False, "traceback": False, "message": "accepted"}
    except CurateError as exc:
        text = str(exc)
        return {"clean": len(text.splitlines()) == 1, "traceback": False,
                "message": text[:300]}
    except Exception as exc:  # noqa: BLE001
        return {"clean": False, "traceback": True,
                "message": f"{type(exc).__name__}: {exc}"[:300]}


def service_cases() -> list[tuple[str, dict | bytes]]:
    vec = [0.1] * 16
    return [
        ("k as string", {"vector": vec, "k": "5"}),
        ("k as bool", {"vector": vec, "k": True}),
        ("k 0", {"vector": vec, "k": 0}),
        ("k huge", {"vector": vec, "k": 10**9}),
        ("empty vector", {"vector": [], "k": 3}),
        ("wrong dimension", {"vector": [0.1, 0.2], "k": 3}),
        ("NaN weight", {"vector": vec, "weights": {"diversity": float("nan")}}),
        ("negative weight", {"vector": vec, "weights": {"diversity": -5}}),
        ("all-zero weights", {"vector": vec, "weights": {"diversity": 0, "alignment": 0,
                                                         "groundedness": 0}}),
        ("unknown weight", {"vector": vec, "weights": {"beauty": 1}}),
        ("unknown method", {"vector": vec, "method": "rerank"}),
        ("no query", {"k": 3}),
        ("query and vector", {"query": "x", "vector": vec}),
        ("teacher without model", {"vector": vec, "method": "teacher"}),
        ("unknown model", {"vector": vec, "method": "diffusion", "model": "nope"}),
        ("seed 2**70", {"vector": vec, "method": "mmr", "seed": 2**70}),
        ("mmr lambda 5", {"vector": vec, "method": "mmr", "mmr_lambda": 5}),
        ("malformed JSON", b"{not json"),
        ("10 MB body", {"vector": vec, "pad": "x" * (10 << 20)}),
        ("batch of 10000", {"requests": [{"vector": vec}] * 10_000}),
    ]


def run_service(root: Path) -> list[dict]:
    from fastapi.testclient import TestClient

    from retrieval.service import create_app

    client = TestClient(create_app(root, "flat"))
    out = []
    for name, body in service_cases():
        path = "/v1/fanout/batch" if isinstance(body, dict) and "requests" in body \
            else "/v1/fanout"
        if isinstance(body, bytes):
            r = client.post(path, content=body, headers={"content-type": "application/json"})
        else:
            r = client.post(path, content=json.dumps(body),
                            headers={"content-type": "application/json"})
        detail = r.text[:300]
        out.append({"surface": "service", "case": name, "status": r.status_code,
                    "clean": 400 <= r.status_code < 500, "traceback": r.status_code >= 500,
                    "message": detail})
    return out


def kill_matrix(work: Path) -> dict:
    from stores import Store, files
    from tests.reliability import writer
    from tests.reliability.test_recovery import _debris, _run_writer, _state

    base = work / "kill-base" / "store"
    writer.build_base(base)
    tried = survived = 0
    for op in writer.OPS:
        for step in files.FAULT_STEPS:
            root = work / f"kill-{op}-{step}"
            shutil.copytree(base, root)
            tried += 1
            code = _run_writer(root, op, step)
            try:
                st = Store.open(root)
                ok = (code == 137 and not _debris(root) and not st.verify()
                      and _state(st, op) in ("old", "new")
                      and _run_writer(root, op, None) in (0, 1)
                      and not Store.open(root).verify())
            except Exception:  # noqa: BLE001
                ok = False
            survived += ok
    return {"kill_points": tried, "survived": survived}


def concurrent_writers(root: Path, n: int = 4) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "curate.cli", "--store", str(root),
                               "select", "--method", "random", "--budget", "0.05", "--seed",
                               str(100 + i), "--json"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(n)]
    for p in procs:
        p.communicate(timeout=600)
    ok = sum(p.returncode == 0 for p in procs)
    return {"writers": n, "succeeded": ok, "wall_s": round(time.perf_counter() - t0, 2)}


def main() -> None:
    import curate
    from curate.cli import main as cli

    work = Path(tempfile.mkdtemp(prefix="curate-reliability-"))
    root = work / "store"
    build_synthetic_store(root)
    sel = curate.select(method="random", budget=10, store=root, seed=0).id
    assert cli(["--store", str(root), "index", "build", "--name", "flat", "--json"]) == 0
    records = []
    for name, args in cli_cases(root, sel, work):
        before = tree_hash(root)
        res = run_cli(args)
        records.append({"surface": "cli", "case": name, **res,
                        "store_changed": tree_hash(root) != before})
    for name, fn in python_cases(root):
        before = tree_hash(root)
        records.append({"surface": "python", "case": name, **run_python(fn),
                        "store_changed": tree_hash(root) != before})
    before = tree_hash(root)
    for rec in run_service(root):
        records.append({**rec, "store_changed": False})
    service_changed = tree_hash(root) != before
    kills = kill_matrix(work)
    conc = concurrent_writers(root)
    summary = {
        "inputs_tried": len(records),
        "clean_errors": sum(r["clean"] for r in records),
        "tracebacks": sum(r["traceback"] for r in records),
        "accepted_silently": sum(not r["clean"] and not r["traceback"] for r in records),
        "store_changes_on_error": sum(r["store_changed"] for r in records) + service_changed,
        **kills, "concurrent_writers": conc,
    }
    write_json(RESULTS / "reliability.json", {"summary": summary, "cases": records})
    lines = ["| surface | inputs | clean errors | tracebacks | accepted silently | "
             "store changed |", "|---|---:|---:|---:|---:|---:|"]
    for surface in ("cli", "python", "service"):
        rs = [r for r in records if r["surface"] == surface]
        lines.append(f"| {surface} | {len(rs)} | {sum(r['clean'] for r in rs)} | "
                     f"{sum(r['traceback'] for r in rs)} | "
                     f"{sum(not r['clean'] and not r['traceback'] for r in rs)} | "
                     f"{sum(r['store_changed'] for r in rs)} |")
    lines += ["", f"Kill points tried: {kills['kill_points']}, survived (old-or-new, "
              f"no debris, verified, re-run works): {kills['survived']}.",
              f"Concurrent `curate select` writers: {conc['succeeded']} of {conc['writers']} "
              f"succeeded ({conc['wall_s']} s)."]
    failing = [r for r in records if not r["clean"]]
    if failing:
        lines += ["", "Not clean:", ""] + [f"- {r['surface']}: {r['case']} → "
                                            f"{r['message'][:120]!r}" for r in failing]
    (RESULTS / "reliability.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    multiprocessing.set_start_method("forkserver", force=True)
    main()
