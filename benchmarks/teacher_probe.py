"""First probe of the R4T teacher on full WordNet (not the full fan-out benchmark).

HNSW32 index over all 117,659 gloss embeddings; the teacher (k = 10, default σ/β/lr) is
trained with GRPO for ``--steps`` steps in the weakly supervised regime (reward = recall of the
hyponyms) on the training hypernyms; on 300 test hypernyms we compare recall@10 of top-k,
of the teacher's best-of-8 chosen by the composite objective (what it does at query time,
without labels), and of the best-of-8 chosen by recall itself (an oracle upper bound).
Writes results/teacher_probe.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, machine, write_json  # noqa: E402

from retrieval import build_index, load_index  # noqa: E402
from retrieval.baselines import TopKRetriever  # noqa: E402
from retrieval.index import normalise  # noqa: E402
from retrieval.teacher import hypernym_queries, load_teacher, train_teacher  # noqa: E402
from stores import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    st = Store.open(Path(__file__).parent / ".cache" / "wordnet-full")
    if "wordnet-hnsw32" not in st.indices():
        build_index(st, "wordnet", factory="HNSW32", name="wordnet-hnsw32")
    t0 = time.perf_counter()
    out = train_teacher(st, "wordnet-hnsw32", k=10, regime="weak", steps=args.steps,
                        seed=args.seed)
    train_s = time.perf_counter() - t0
    idx = load_index(st, "wordnet-hnsw32")
    X = normalise(np.asarray(st.embeddings("wordnet")[0]))
    teacher = load_teacher(st, out["model_id"], idx, X)
    qr, refs = hypernym_queries(st, "wordnet", seed=0)["test"]
    qr, refs = qr[:300], refs[:300]
    Q = X[qr]

    def recall(i, rows):
        return len(refs[i] & set(rows.tolist())) / len(refs[i])

    top = TopKRetriever(idx).retrieve(Q, 11).row_idx
    top = np.array([[r for r in row if r != q][:10] for row, q in zip(top, qr, strict=True)])
    sets, _ = teacher.best_of_n(Q, n=8)
    _, oracle = teacher.best_of_n(Q, n=8, reward_fn=recall)
    res = {"steps": args.steps, "train_time_s": train_s,
           "train_reward_first": out["reward_first"], "train_reward_last": out["reward_last"],
           "recall_topk": float(np.mean([recall(i, top[i]) for i in range(len(qr))])),
           "recall_teacher_best_of_8_composite": float(np.mean(
               [recall(i, sets[i]) for i in range(len(qr))])),
           "recall_teacher_best_of_8_oracle": float(oracle.mean()),
           "n_test_queries": len(qr), "machine": machine()}
    write_json(RESULTS / "teacher_probe.json", res)
    print(res)


if __name__ == "__main__":
    main()
