"""Fan-out retrieval on WordNet: top-k, MMR, the R4T teacher and the diffusion retriever.

Database: all 117,659 synsets (MiniLM gloss embeddings), one HNSW32 inner-product index for
every method (the teacher grounds 80 sub-queries per query; exact search would make its
training too slow on 2 cores). Queries: hypernyms from hyponym_sets.parquet with ≥ 5 hyponyms,
split by hypernym 70/10/20 (seed 0, ``retrieval.teacher.hypernym_queries``); the query vector
is the MiniLM embedding of "lemma, lemma: gloss" and the hypernym itself is never returned.
Reference set Y = its hyponyms.

Pipeline, per regime (``open``: composite reward; ``weak``: recall of Y): train the teacher
(GRPO), synthesise sets over the training queries (best-of-16, top half kept), train the
diffusion retriever on them. Test queries (up to 1,000), k = 10:
- recall@10 = |Y ∩ R| / |Y| and "capped" = |Y ∩ R| / min(|Y|, k);
- recall of a 500-item pool grown from the set (each item's 50 nearest neighbours,
  round-robin, distinct) — and, at the top level, of the query's own top-500;
- every objective of ``retrieval.objectives`` and the composite (0.6/0.2/0.2);
- for the sampling methods, mean ± std over 3 sampling seeds;
- "Vendi over repeated runs": Vendi of the 5 runs' 50 items together (seeds 0–4, first 200
  queries) — a deterministic method scores its single-run Vendi;
- latency per query at batch 1 (first 200 queries) and batch 64 (p50/p99 over batches).
Diffusion generates the teacher's sub-queries (default) and is sampled with 6 Heun steps (11
network evaluations) and, as ``-3step``, with 3 (5 evaluations); ``diffusion-weak-items`` is
the variant that generates the items' vectors instead; ``diffusion-open-w128-l3`` is a
128-wide, 3-layer denoiser (the default is 64 wide, 2 layers).
The teacher answers with best-of-8 by the composite reward (its query-time path; no labels)
and, as ``-mean``, with its deterministic mean fan-out (N = 1). Teacher and diffusion see the
query's three views (``retrieval.views``: full text, lemmas, gloss); top-k and MMR the full
text.
Headline: ``latency_ratio_teacher_over_diffusion`` (batch 64) and
``quality_fraction_diffusion_over_teacher`` (composite) for the open regime.
Writes results/fanout.json and results/fanout.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, full_store, machine, write_json, write_markdown  # noqa: E402

from retrieval import build_index, load_index  # noqa: E402
from retrieval.baselines import MMRRetriever, TopKRetriever  # noqa: E402
from retrieval.diffusion import DiffusionRetriever, load_diffusion  # noqa: E402
from retrieval.index import normalise  # noqa: E402
from retrieval.objectives import reference_recall, set_objectives, vendi  # noqa: E402
from retrieval.synthesis import synthesize, train_diffusion_from_store  # noqa: E402
from retrieval.teacher import (  # noqa: E402
    hypernym_queries,
    hypernym_query_views,
    load_teacher,
    train_teacher,
)

K, POOL, INDEX = 10, 500, "wordnet-hnsw32"


def drop(rows: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """(B, k + 1) → (B, k): remove each query's own row (or the last one)."""
    return np.array([[r for r in row if r != e][:k] for row, e in
                     zip(rows, exclude, strict=True)])


def grown_pool(index, X, rows: np.ndarray, size: int = POOL) -> list[list[int]]:
    """Each item's size/k nearest neighbours, merged round-robin, distinct, ``size`` at most."""
    B, k = rows.shape
    per = size // k
    _, nb = index.search(X[rows.reshape(-1)], per)
    nb = nb.reshape(B, k, per)
    out = []
    for b in range(B):
        seen: dict[int, None] = {}
        for j in range(per):
            for i in range(k):
                seen.setdefault(int(nb[b, i, j]), None)
        out.append(list(seen)[:size])
    return out


def recall(refs, sets, cap: int | None = None) -> float:
    return float(np.mean([reference_recall(s, r, cap) for r, s in zip(refs, sets, strict=True)]))


