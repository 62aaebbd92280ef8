"""SnP at scale: its farthest-point stage cell by cell (``partition=auto``, k-means cells above
50,000 kept rows) against one farthest-point pass over the whole kept pool
(``partition=none``), in the same process on the same data and seed.

    python benchmarks/snp_scale.py --rows 1000000

Data: ``benchmarks/scale.py``'s synthetic pool (N × 64 float32, 10 classes, groups of 100
rows, a 2,000-row target shifted from the pool); budget 1%. For each run: wall seconds of
``select()`` and the Fréchet distance of the selection to the target (SnP's objective, lower
is better), computed in the original 64-d space (the 64-component PCA SnP works in is a
rotation of it, so the FD is the same) beside a uniform random subset of the same size and
the whole pool. Writes ``results/snp_scale.json`` (a list of records) and ``.md``.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
from common import RESULTS, machine, write_json, write_markdown
from scale import synthetic

from curate import make_selector
from curate.frechet import frechet_distance


def radius(X: np.ndarray, rows: np.ndarray, centres: np.ndarray) -> float:
    """Cover radius max_{i ∈ rows} min_{c ∈ centres} ‖x_i − x_c‖ (one FAISS search)."""
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(np.ascontiguousarray(X[centres]))
    worst = 0.0
    for lo in range(0, len(rows), 1 << 17):
        d = index.search(np.ascontiguousarray(X[rows[lo:lo + (1 << 17)]]), 1)[0]
        worst = max(worst, float(d.max()))
    return float(np.sqrt(worst))


def run(n: int) -> list[dict]:
    data = synthetic(n)
    X, T = data.embeddings, data.target
    k = n // 100
    rand = np.random.default_rng(1).choice(n, size=k, replace=False)
    fd_random, fd_pool = frechet_distance(X[rand], T), frechet_distance(X, T)
    records, picks = [], {}
    for partition in ("auto", "none"):             # the fast one first
        t0 = time.perf_counter()
        sel = make_selector("snp", partition=partition).select(data, k, seed=0)
        wall = time.perf_counter() - t0
        info = sel.provenance.info
        picks[partition] = sel.indices
        # the farthest-point stage's pool: the kept groups (each holds a seed, so each
        # appears among the picks); the same in both runs (stages I–II do not depend on it)
        pool = np.flatnonzero(np.isin(data.groups, np.unique(data.groups[sel.indices])))
        pool_rand = np.random.default_rng(2).choice(pool, size=k, replace=False)
        rec = {"method": "snp", "partition": partition, "n_rows": n, "dim": X.shape[1], "k": k,
               "wall_s": round(wall, 1), "fps_cells": info["fps_cells"],
               "searched_groups": info["searched_groups"], "fps_pool_rows": len(pool),
               "cover_radius": round(radius(X, pool, sel.indices), 3),
               "cover_radius_random": round(radius(X, pool, pool_rand), 3),
               "fd_selected": round(frechet_distance(X[sel.indices], T), 3),
               "fd_random": round(fd_random, 3), "fd_pool": round(fd_pool, 3),
               "machine": machine()}
        records.append(rec)
        print(rec, flush=True)
    auto, none = records
    auto["speedup_vs_none"] = round(none["wall_s"] / auto["wall_s"], 1)
    # how many of the cell-by-cell picks the single pass also made
    auto["overlap_with_none"] = round(float(np.isin(picks["auto"], picks["none"]).mean()), 3)
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    records = run(args.rows)
    write_json(RESULTS / "snp_scale.json", records)
    lines = ["# SnP at scale", "",
             f"`python benchmarks/snp_scale.py --rows {args.rows}`; {machine()}.", "",
             "| farthest-point stage | rows | k | its pool | cells | wall s | cover radius of "
             "its pool (random k of it) | FD(selection, target) | FD(random, target) | "
             "FD(pool, target) |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in records:
        lines.append(f"| partition={r['partition']} | {r['n_rows']:,} | {r['k']:,} | "
                     f"{r['fps_pool_rows']:,} | {r['fps_cells']} | {r['wall_s']} | "
                     f"{r['cover_radius']} ({r['cover_radius_random']}) | {r['fd_selected']} | "
                     f"{r['fd_random']} | {r['fd_pool']} |")
    lines += ["", f"one farthest-point pass / cell by cell: {records[0]['speedup_vs_none']}× "
              "the wall time, in the same process (one run each); "
              f"{records[0]['overlap_with_none']:.1%} of its picks are the single pass's too."]
    write_markdown(RESULTS / "snp_scale.md", lines)


if __name__ == "__main__":
    main()
