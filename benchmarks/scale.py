"""Scale: selection wall time and peak memory vs N (10k, 100k, 1M rows) for every static
method, on synthetic data (timing only; accuracy is measured elsewhere).

Data (seeded): N × 64 float32 vectors from a 10-class Gaussian mixture, labels, groups of
100 rows (for SnP), a 2,000-row target set shifted from the pool, and synthetic loss
trajectories (E = 10, plus correctness and class probabilities). Budget: 1% of N.

Each (method, N) runs in its own subprocess; a thread samples its resident memory every 5 ms
during ``select``, and ``extra_mb`` = that peak − the RSS just before (the method's working
memory on top of the data; allocations shorter than 5 ms can be missed). A run longer than
``--timeout`` seconds is recorded as a timeout. No method builds an N×N matrix: at N = 1M one
would need 4 TB. The same child then runs the store path on the same data stored as a
dataset (``store_path_s``: load + select + write, what ``curate select`` does). Writes
results/scale.json and results/scale.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

METHODS = ("random", "stratified", "cld", "el2n", "forgetting", "uncertainty", "kcenter",
           "herding", "facility_location", "autocoreset", "snp")  # inset needs a trained model
SIZES = (10_000, 100_000, 1_000_000)


def rss_mb() -> float:
    """Current resident memory (MB) from /proc/self/statm."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRSS:
    """Polls the current RSS every 5 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        import threading

        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def synthetic(n: int, d: int = 64, classes: int = 10, E: int = 10):
    from curate import CandidateSignals, SelectionInput

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, d)).astype(np.float32) * 3
    y = rng.integers(0, classes, size=n)
    X = centres[y] + rng.normal(size=(n, d)).astype(np.float32)
    target = (centres[rng.integers(0, classes, 2000)] + 0.5
              + rng.normal(size=(2000, d))).astype(np.float32)
    decay = np.exp(-np.arange(1, E + 1)[:, None] * rng.uniform(0.05, 0.5, size=(1, n)))
    losses = (rng.uniform(0.5, 2.0, (1, n)) * decay).astype(np.float32)
    m = max(classes, n // 100)
    sig = CandidateSignals(train_losses=losses, val_losses=losses[:, :m],
                           val_labels=y[:m], train_correct=rng.random((E, n)) < 0.8,
                           train_probs=rng.dirichlet(np.ones(classes), size=n).astype(np.float32))
    return SelectionInput(row_idx=np.arange(n), labels=y, embeddings=X, signals=sig,
                          groups=np.arange(n) // 100, target=target)


def build_store(n: int, root: Path) -> None:
    """The same synthetic data as a store: dataset ``pool`` (vectors as embedding
    ``ingested``, a ``grp`` column, a 90/10 train/val split, 10-checkpoint signals) and a
    ``target`` dataset (SnP's target domain)."""
    import polars as pl

    from curate import SelectionInput
    from stores import IngestSpec, Signals, Store

    data: SelectionInput = synthetic(n)
    st = Store.create(root)
    frame = pl.DataFrame({"uid": np.char.add("s", np.arange(n).astype(str)),
                          "label": data.labels, "grp": data.groups})
    st.add_dataset(frame, "pool", IngestSpec(label_column="label", id_column="uid",
                                             val_fraction=0.1, test_fraction=0.0),
                   vectors=data.embeddings)
    st.add_dataset(pl.DataFrame({"uid": np.char.add("t", np.arange(len(data.target))
                                                    .astype(str))}), "target",
                   IngestSpec(id_column="uid", val_fraction=0.0, test_fraction=0.0),
                   vectors=data.target)
    split = st.samples("pool", ["row_idx", "split"])
    tr = split.filter(pl.col("split") == "train")["row_idx"].to_numpy()
    va = split.filter(pl.col("split") == "val")["row_idx"].to_numpy()
    s = data.signals
    st.write_signals("pool", "proxy", Signals(
        train_rows=tr, train_losses=np.ascontiguousarray(s.train_losses[:, tr]),
        val_rows=va, val_losses=np.ascontiguousarray(s.train_losses[:, va]),
        train_correct=np.ascontiguousarray(s.train_correct[:, tr]),
        train_probs=np.ascontiguousarray(s.train_probs[tr]), meta={"name": "proxy"}))


def child(method: str, n: int, store: str) -> None:
    import curate
    from curate import make_selector

    data = synthetic(n)
    selector = make_selector(method)
    before = rss_mb()
    with PeakRSS() as mon:
        t0 = time.perf_counter()
        sel = selector.select(data, 0.01, seed=0)
        wall = time.perf_counter() - t0
    del data
    extra = {"group_column": "grp", "target": "target"} if method == "snp" else {}
    t0 = time.perf_counter()
    with PeakRSS() as mon_store:   # the path a user takes: load from the store, select, write
        stored = curate.select(method=method, budget=0.01, dataset="pool", store=store,
                               seed=0, **extra)
    store_wall = time.perf_counter() - t0
    print(json.dumps({"method": method, "n": n, "k": len(sel), "wall_time_s": wall,
                      "peak_rss_mb": mon.peak, "rss_before_mb": before,
                      "extra_mb": mon.peak - before, "store_path_s": store_wall,
                      "store_k": stored.provenance.n_selected,
                      "store_peak_rss_mb": mon_store.peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "N", "STORE"))
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    from common import RESULTS, machine, write_json, write_markdown

    old_path = RESULTS / "scale.json"
    previous = json.loads(old_path.read_text())["records"] if old_path.exists() else []

    import shutil
    import tempfile

    records = []
    for n in map(int, args.sizes.split(",")):
        work = Path(tempfile.mkdtemp(prefix="curate-scale-"))
        build_store(n, work / "store")
        for method in args.methods.split(","):
            t0 = time.perf_counter()
            try:
                proc = subprocess.run([sys.executable, __file__, "--child", method, str(n),
                                       str(work / "store")],
                                      capture_output=True, text=True, timeout=args.timeout)
                rec = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                       else {"method": method, "n": n, "error": proc.stderr.strip()[-300:]})
            except subprocess.TimeoutExpired:
                rec = {"method": method, "n": n, "timeout_s": args.timeout}
            rec["process_s"] = time.perf_counter() - t0
            rec["machine"] = machine()     # per record: a re-run of some rows may be elsewhere
            records.append(rec)
            print(json.dumps(rec), flush=True)
        shutil.rmtree(work, ignore_errors=True)
    ran = {(r["method"], r["n"]) for r in records}   # re-runs replace, the rest is kept
    records = [r for r in previous if (r["method"], r["n"]) not in ran] + records
    write_json(RESULTS / "scale.json", {"machine": machine(), "dim": 64, "budget": 0.01,
                                        "records": records})
    sizes = sorted({r["n"] for r in records})
    lines = ["# Scale", "",
             f"Selection wall time in seconds (extra peak memory in MB) at a 1% budget, "
             f"synthetic 64-dim data. Last run on {machine()}; each record's host is its "
             "`machine` in the JSON (records without one predate it and may come from "
             "another host). Produced by `benchmarks/scale.py`.",
             "Each cell: `select()` on arrays in memory (extra MB) / the store path — "
             "`curate.select(store=…)`: load the candidates (90% of N: the rest is the "
             "validation split) from the store, select, write the selection.", "",
             "| method | " + " | ".join(f"N = {n:,}" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for method in dict.fromkeys(r["method"] for r in records):
        cells = []
        for n in sizes:
            r = next((x for x in records if x["method"] == method and x["n"] == n), {})
            if "wall_time_s" in r:
                store = f" / {r['store_path_s']:.2f}" if "store_path_s" in r else " / —"
                cells.append(f"{r['wall_time_s']:.2f} ({r['extra_mb']:.0f}){store}")
            else:
                cells.append("timeout" if "timeout_s" in r else ("error" if r else "—"))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    write_markdown(RESULTS / "scale.md", lines)


if __name__ == "__main__":
    main()
