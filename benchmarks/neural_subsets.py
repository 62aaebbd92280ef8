"""Neural subset selection on WordNet hyponym sets: mean Jaccard coefficient (MJC) on the
test split for random, EquiVSet and INSET, mean ± std over seeds, plus training time.

Data (``curate.subsets.data``): S* = the direct hyponyms of a hypernym (3–15 of them),
V = S* + random distractor synsets up to |V| = 30, item features = MiniLM gloss embeddings;
``--max-sets`` sets drawn with seed 0, split 70/10/20 by hypernym (seed 0). Models: hidden
``--hidden``, Adam 1e-3, batch 64, ≤ ``--epochs`` epochs with early stopping on validation MJC
(patience 4); inference = top-|S*| by ψ. Each seed retrains from a new initialisation.
Paper anchor (Amazon Toys): INSET 0.769, EquiVSet 0.684, random 0.083.

Writes results/neural_subsets.json (records: model, seed, mjc, ...) and .md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    RESULTS,
    SHARED,
    full_store,
    group,
    machine,
    mean_std,
    write_json,
    write_markdown,
)

from curate.subsets import (  # noqa: E402
    build_pairs,
    mean_jaccard,
    predict,
    random_mjc,
    split,
    train_set_model,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / ".cache" /
                    "wordnet-full")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-sets", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=64)
    args = ap.parse_args()
    st = full_store(args.store)
    X = np.asarray(st.embeddings("wordnet")[0])
    ids = st.samples("wordnet", ["sample_id"])["sample_id"].to_list()
    sets = pl.read_parquet(SHARED / "wordnet" / "hyponym_sets.parquet")
    data = build_pairs(sets, ids, X, seed=0, max_sets=args.max_sets)
    train, val, test = split(data, seed=0)
    sizes = test.targets.sum(1)
    records = []
    for seed in range(args.seeds):
        records.append({"model": "random", "seed": seed, "mjc": random_mjc(test.targets, seed),
                        "train_time_s": 0.0})
        for kind in ("equivset", "inset"):
            model, info = train_set_model(kind, train, val, epochs=args.epochs,
                                          hidden=args.hidden, patience=4, seed=seed,
                                          progress=True)
            mjc = mean_jaccard(predict(model, test.features, sizes, seed=seed), test.targets)
            records.append({"model": kind, "seed": seed, "mjc": mjc,
                            "val_mjc": info["val_mjc"], "epochs_run": info["epochs_run"],
                            "train_time_s": info["train_time_s"]})
            print(records[-1], flush=True)
    write_json(RESULTS / "neural_subsets.json", records)
    lines = ["# Neural subset selection (WordNet hyponym sets)", "",
             f"{len(train)}/{len(val)}/{len(test)} train/val/test ground sets of 30 items; "
             f"{args.seeds} seeds; top-|S*| inference. {machine()}. Produced by "
             "`benchmarks/neural_subsets.py`.", "",
             "| model | test MJC | training time (s) |", "|---|---|---|"]
    for (m,), recs in group(records, "model").items():
        lines.append(f"| {m} | {mean_std(r['mjc'] for r in recs)} | "
                     f"{np.mean([r['train_time_s'] for r in recs]):.0f} |")
    write_markdown(RESULTS / "neural_subsets.md", lines)


if __name__ == "__main__":
    main()
