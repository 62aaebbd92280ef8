"""Scale: selection wall time and peak memory vs N (10k, 100k, 1M rows) for every static
method, on synthetic data (timing only; accuracy is measured elsewhere).

Data (seeded): N × 64 float32 vectors from a 10-class Gaussian mixture, labels, groups of
100 rows (for SnP), a 2,000-row target set shifted from the pool, and synthetic loss
trajectories (E = 10, plus correctness and class probabilities). Budget: 1% of N.

Each (method, N) runs in its own subprocess; a thread samples its resident memory every 5 ms
during ``select``, and ``extra_mb`` = that peak − the RSS just before (the method's working
memory on top of the data; allocations shorter than 5 ms can be missed). A run longer than
``--timeout`` seconds is recorded as a timeout. No method builds an N×N matrix: at N = 1M one
would need 4 TB. Writes results/scale.json and results/scale.md.
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


def child(method: str, n: int) -> None:
    from curate import make_selector

    data = synthetic(n)
    selector = make_selector(method)
    before = rss_mb()
    with PeakRSS() as mon:
        t0 = time.perf_counter()
        sel = selector.select(data, 0.01, seed=0)
        wall = time.perf_counter() - t0
    print(json.dumps({"method": method, "n": n, "k": len(sel), "wall_time_s": wall,
                      "peak_rss_mb": mon.peak, "rss_before_mb": before,
                      "extra_mb": mon.peak - before}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "N"))
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    from common import RESULTS, machine, write_json, write_markdown

    old_path = RESULTS / "scale.json"
    previous = json.loads(old_path.read_text())["records"] if old_path.exists() else []

    records = []
    for n in map(int, args.sizes.split(",")):
        for method in args.methods.split(","):
            t0 = time.perf_counter()
            try:
                proc = subprocess.run([sys.executable, __file__, "--child", method, str(n)],
                                      capture_output=True, text=True, timeout=args.timeout)
                rec = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                       else {"method": method, "n": n, "error": proc.stderr.strip()[-300:]})
            except subprocess.TimeoutExpired:
                rec = {"method": method, "n": n, "timeout_s": args.timeout}
            rec["process_s"] = time.perf_counter() - t0
            records.append(rec)
            print(json.dumps(rec), flush=True)
    ran = {(r["method"], r["n"]) for r in records}   # re-runs replace, the rest is kept
    records = [r for r in previous if (r["method"], r["n"]) not in ran] + records
    write_json(RESULTS / "scale.json", {"machine": machine(), "dim": 64, "budget": 0.01,
                                        "records": records})
    sizes = sorted({r["n"] for r in records})
    lines = ["# Scale", "",
             f"Selection wall time in seconds (extra peak memory in MB) at a 1% budget, "
             f"synthetic 64-dim data; {machine()}. Produced by `benchmarks/scale.py`.", "",
             "| method | " + " | ".join(f"N = {n:,}" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for method in dict.fromkeys(r["method"] for r in records):
        cells = []
        for n in sizes:
            r = next(x for x in records if x["method"] == method and x["n"] == n)
            cells.append(f"{r['wall_time_s']:.2f} ({r['extra_mb']:.0f})" if "wall_time_s" in r
                         else ("timeout" if "timeout_s" in r else "error"))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    write_markdown(RESULTS / "scale.md", lines)


if __name__ == "__main__":
    main()
