"""Scale: the path a user takes, end to end, at 1M-10M rows: Parquet shards → ``curate
ingest`` → ``curate signals ingest`` → ``curate select`` (load + select + write).

    python benchmarks/scale_out.py --rows 1000000 --dim 128          # ~2 min
    python benchmarks/scale_out.py --rows 10000000 --dim 128         # run once, committed

Data (seeded, synthetic): N rows × d float32 vectors (a fixed_size_list column) from a
100-class Gaussian mixture, an int label, a string id, in shards of 1M rows; loss
trajectories over 10 checkpoints for the train rows (and the val rows) as an ``.npz`` for
``curate signals ingest``. Every stage runs as its own ``curate`` process (the CLI a user
runs), and records its wall time and its own peak RSS (``VmHWM`` of that process).

Appends records to ``results/scale_out.json`` — a list of
``{executor, n_rows, dim, method, stage, wall_s, peak_rss_mb}`` (+ ``vectors_mb``, the size of
one copy of the vectors) — and rewrites ``results/scale_out.md``. Only the ``local`` executor
exists today (no Ray executor yet), so every record says ``executor: "local"``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_json  # noqa: E402

SHARD = 1_000_000
CLASSES = 100
EPOCHS = 10
# VmHWM (the high-water mark of this process's memory), not ru_maxrss: after fork + exec,
# ru_maxrss keeps the parent's peak, so every stage would report the generator's.
STAGE_RUNNER = ("import json, sys\n"
                "from curate.cli import main\n"
                "code = main(sys.argv[1:])\n"
                "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
                "peak = int(hwm.split()[1]) / 1024\n"
                "print(json.dumps({'peak_rss_mb': peak}), file=sys.stderr)\n"
                "sys.exit(code)\n")


def make_shards(folder: Path, n: int, d: int, seed: int = 0) -> None:
    """Write N rows in 1M-row Parquet shards without building the table in Python."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, d)).astype(np.float32) * 2
    folder.mkdir(parents=True)
    for i, start in enumerate(range(0, n, SHARD)):
        m = min(SHARD, n - start)
        y = rng.integers(0, CLASSES, size=m)
        X = centres[y] + rng.standard_normal((m, d), dtype=np.float32)
        ids = pa.array(np.char.add("s", np.arange(start, start + m).astype(str)))
        table = pa.table({"uid": ids, "label": pa.array(y),
                          "vec": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), d)})
        pq.write_table(table, folder / f"part-{i:05d}.parquet", compression="none")


def make_signals(store: Path, path: Path, seed: int = 0) -> None:
    """Loss trajectories for the stored train/val rows (E = 10), as ``signals ingest`` wants."""
    import pyarrow.parquet as pq

    t = pq.read_table(store / "datasets" / "big" / "samples.parquet",
                      columns=["row_idx", "split"])
    split = t.column("split").to_numpy(zero_copy_only=False)
    rows = t.column("row_idx").to_numpy()
    rng = np.random.default_rng(seed)
    out = {}
    for part in ("train", "val"):
        r = rows[split == part]
        rate = rng.uniform(0.05, 0.5, size=len(r)).astype(np.float32)
        steps = np.arange(1, EPOCHS + 1, dtype=np.float32)[:, None]
        out[f"{part}_rows"] = r
        out[f"{part}_losses"] = np.exp(-steps * rate[None, :]) * 2.0
    np.savez(path, **out)


def stage(args: list[str], env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", STAGE_RUNNER, *args], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"stage {args[2:4]} failed: {proc.stderr.strip()[-500:]}")
    peak = json.loads(proc.stderr.strip().splitlines()[-1])["peak_rss_mb"]
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak, 1),
            "stdout": proc.stdout}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--methods", default="stratified,cld,el2n:epoch=9")
    ap.add_argument("--budget", default="0.01")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-scale-", dir=args.work))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    n, d = args.rows, args.dim
    base = {"executor": "local", "n_rows": n, "dim": d,
            "vectors_mb": round(n * d * 4 / 2**20, 1)}
    records = []
    try:
        t0 = time.perf_counter()
        make_shards(work / "shards", n, d)
        print(f"generated {n:,} × {d} in {time.perf_counter() - t0:.0f} s", flush=True)
        store = work / "store"
        s = ["--store", str(store)]
        r = stage([*s, "ingest", str(work / "shards"), "--name", "big", "--label-column",
                   "label", "--id-column", "uid", "--vector-column", "vec", "--json"], env)
        records.append({**base, "method": None, "stage": "ingest", **_clean(r)})
        make_signals(store, work / "signals.npz")
        r = stage([*s, "signals", "ingest", str(work / "signals.npz"), "big", "--name",
                   "proxy", "--json"], env)
        records.append({**base, "method": None, "stage": "signals-ingest", **_clean(r)})
        for spec in args.methods.split(","):
            method, _, param = spec.partition(":")
            extra = ["--param", param] if param else []
            r = stage([*s, "select", "big", "--method", method, "--budget", args.budget,
                       *extra, "--json"], env)
            out = json.loads(r["stdout"])
            records.append({**base, "method": spec, "stage": "select (load+select+write)",
                            **_clean(r), "method_wall_s": out["wall_time_s"],
                            "n_selected": out["n_selected"]})
        for rec in records:
            print(json.dumps(rec), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = RESULTS / "scale_out.json"
    old = json.loads(path.read_text()) if path.exists() else []
    keep = [r for r in old if (r["executor"], r["n_rows"], r["dim"]) != ("local", n, d)]
    allrec = keep + records
    write_json(path, allrec)
    lines = ["| executor | rows | dim | stage | method | wall s | peak RSS MB | "
             "vectors MB |", "|---|---:|---:|---|---|---:|---:|---:|"]
    for r in allrec:
        lines.append(f"| {r['executor']} | {r['n_rows']:,} | {r['dim']} | {r['stage']} | "
                     f"{r['method'] or ''} | {r['wall_s']} | {r['peak_rss_mb']} | "
                     f"{r.get('vectors_mb', '')} |")
    (RESULTS / "scale_out.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _clean(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "stdout"}


if __name__ == "__main__":
    main()
