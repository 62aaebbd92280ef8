"""Partitioned greedy (k-means cells, ``curate.methods.partition``) against one greedy over all
rows, on the objective each method maximises or minimises — run by
``python benchmarks/scale_out.py --objective 1000000``.

Data (seeded): N × d float32 from a 100-class Gaussian mixture, as in ``scale_out.py``;
budget 1%; one pool (``per_class=False``), so the single greedy really sees all N rows.

- facility location at N rows: F(S) = Σ_i max_{j ∈ S} s_ij on the *single* greedy's own
  kNN graph (HNSW, 10 neighbours; the objective it maximised) — partitioned / single.
- k-center and herding at N rows too (one greedy is O(N·k·d): 10⁴ BLAS passes over N rows
  at N = 1M, ~10–20 min each on 2 cores): the cover radius max_i min_{c ∈ S} ‖x_i − c‖
  (lower is better) and the herding error ‖μ − mean(S)‖ (lower is better).
A uniform random subset of the same size is measured beside both. Writes
``results/partitioned_greedy.json`` (one record per method) and ``.md``.
"""

from __future__ import annotations

import json
import time

import faiss
import numpy as np
from common import RESULTS, machine, write_json

from curate.inputs import SelectionInput
from curate.methods.facility_location import knn_graph, lazy_greedy
from curate.methods.herding import herd
from curate.methods.kcenter import kcenter_greedy
from curate.selector import make_selector


def mixture(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(100, d)).astype(np.float32) * 2
    y = rng.integers(0, 100, size=n)
    return centres[y] + rng.standard_normal((n, d), dtype=np.float32)


def fl_value(W, S: np.ndarray) -> float:
    return float(np.asarray(W[:, S].max(axis=1).todense()).sum())


def radius(X: np.ndarray, S: np.ndarray) -> float:
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(np.ascontiguousarray(X[S]))
    dist, _ = index.search(X, 1)
    return float(np.sqrt(max(dist.max(), 0.0)))


def herding_error(X: np.ndarray, S: np.ndarray) -> float:
    return float(np.linalg.norm(X.mean(axis=0, dtype=np.float64)
                                - X[S].mean(axis=0, dtype=np.float64)))


def record(method: str, n: int, d: int, k: int, objective: str, single: float, part: float,
           rand: float, fraction: float, t_single: float, t_part: float, info: dict,
           digits: int) -> dict:
    return {"method": method, "n_rows": n, "dim": d, "k": k, "objective": objective,
            "single": round(single, digits), "partitioned": round(part, digits),
            "random": round(rand, digits), "fraction": round(fraction, 4),
            "single_s": round(t_single, 1), "partitioned_s": round(t_part, 1),
            "parts": info["parts"], **({"parts_exhausted": info["parts_exhausted"]}
                                       if "parts_exhausted" in info else {}),
            "machine": machine()}


def partitioned(method: str, X: np.ndarray, k: int, **params) -> tuple[np.ndarray, float, dict]:
    t0 = time.perf_counter()
    sel = make_selector(method, partition="cells", **params).select(
        SelectionInput.from_arrays(embeddings=X), k, seed=0)
    return sel.indices, time.perf_counter() - t0, sel.provenance.info


def run_objective(n: int, d: int) -> None:
    X = mixture(n, d)
    k = max(1, n // 100)
    rng = np.random.default_rng(1)
    records = []

    t0 = time.perf_counter()
    W = knn_graph(X, 10)
    single, _ = lazy_greedy(W, k)
    t_single = time.perf_counter() - t0
    S_part, t_part, info = partitioned("facility_location", X, k, per_class=False)
    rand = rng.choice(n, size=k, replace=False)
    f_single, f_part = fl_value(W, single), fl_value(W, S_part)
    records.append(record("facility_location", n, d, k,
                          "F(S) on the single greedy's kNN graph (higher is better)",
                          f_single, f_part, fl_value(W, rand), f_part / f_single, t_single,
                          t_part, info, 2))
    print(json.dumps(records[-1]), flush=True)
    del W

    m = n
    Xs, ks = X, k
    rand = rng.choice(m, size=ks, replace=False)
    t0 = time.perf_counter()
    kc_single, _ = kcenter_greedy(Xs, ks, 0)
    t_single = time.perf_counter() - t0
    kc_part, t_part, info = partitioned("kcenter", Xs, ks)
    r_single, r_part = radius(Xs, kc_single), radius(Xs, kc_part)
    records.append(record("kcenter", m, d, ks, "cover radius (lower is better)", r_single,
                          r_part, radius(Xs, rand), r_single / r_part, t_single, t_part,
                          info, 4))
    print(json.dumps(records[-1]), flush=True)

    t0 = time.perf_counter()
    h_single, _ = herd(Xs, ks)
    t_single = time.perf_counter() - t0
    h_part, t_part, info = partitioned("herding", Xs, ks, per_class=False)
    e_single, e_part = herding_error(Xs, h_single), herding_error(Xs, h_part)
    records.append(record("herding", m, d, ks, "‖mean(X) − mean(S)‖ (lower is better)",
                          e_single, e_part, herding_error(Xs, rand),
                          e_single / e_part if e_part else 1.0, t_single, t_part, info, 5))
    print(json.dumps(records[-1]), flush=True)

    write_json(RESULTS / "partitioned_greedy.json", records)
    lines = ["| method | rows | k | objective | one greedy | partitioned | random | "
             "fraction of one greedy | one greedy s | partitioned s | parts |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['method']} | {r['n_rows']:,} | {r['k']:,} | {r['objective']} | "
                     f"{r['single']} | {r['partitioned']} | {r['random']} | {r['fraction']} | "
                     f"{r['single_s']} | {r['partitioned_s']} | {r['parts']} |")
    lines.append("")
    lines.append("fraction: partitioned / one greedy for facility location (F, higher is "
                 "better); one greedy / partitioned for k-center and herding (lower is better), "
                 "so 1.0 means as good and below 1.0 worse.")
    (RESULTS / "partitioned_greedy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