def evaluate(name, fn, Q, ex, refs, index, X, pool_rows, seeds) -> dict:
    """fn(views (B, V, d), exclude, seed) → (B, k) rows. Quality over ``seeds``, Vendi over 5
    runs, latency at batch 1 and 64."""
    per_seed = []
    for seed in seeds:
        rows = fn(Q, ex, seed)
        obj = set_objectives(Q[:, 0], X[rows], X[pool_rows])
        per_seed.append({"recall_at_k": recall(refs, rows.tolist()),
                         "recall_at_k_capped": recall(refs, rows.tolist(), K),
                         "recall_pool_500": recall(refs, grown_pool(index, X, rows)),
                         **{m: float(v.mean()) for m, v in obj.items()}})
    res = {m: float(np.mean([p[m] for p in per_seed])) for m in per_seed[0]}
    res["std"] = {m: float(np.std([p[m] for p in per_seed])) for m in per_seed[0]}
    n_rep = min(200, len(Q))
    runs = np.concatenate([fn(Q[:n_rep], ex[:n_rep], s) for s in range(5)], axis=1)
    res["vendi_repeated_runs"] = float(vendi(X[runs]).mean())
    lat = {}
    for bs, n in ((1, min(200, len(Q))), (64, len(Q))):
        times = []
        for s in range(0, n, bs):
            t0 = time.perf_counter()
            fn(Q[s:s + bs], ex[s:s + bs], 0)
            times.append((time.perf_counter() - t0) / len(Q[s:s + bs]))
        lat[f"batch{bs}"] = {"p50_ms": 1e3 * float(np.percentile(times, 50)),
                             "p99_ms": 1e3 * float(np.percentile(times, 99))}
    res["latency_per_query"] = lat
    print(f"{name:18s} recall {res['recall_at_k']:.3f} vendi {res['diversity']:.2f} composite "
          f"{res['composite']:.3f} b64 p50 {lat['batch64']['p50_ms']:.2f} ms", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200, help="GRPO steps per teacher")
    ap.add_argument("--epochs", type=int, default=40, help="diffusion epochs")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--regimes", default="open,weak")
    args = ap.parse_args()
    st = full_store()
    if INDEX not in st.indices():
        build_index(st, "wordnet", factory="HNSW32", name=INDEX)
    index = load_index(st, INDEX)
    X = normalise(np.asarray(st.embeddings("wordnet")[0]))
    qrows, refs = hypernym_queries(st, "wordnet", seed=0)["test"]
    qrows, refs = qrows[:args.n_test], refs[:args.n_test]
    ex = np.asarray(qrows)
    Qv = hypernym_query_views(st, "wordnet", "all-MiniLM-L6-v2", qrows)    # (n, V, d)
    _, top = index.search(Qv[:, 0], POOL + 1)
    pool_rows = drop(top, ex, POOL)

    topk, mmr = TopKRetriever(index), MMRRetriever(index, X, lam=0.5, pool=200)
    methods = {
        "topk": (lambda q, e, s: drop(topk.retrieve(q[:, 0], K + 1).row_idx, e, K), [0]),
        "mmr": (lambda q, e, s: drop(mmr.retrieve(q[:, 0], K + 1).row_idx, e, K), [0]),
    }
    pipeline = {}
    for regime in args.regimes.split(","):
        t = train_teacher(st, INDEX, k=K, regime=regime, steps=args.steps, seed=0,
                          progress=True)
        syn = synthesize(st, t["model_id"], n=16, keep=0.5, progress=True)
        dif = train_diffusion_from_store(st, syn["synthesis_id"], epochs=args.epochs, seed=0,
                                         progress=True)
        pipeline[regime] = {
            "teacher": {k: v for k, v in t.items() if k != "reward_history"},
            "synthesis": syn, "diffusion": dif}
        teacher = load_teacher(st, t["model_id"], index, X)
        mix, _ = teacher.policy(torch.as_tensor(Qv))          # learned view-mixing weights
        pipeline[regime]["teacher_mean_mix_lemmas_gloss"] = \
            mix.mean((0, 1)).detach().numpy().round(4).tolist()
        model = load_diffusion(st, dif["model_id"])[0]
        methods[f"teacher-{regime}"] = (
            lambda q, e, s, tch=teacher: tch.best_of_n(q, n=8, exclude=e, seed=s)[0],
            [0, 1, 2])
        methods[f"teacher-{regime}-mean"] = (       # N = 1: the deterministic mean fan-out
            lambda q, e, s, tch=teacher: tch.best_of_n(q, n=1, exclude=e)[0], [0])
        variants = [(model, 6, ""), (model, 3, "-3step")]   # 11 and 5 network evaluations
        if regime == "open":          # the larger denoiser the default replaced
            big = train_diffusion_from_store(st, syn["synthesis_id"], epochs=args.epochs,
                                             width=128, layers=3, seed=0, progress=True)
            pipeline[regime]["diffusion_w128_l3"] = big
            variants.append((load_diffusion(st, big["model_id"])[0], 6, "-w128-l3"))
        if regime == "weak":          # the paper's literal target: the items' own vectors
            items = train_diffusion_from_store(st, syn["synthesis_id"], epochs=args.epochs,
                                               target="items", seed=0, progress=True)
            pipeline[regime]["diffusion_items"] = items
            variants.append((load_diffusion(st, items["model_id"])[0], 6, "-items"))
        for mdl, steps, suffix in variants:
            retr = DiffusionRetriever(mdl, index, X, steps=steps)
            methods[f"diffusion-{regime}{suffix}"] = (
                lambda q, e, s, r=retr: r.retrieve(q, K, exclude=e, seed=s).row_idx, [0, 1, 2])
    results = {name: evaluate(name, fn, Qv, ex, refs, index, X, pool_rows, seeds)
               for name, (fn, seeds) in methods.items()}

    def headline(regime):
        t, d = results.get(f"teacher-{regime}"), results.get(f"diffusion-{regime}")
        if t is None or d is None:
            return None, None
        return (t["latency_per_query"]["batch64"]["p50_ms"]
                / d["latency_per_query"]["batch64"]["p50_ms"], d["composite"] / t["composite"])

    ratio, fraction = headline("open")
    out = {"latency_ratio_teacher_over_diffusion": ratio,
           "quality_fraction_diffusion_over_teacher": fraction,
           "headline_regime": "open",
           "regimes": {r: dict(zip(("latency_ratio_teacher_over_diffusion",
                                    "quality_fraction_diffusion_over_teacher"), headline(r),
                                   strict=True)) for r in pipeline},
           "k": K, "pool": POOL, "index": INDEX, "n_test_queries": len(Qv),
           "pool_recall_500": recall(refs, pool_rows.tolist()), "methods": results,
           "pipeline": pipeline, "args": vars(args), "machine": machine()}
    write_json(RESULTS / "fanout.json", out)
    lines = ["# Fan-out retrieval", "",
             f"{len(Qv)} WordNet test queries (hypernyms with ≥ 5 hyponyms; query = \"lemmas: "
             f"gloss\"), k = {K}, HNSW32 over 117,659 glosses; the query's own top-500 recalls "
             f"{out['pool_recall_500']:.3f}. Teacher/diffusion: mean ± std over 3 sampling "
             f"seeds. {machine()}. Produced by `python benchmarks/fanout.py`.", "",
             "| method | recall@10 | capped | pool-500 recall | Vendi | Vendi, 5 runs | "
             "groundedness | alignment | coverage | composite | p50/p99 ms (b=1) | "
             "p50/p99 ms/query (b=64) |", "|---|" + "---|" * 11]

    def pm(r, m, f=".3f"):
        return f"{r[m]:{f}}" + (f" ± {r['std'][m]:{f}}" if r["std"][m] > 0 else "")

    for name, r in results.items():
        lat = r["latency_per_query"]
        lines.append(f"| {name} | {pm(r, 'recall_at_k')} | {pm(r, 'recall_at_k_capped')} | "
                     f"{pm(r, 'recall_pool_500')} | {pm(r, 'diversity', '.2f')} | "
                     f"{r['vendi_repeated_runs']:.2f} | {pm(r, 'groundedness')} | "
                     f"{pm(r, 'alignment')} | {r['coverage']:.3f} | {pm(r, 'composite')} | "
                     f"{lat['batch1']['p50_ms']:.1f} / {lat['batch1']['p99_ms']:.1f} | "
                     f"{lat['batch64']['p50_ms']:.2f} / {lat['batch64']['p99_ms']:.2f} |")
    lines += ["", "Headline (batch 64): teacher / diffusion latency ratio and diffusion's "
              "composite as a fraction of the teacher's:", ""]
    for r, h in out["regimes"].items():
        if h["latency_ratio_teacher_over_diffusion"] is not None:
            lines.append(f"- {r}: {h['latency_ratio_teacher_over_diffusion']:.1f}× faster, "
                         f"{h['quality_fraction_diffusion_over_teacher']:.3f} of the quality")
    write_markdown(RESULTS / "fanout.md", lines)


if __name__ == "__main__":
    main()
