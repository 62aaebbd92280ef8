"""How much recall can any query-conditioned shift of the query buy on the WordNet fan-out task?

Same data and split as benchmarks/fanout.py (HNSW32 over all glosses; the bundled WordNet query
set's test split: hypernyms with ≥ 5 hyponyms; query = MiniLM("lemmas: gloss"); the hypernym
itself is dropped). Recall@10 of the
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

from common import RESULTS, machine, wordnet_fanout, write_json  # noqa: E402

from retrieval.index import normalise  # noqa: E402
from retrieval.queries import recall_at_k  # noqa: E402


def main() -> None:
    st, index, X, qs, tr, te = wordnet_fanout()
    n = min(1000, len(te))
    Qtr, Qte, ex, refs = tr.views[:, 0], te.views[:n, 0], te.exclude[:n], te.refs[:n]

    def recall(Q: np.ndarray) -> float:
        _, rows = index.search(normalise(Q), 11)
        keep = rows != ex[:, None]
        order = np.argsort(~keep, axis=1, kind="stable")[:, :10]
        return float(np.nanmean(recall_at_k(np.take_along_axis(rows, order, 1), refs)))

    def centroids(R: np.ndarray) -> np.ndarray:
        valid = R >= 0
        return normalise((X[np.clip(R, 0, None)] * valid[:, :, None]).sum(1)
                         / valid.sum(1, keepdims=True))

    offset = centroids(tr.refs) - Qtr
    delta = offset.mean(0)
    W = np.linalg.solve(Qtr.T @ Qtr + np.eye(Qtr.shape[1]), Qtr.T @ offset)
    from core.encoders import embed_texts

    lemmas = st.samples("wordnet", ["lemmas"])["lemmas"]
    first = [lem[0].replace("_", " ") for lem in lemmas[ex.tolist()].to_list()]
    out = {"topk": recall(Qte),
           "two_view_query": recall(Qte + embed_texts(first, backend="torch")),  # items: torch
           "global_shift": {str(c): recall(Qte + c * delta) for c in (0.25, 0.5, 1.0)},
           "ridge_shift": {str(c): recall(Qte + c * (Qte @ W)) for c in (0.25, 0.5, 1.0)},
           "oracle_centroid": recall(centroids(refs)), "query_set": qs,
           "n_train": len(tr), "n_test": n, "machine": machine()}
    write_json(RESULTS / "fanout_ceiling.json", out)
    print(out)


if __name__ == "__main__":
    main()
