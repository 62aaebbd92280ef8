"""Fan-out retrieval on WordNet — baselines only so far (topk, mmr); the teacher and the
diffusion retriever are not built yet, so the headline keys are written as null.

Database: all 117,659 synsets (MiniLM gloss embeddings, exact ``Flat`` inner-product index).
Queries: hypernyms from hyponym_sets.parquet with ≥ 5 hyponyms, split by hypernym 70/10/20
(seed 0); the query vector is the hypernym's gloss embedding and the hypernym itself is removed
from the results (it would otherwise be every query's first hit). Reference set Y = its
hyponyms. On up to 1,000 test queries at k = 10: recall of Y among the k items and among a
500-item pool (recall = |Y ∩ R| / |Y|; "capped" divides by min(|Y|, k) instead, since
|Y| often exceeds k), every set objective and the composite, and latency per query at batch 1 and
batch 64 (p50/p99 over batches). Writes results/fanout.json and results/fanout.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, SHARED, machine, write_json, write_markdown  # noqa: E402

from retrieval import build_index, load_index  # noqa: E402
from retrieval.baselines import MMRRetriever, TopKRetriever  # noqa: E402
from retrieval.index import normalise  # noqa: E402
from retrieval.objectives import set_objectives  # noqa: E402
from stores import Store  # noqa: E402

K, POOL, N_TEST = 10, 500, 1000


def main() -> None:
    st = Store.open(Path(__file__).parent / ".cache" / "wordnet-full")
    if "wordnet-flat" not in st.indices():
        build_index(st, "wordnet", factory="Flat", name="wordnet-flat")
    index = load_index(st, "wordnet-flat")
    X = normalise(np.asarray(st.embeddings("wordnet")[0]))
    ids = st.samples("wordnet", ["sample_id"])["sample_id"].to_list()
    row_of = {s: i for i, s in enumerate(ids)}
    sets = pl.read_parquet(SHARED / "wordnet" / "hyponym_sets.parquet").filter(
        pl.col("size") >= 5)
    order = np.random.default_rng(0).permutation(sets.height)
    test = sets[order[: int(0.2 * sets.height)]][:N_TEST]
    qrows = np.array([row_of[s] for s in test["set_id"]])
    refs = [{row_of[m] for m in members} for members in test["members"].to_list()]
    Q = X[qrows]
    methods = {"topk": TopKRetriever(index),
               "mmr": MMRRetriever(index, X, lam=0.5, pool=200)}
    _, pool_rows = index.search(Q, POOL + 1)
    results = {}
    for name, retr in methods.items():
        res = retr.retrieve(Q, K + 1)
        rows = np.array([[r for r in row if r != q][:K] for row, q in
                         zip(res.row_idx, qrows, strict=True)])
        pool = np.array([[r for r in row if r != q][:POOL] for row, q in
                         zip(pool_rows, qrows, strict=True)])
        obj = set_objectives(Q, X[rows], X[pool])
        recall = np.mean([len(ref & set(r)) / len(ref) for ref, r in
                          zip(refs, rows.tolist(), strict=True)])
        capped = np.mean([len(ref & set(r)) / min(len(ref), K) for ref, r in
                          zip(refs, rows.tolist(), strict=True)])
        lat = {}
        for bs in (1, 64):
            times = []
            for s in range(0, min(len(Q), 256 if bs == 1 else len(Q)), bs):
                t0 = time.perf_counter()
                retr.retrieve(Q[s:s + bs], K)
                times.append((time.perf_counter() - t0) / len(Q[s:s + bs]))
            lat[f"batch{bs}"] = {"p50_ms": 1e3 * float(np.percentile(times, 50)),
                                 "p99_ms": 1e3 * float(np.percentile(times, 99))}
        results[name] = {"recall_at_k": float(recall), "recall_at_k_capped": float(capped),
                         **{m: float(v.mean()) for m, v in obj.items()},
                         "latency_per_query": lat}
    pool_recall = float(np.mean([len(ref & set(p)) / len(ref) for ref, p in
                                 zip(refs, pool.tolist(), strict=True)]))
    out = {"latency_ratio_teacher_over_diffusion": None,
           "quality_fraction_diffusion_over_teacher": None,
           "note": "teacher and diffusion retriever not built yet; baselines only",
           "k": K, "pool": POOL, "n_test_queries": len(Q), "pool_recall_500": pool_recall,
           "methods": results, "machine": machine()}
    write_json(RESULTS / "fanout.json", out)
    lines = ["# Fan-out retrieval (baselines)", "",
             f"{len(Q)} WordNet test queries (hypernyms with ≥ 5 hyponyms), k = {K}, exact "
             f"index over 117,659 glosses; recall of the 500-item pool {pool_recall:.3f}. "
             f"{machine()}. Produced by `benchmarks/fanout.py`.", "",
             "| method | recall@10 | capped | Vendi | groundedness | alignment | coverage "
             "| composite | p50 ms (b=1) | p50 ms/query (b=64) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['recall_at_k']:.3f} | {r['recall_at_k_capped']:.3f} | "
                     f"{r['diversity']:.2f} | "
                     f"{r['groundedness']:.3f} | {r['alignment']:.3f} | {r['coverage']:.3f} | "
                     f"{r['composite']:.3f} | {r['latency_per_query']['batch1']['p50_ms']:.2f}"
                     f" | {r['latency_per_query']['batch64']['p50_ms']:.3f} |")
    write_markdown(RESULTS / "fanout.md", lines)


if __name__ == "__main__":
    main()
