"""How much recall can any query-conditioned shift of the query buy on the WordNet fan-out task?

Same data and split as benchmarks/fanout.py (HNSW32 over all glosses; test hypernyms with ≥ 5
hyponyms; query = MiniLM("lemmas: gloss"); the hypernym itself is dropped). Recall@10 of the
hyponyms for the top-10 of:
- the query itself (top-k);
- q + c·δ, δ = the mean over training hypernyms of (hyponym centroid − q): one learned global
  direction, c ∈ {0.25, 0.5, 1};
- q + c·W q, W a ridge regression (λ = 1) of that offset on q over the training hypernyms;
- the test hypernym's own hyponym centroid (an oracle: it uses the labels);
- a two-view query: MiniLM("lemmas: gloss") + MiniLM(first lemma), normalised — a different
  query *text*, not a fan-out (no labels used).
The gap between the learned shifts and the oracle says how much a fan-out policy that sees only
the query embedding can hope to learn here. Writes results/fanout_ceiling.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, full_store, machine, write_json  # noqa: E402

from retrieval import load_index  # noqa: E402
from retrieval.index import normalise  # noqa: E402
from retrieval.objectives import reference_recall  # noqa: E402
from retrieval.teacher import hypernym_queries, hypernym_query_views  # noqa: E402


def main() -> None:
    st = full_store()
    index = load_index(st, "wordnet-hnsw32")
    X = normalise(np.asarray(st.embeddings("wordnet")[0]))
    splits = hypernym_queries(st, "wordnet", seed=0)
    (tr_rows, tr_refs), (te_rows, te_refs) = splits["train"], splits["test"]
    te_rows, te_refs = te_rows[:1000], te_refs[:1000]
    Qtr = hypernym_query_views(st, "wordnet", "all-MiniLM-L6-v2", tr_rows)[:, 0]
    Qte = hypernym_query_views(st, "wordnet", "all-MiniLM-L6-v2", te_rows)[:, 0]

    def recall(Q: np.ndarray) -> float:
        _, rows = index.search(normalise(Q), 11)
        sets = [[r for r in row if r != q][:10] for row, q in zip(rows, te_rows, strict=True)]
        return float(np.mean([reference_recall(s, y) for y, s in
                              zip(te_refs, sets, strict=True)]))

    centroid = normalise(np.stack([X[list(y)].mean(0) for y in tr_refs]))
    offset = centroid - Qtr
    delta = offset.mean(0)
    W = np.linalg.solve(Qtr.T @ Qtr + np.eye(Qtr.shape[1]), Qtr.T @ offset)
    from curate.embedding import embed_texts

    first = [lem[0].replace("_", " ") for lem in st.samples("wordnet")[te_rows]["lemmas"]]
    out = {"topk": recall(Qte),
           "two_view_query": recall(Qte + embed_texts(first)),
           "global_shift": {str(c): recall(Qte + c * delta) for c in (0.25, 0.5, 1.0)},
           "ridge_shift": {str(c): recall(Qte + c * (Qte @ W)) for c in (0.25, 0.5, 1.0)},
           "oracle_centroid": recall(np.stack([X[list(y)].mean(0) for y in te_refs])),
           "n_train": len(tr_rows), "n_test": len(te_rows), "machine": machine()}
    write_json(RESULTS / "fanout_ceiling.json", out)
    print(out)


if __name__ == "__main__":
    main()
