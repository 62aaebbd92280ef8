"""Worked example: calibration-set selection on real text (WordNet), and how the set
diagnostics differ across strategies.

Pools: 400 noun synsets drawn at random (seed 0) that have a hypernym. For each synset (the
*instance*), the "model" is a MiniLM retriever: the query is the synset's lemma names
("dog, domestic dog, Canis familiaris"), embedded with all-MiniLM-L6-v2, and the candidates are
the 16 glosses it retrieves from all 117,659 glosses with FAISS (inner product), plus the
synset's own gloss as the ``reference``. Per candidate:

- metrics: ``rouge1`` = unigram F1 overlap with the true gloss, ``cosine`` = MiniLM cosine to
  the true gloss (z-scored over the whole pool and averaged: the paper's aggregate);
- ``likelihood`` = the retrieval score (cosine to the query), ``model_rank`` = retrieval rank;
- role: ``positive`` if the candidate synset shares the instance's hypernym (a sibling — a
  plausible but different meaning), else ``negative``; ``source`` = the synset's hypernym gloss.

The paper's downstream step — fine-tuning a summariser on the chosen sets and measuring its
quality — is out of reach offline (no summariser, no weights to download); this example shows
the selection and its diagnostics only. Writes results/calibration_example.{json,md}.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import faiss
import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))

from common import FULL_STORE, RESULTS, full_store, machine, write_json, write_markdown  # noqa: E402, E501

from curate.calibration import FAITHFULNESS, RELEVANCE, select_calibration  # noqa: E402
from curate.defaults import wordnet_path  # noqa: E402
from curate.embedding import embed_texts  # noqa: E402

N_INSTANCES, N_RETRIEVED = 400, 16


def rouge1(a: str, b: str) -> float:
    ta, tb = Counter(a.lower().split()), Counter(b.lower().split())
    common = sum((ta & tb).values())
    if not common:
        return 0.0
    p, r = common / sum(ta.values()), common / sum(tb.values())
    return 2 * p * r / (p + r)


def build_pools(store_dir: Path) -> pl.DataFrame:
    syn = pl.read_parquet(wordnet_path())
    st = full_store(store_dir)
    X = np.ascontiguousarray(st.embeddings("wordnet")[0], dtype=np.float32)
    ids = st.samples("wordnet", ["sample_id"])["sample_id"].to_list()
    row_of = {s: i for i, s in enumerate(ids)}
    gloss = dict(zip(syn["synset_id"], syn["gloss"], strict=True))
    hyper = dict(zip(syn["synset_id"], syn["hypernyms"].to_list(), strict=True))
    rng = np.random.default_rng(0)
    nouns = syn.filter((pl.col("pos") == "n") & (pl.col("hypernyms").list.len() > 0))
    picked = nouns[np.sort(rng.choice(nouns.height, N_INSTANCES, replace=False))]
    queries = [", ".join(lem).replace("_", " ") for lem in picked["lemmas"].to_list()]
    Q = embed_texts(queries, progress=True, backend="torch")   # as full_store's items
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    sims, nbrs = index.search(Q, N_RETRIEVED + 1)
    rows = []
    for i, sid in enumerate(picked["synset_id"].to_list()):
        true_vec = X[row_of[sid]]
        parent = set(hyper[sid])
        src = gloss.get(next(iter(parent)), "") if parent else ""
        cands = [(ids[j], float(s)) for j, s in zip(nbrs[i], sims[i], strict=True)
                 if ids[j] != sid][:N_RETRIEVED]
        cands.append((sid, float(Q[i] @ true_vec)))
        order = np.argsort([-s for _, s in cands], kind="stable")
        for rank, c in enumerate(order, start=1):
            cid, score = cands[c]
            role = ("reference" if cid == sid else
                    "positive" if parent & set(hyper[cid]) else "negative")
            rows.append({"instance_id": sid, "candidate_id": cid, "text": gloss[cid],
                         "role": role, "rouge1": rouge1(gloss[cid], gloss[sid]),
                         "cosine": float(X[row_of[cid]] @ true_vec), "likelihood": score,
                         "model_rank": rank, "source": src})
    return pl.DataFrame(rows)


def main() -> None:
    store = FULL_STORE
    pools = build_pools(store)
    metrics = {"rouge1": 1.0, "cosine": 1.0}
    results = []
    for mode, strategies in (("relevance", RELEVANCE), ("faithfulness", FAITHFULNESS)):
        for strategy in strategies:
            _, diag = select_calibration(pools, metrics=metrics, mode=mode, strategy=strategy,
                                         seed=0)
            row = {"mode": mode, "strategy": strategy}
            for c in ("margin", "diversity", "likelihood", "surprise", "density", "length",
                      "padded"):
                vals = diag[c].drop_nulls().drop_nans() if diag[c].dtype.is_float() \
                    else diag[c].drop_nulls()
                row[c] = float(vals.mean()) if len(vals) else None
            results.append(row)
    roles = pools["role"].value_counts().sort("role").to_dicts()
    write_json(RESULTS / "calibration_example.json",
               {"instances": N_INSTANCES, "retrieved": N_RETRIEVED, "roles": roles,
                "machine": machine(), "results": results})
    lines = ["# Calibration sets on WordNet (worked example)", "",
             f"{N_INSTANCES} noun synsets; candidates = 16 glosses retrieved by a MiniLM lemma "
             "query + the true gloss. Mean per-set diagnostics. Produced by "
             "`benchmarks/calibration_example.py`.", "",
             "| mode | strategy | margin | diversity | likelihood | surprise | density | length "
             "| padded slots |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['mode']} | {r['strategy']} | {r['margin']:.3f} | "
                     f"{r['diversity']:.3f} | {r['likelihood']:.3f} | {r['surprise']:.3f} | "
                     f"{r['density']:.2f} | {r['length']:.1f} | {r['padded']:.2f} |")
    write_markdown(RESULTS / "calibration_example.md", lines)


if __name__ == "__main__":
    main()
