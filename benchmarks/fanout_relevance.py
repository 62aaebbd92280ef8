"""Learned relevance on the WordNet fan-out benchmark: does selecting by a relevance model
trained on the query set's references (``retrieval.relevance``) put the diffusion retriever
in issue #11's goal region — recall@10 above top-k's *and* Vendi ≥ 6.0 — where selecting by
cosine does not?

Same data and split as benchmarks/fanout.py (HNSW32 over all 117,659 WordNet glosses; the
bundled hypernym query set; 982 test queries; k = 10; the hypernym itself never returned).
The path is a user's: ``train_relevance`` with the CLI's defaults (what ``curate fanout
train-relevance`` runs: 600 updates, the state with the lowest val loss kept), once per seed
0, 1, 2, then retrievers built as the engine builds them (``make_retriever(...,
relevance=...)``). The settings, grids and val-split choice are benchmarks/fanout.py's
(``REL_LAMBDAS``, ``REL_TRADE_OFFS``, ``choose_on_val``: the highest mean val recall with mean
val Vendi ≥ 6.0). Rows:

- ``topk`` (cosine; deterministic: one run);
- ``mmr-cos-λ`` / ``mmr-rel-λ``: MMR over the query's top 200 by cosine / by the relevance
  model (mean ± std over the three relevance models);
- ``diffusion-<regime>-refine1-div<w>`` with ``-cos`` / ``-rel``: the stored diffusion
  retrievers (the latest open- and weak-regime models on the index) with one sweep of
  reward-guided grounding under weights {diversity: w, alignment: 1 − w}; alignment is
  cosine (``-cos``) or the relevance model (``-rel``); sampling seed s with relevance model s;
- ``teacher-weak-8-refine1-rel-div<w>`` at the diffusion's chosen w: the weak teacher's
  best-of-8 search, then the same grounding by the relevance model.

Latency: ms a query at batch 64 (the test set in batches of 64, wall time / queries; one
pass each, same process, nothing else running). Writes results/fanout_relevance.json and .md.
``--render`` redraws the .md from the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    RESULTS,
    latest_fanout_models,
    machine,
    mean_std,
    wordnet_fanout,
    write_json,
    write_markdown,
)

from retrieval.objectives import vendi  # noqa: E402
from retrieval.queries import recall_at_k  # noqa: E402

INDEX, K, BATCH = "wordnet-hnsw32", 10, 64


def run(retr, te, X, weights=None, seed=None) -> dict[str, float]:
    """(recall@10, Vendi, ms a query at batch 64) of ``retr`` on the test split."""
    rows, t0 = [], time.perf_counter()
    for s in range(0, len(te), BATCH):
        rows.append(retr.retrieve(te.views[s:s + BATCH], K, weights=weights, seed=seed,
                                  exclude=te.exclude[s:s + BATCH]).row_idx)
    ms = 1e3 * (time.perf_counter() - t0) / len(te)
    r = np.concatenate(rows)
    return {"recall_at_k": float(np.nanmean(recall_at_k(r, te.refs))),
            "vendi": float(vendi(X[r]).mean()), "ms_per_query_b64": ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render", action="store_true", help="redraw the .md from the JSON")
    args = ap.parse_args()
    if args.render:
        report(json.loads((RESULTS / "fanout_relevance.json").read_text()))
        return
    from fanout import REL_LAMBDAS, REL_SEEDS, REL_TRADE_OFFS, BySeed, choose_on_val, trade_off

    from retrieval.diffusion import load_diffusion
    from retrieval.queries import load_queries
    from retrieval.relevance import load_relevance, train_relevance
    from retrieval.retriever import make_retriever
    from retrieval.teacher import load_teacher

    st, index, X, qs, tr, te = wordnet_fanout()
    val = load_queries(st, qs, "val")
    models = {reg: latest_fanout_models(st, INDEX, reg) for reg in ("open", "weak")}
    if any(set(m) != {"teacher", "diffusion"} for m in models.values()):
        raise SystemExit("no open- and weak-regime teacher and diffusion models on "
                         f"{INDEX!r}: run `python benchmarks/fanout.py` first")
    rel_info, rels = [], {}
    for seed in REL_SEEDS:
        info = train_relevance(st, INDEX, qs, seed=seed, progress=True)
        rel_info.append({k: v for k, v in info.items() if k != "history"})
        rels[seed] = load_relevance(st, info["model_id"])
        print(f"relevance seed {seed}: val recall {info['val_recall_model']:.3f} "
              f"(cosine {info['val_recall_cosine']:.3f}), best step {info['best_step']}, "
              f"{info['train_s']:.0f} s", flush=True)
    diffusion = {reg: load_diffusion(st, m["diffusion"])[0] for reg, m in models.items()}
    teacher = load_teacher(st, models["weak"]["teacher"], index, X)

    def by_seed(name, **params):
        return BySeed({s: make_retriever(name, index, X, relevance=r, **params)
                       for s, r in rels.items()})

    choices = {
        "mmr-rel": choose_on_val(lambda lam: by_seed("mmr", lam=lam), REL_LAMBDAS, val),
        "diffusion-weak-refine1-rel": choose_on_val(
            lambda w: by_seed("diffusion", model=diffusion["weak"], refine=1),
            REL_TRADE_OFFS, val, trade_off)}
    print(choices, flush=True)
    rows: dict[str, list[dict]] = {}

    def add(name, res):
        rows.setdefault(name, []).append(res)
        print(name, {k: round(v, 3) for k, v in res.items()}, flush=True)

    add("topk", run(make_retriever("topk", index, X), te, X))
    for lam in REL_LAMBDAS:
        add(f"mmr-cos-{lam}", run(make_retriever("mmr", index, X, lam=lam), te, X))
        for rel in rels.values():
            add(f"mmr-rel-{lam}", run(make_retriever("mmr", index, X, lam=lam, relevance=rel),
                                      te, X))
    for w in REL_TRADE_OFFS:
        for reg, model in diffusion.items():
            for seed, rel in rels.items():
                cos = make_retriever("diffusion", index, X, model=model, refine=1)
                add(f"diffusion-{reg}-refine1-div{w}-cos", run(cos, te, X, trade_off(w), seed))
                learned = make_retriever("diffusion", index, X, model=model, refine=1,
                                         relevance=rel)
                add(f"diffusion-{reg}-refine1-div{w}-rel",
                    run(learned, te, X, trade_off(w), seed))
    w = choices["diffusion-weak-refine1-rel"]["chosen"]
    for seed, rel in rels.items():
        t = make_retriever("teacher", index, X, model=teacher, best_of=8, refine=1,
                           relevance=rel)
        add(f"teacher-weak-8-refine1-div{w}-rel", run(t, te, X, trade_off(w), seed))
    out = {"rows": rows, "relevance_models": rel_info, "choices": choices, "models": models,
           "query_set": qs, "n_test": len(te), "k": K, "seeds": list(REL_SEEDS),
           "machine": machine()}
    write_json(RESULTS / "fanout_relevance.json", out)
    report(out)


def report(out: dict) -> None:
    top = out["rows"]["topk"][0]["recall_at_k"]
    rel = out["relevance_models"]
    lines = ["# Fan-out: selecting by learned relevance", "",
             f"WordNet test queries: {out['n_test']} (query set `{out['query_set']}`, index "
             f"`{INDEX}`), k = {out['k']}. Relevance models: `curate fanout train-relevance` "
             f"defaults, seeds {', '.join(map(str, out['seeds']))} (val recall@10 of the top "
             "10 of each query's candidates: model "
             f"{mean_std(r['val_recall_model'] for r in rel)}, cosine "
             f"{mean_std(r['val_recall_cosine'] for r in rel)}; training "
             f"{np.mean([r['train_s'] for r in rel]):.0f} s each; best step "
             f"{', '.join(str(r['best_step']) for r in rel)} of {rel[0]['steps']}). Diffusion "
             "and teacher "
             f"models: {json.dumps(out['models'])}. Rows with several runs: mean ± std over "
             "the seeds (relevance model s, sampling seed s). Latency: one pass at batch "
             f"64, same process. {out['machine']}. Produced by "
             "`python benchmarks/fanout_relevance.py`. Goal region (issue #11): recall@10 "
             f"above top-k's ({top:.3f}) and Vendi ≥ 6.0.", "",
             "| method | recall@10 | Vendi | ms/query (b=64) | in goal region |",
             "|---|---|---|---|---|"]
    chosen = {f"mmr-rel-{out['choices']['mmr-rel']['chosen']}",
              f"diffusion-weak-refine1-div{out['choices']['diffusion-weak-refine1-rel']['chosen']}"
              "-rel"}
    for name, runs in out["rows"].items():
        r = np.mean([x["recall_at_k"] for x in runs])
        v = np.mean([x["vendi"] for x in runs])
        inside = r > top and v >= 6.0
        mark = " (chosen on val)" if name in chosen else ""
        lines.append(f"| {name}{mark} | {mean_std(x['recall_at_k'] for x in runs)} | "
                     f"{mean_std(x['vendi'] for x in runs)} | "
                     f"{np.mean([x['ms_per_query_b64'] for x in runs]):.2f} | "
                     f"{'yes' if inside else ''} |")
    lines += ["", "Val-split choice (mean over the seeds; recall@10 at Vendi):", ""]
    for fam, c in out["choices"].items():
        val = "; ".join(f"{s}: {v['recall_at_k']:.3f} at {v['vendi']:.2f}"
                        for s, v in c["val"].items())
        lines.append(f"- {fam}: chose {c['chosen']} — {val}")
    write_markdown(RESULTS / "fanout_relevance.md", lines)


if __name__ == "__main__":
    main()
