"""Neural subset selection on the papers' tasks and on WordNet: mean Jaccard coefficient (MJC)
on the test split for random, EquiVSet and INSET, mean ± std over seeds, plus training time.

Tasks (``--tasks``; generators in ``curate.subsets.tasks`` and ``curate.subsets.data``):
- ``gaussian`` and ``moons`` — the EquiVSet reference repository's synthetic tasks, |V| = 100,
  |S*| = 10, 1000 train / 1000 val / 1000 test sets, 2-D points.
- ``fmnist-anomaly`` — set anomaly detection built like the paper's Double-MNIST task: |V| =
  10 Fashion-MNIST images of one class with |S*| ∈ {2, 3} images of other classes, S* = the
  odd ones; fixed PCA-64 features (fit on the training images); 10,000 train / 1000 val sets
  drawn from the training images (different sets, but they share images: early stopping sees
  images the model trained on), 1000 test sets from the test images (never seen).
- ``wordnet`` — S* = the direct hyponyms of a hypernym (3–15), V = S* + distractors up to 30,
  MiniLM gloss features; ``--max-sets`` sets split 70/10/20 by hypernym.

Every task's data is fixed (seed 0); each seed retrains from a new initialisation. Models:
hidden ``--hidden``, Adam 1e-3, batch 64, ≤ ``--epochs`` epochs with early stopping on
validation MJC (``--patience``); inference = top-|S*| by ψ (the oracle size, for every model
and for random). Anchors: EquiVSet paper (Ou et al. 2022) Table 2 — Double MNIST random 0.0816,
DeepSet 0.111, EquiVSet-ind 0.405, EquiVSet-copula 0.588; CelebA random 0.219, EquiVSet-copula
0.555; Amazon Toys (INSET paper): INSET 0.769, EquiVSet 0.684, random 0.083.

Writes results/neural_subsets.json (records: task, model, seed, mjc, …; running some tasks
keeps the other tasks' records) and results/neural_subsets.md. Torch runs on one thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    RESULTS,
    SHARED,
    full_store,
    group,
    machine,
    mean_std,
    merge_records,
    read_fashion_mnist,
    write_json,
    write_markdown,
)

from curate.subsets import (  # noqa: E402
    build_pairs,
    mean_jaccard,
    predict,
    random_mjc,
    split,
    top_k_mask,
    train_set_model,
)
from curate.subsets.tasks import TASKS as PAPER_TASKS  # noqa: E402
from curate.subsets.tasks import (  # noqa: E402
    anomaly_sets,
    gaussian_oracle_scores,
    pca_features,
    split_seed,
    synthetic_task,
)

TASKS = (*PAPER_TASKS, "wordnet")
ANCHORS = {
    "gaussian": "EquiVSet paper Table 1 (its numbers could not be read offline, so none is "
                "quoted); random ≈ 0.055 by construction (hypergeometric overlap)",
    "moons": "EquiVSet paper Table 1 (not quoted, as above); random ≈ 0.055",
    "fmnist-anomaly": "Double MNIST (EquiVSet Table 2): random 0.0816, DeepSet 0.111, "
                      "EquiVSet-ind 0.405, EquiVSet-copula 0.588 (a CNN on raw digits, "
                      "|V| = 10; not the same images)",
    "wordnet": "no paper number applies (our task); Amazon Toys: INSET 0.769, EquiVSet 0.684",
}


def task_data(task: str, args):
    if task in ("gaussian", "moons"):
        return synthetic_task(task, 0)
    if task == "fmnist-anomaly":
        Xtr, ytr, Xte, yte = read_fashion_mnist()
        Ftr, Fte = pca_features(Xtr, Xte)
        return (anomaly_sets(Ftr, ytr, 10_000, split_seed(0, 0)),
                anomaly_sets(Ftr, ytr, 1_000, split_seed(0, 1)),
                anomaly_sets(Fte, yte, 1_000, split_seed(0, 2)))
    st = full_store(args.store)
    X = np.asarray(st.embeddings("wordnet")[0])
    ids = st.samples("wordnet", ["sample_id"])["sample_id"].to_list()
    sets = pl.read_parquet(SHARED / "wordnet" / "hyponym_sets.parquet")
    return split(build_pairs(sets, ids, X, seed=0, max_sets=args.max_sets), seed=0)


def oracle_record(test) -> dict:
    """The Gaussian task's ceiling: top-|S*| by the Bayes scores with the true centres known
    (``gaussian_oracle_scores``); deterministic, so one run."""
    pred = top_k_mask(gaussian_oracle_scores(test), test.targets.sum(1))
    return {"task": "gaussian", "model": "bayes-oracle", "seed": 0,
            "mjc": mean_jaccard(pred, test.targets), "train_time_s": 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / ".cache" /
                    "wordnet-full")
    ap.add_argument("--tasks", default="gaussian,moons,fmnist-anomaly")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-sets", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    torch.set_num_threads(1)
    new, sizes_of = [], {}
    for task in tasks:
        train, val, test = task_data(task, args)
        sizes = test.targets.sum(1)
        sizes_of[task] = (len(train), len(val), len(test), test.targets.shape[1])
        if task == "gaussian":
            new.append(oracle_record(test))
        for seed in range(args.seeds):
            new.append({"task": task, "model": "random", "seed": seed,
                        "mjc": random_mjc(test.targets, seed), "train_time_s": 0.0})
            for kind in ("equivset", "inset"):
                model, info = train_set_model(kind, train, val, epochs=args.epochs,
                                              hidden=args.hidden, patience=args.patience,
                                              seed=seed, progress=True)
                mjc = mean_jaccard(predict(model, test.features, sizes, seed=seed),
                                   test.targets)
                new.append({"task": task, "model": kind, "seed": seed, "mjc": mjc,
                            "val_mjc": info["val_mjc"], "epochs_run": info["epochs_run"],
                            "train_time_s": info["train_time_s"],
                            "sets": list(sizes_of[task]), "hidden": args.hidden,
                            "max_epochs": args.epochs, "patience": args.patience})
                print(new[-1], flush=True)
    path = args.out / "neural_subsets.json"
    records = merge_records(path, new, ("task", "model", "seed"))
    write_json(path, records)
    write_markdown(args.out / "neural_subsets.md", markdown(records, args))


def markdown(records: list[dict], args) -> list[str]:
    lines = ["# Neural subset selection", "",
             f"Test MJC, top-|S*| inference, mean ± std over seeds (each seed a new "
             f"initialisation; the data fixed); early stopping on validation MJC; the setup "
             f"column is hidden width / max epochs / patience. {machine()}, torch on one "
             "thread. Produced by `benchmarks/neural_subsets.py`.", "",
             "| task | sets (train/val/test × \\|V\\|) | setup | model | seeds | test MJC | "
             "INSET − EquiVSet (in std) | training time (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for (task,), recs in group(records, "task").items():
        by = group(recs, "model")
        sets = next((r["sets"] for r in recs if r.get("sets")), None)
        shape = f"{sets[0]}/{sets[1]}/{sets[2]} × {sets[3]}" if sets else "—"
        trained = next((r for r in recs if r.get("hidden")), {})
        setup = (f"{trained['hidden']} / {trained['max_epochs']} / {trained['patience']}"
                 if trained else "—")
        eq = np.array([r["mjc"] for r in by.get(("equivset",), [])])
        ins = np.array([r["mjc"] for r in by.get(("inset",), [])])
        gap = "—"
        if len(eq) > 1 and len(ins) > 1:
            pooled = float(np.sqrt((eq.std() ** 2 + ins.std() ** 2) / 2)) or float("nan")
            gap = f"{(ins.mean() - eq.mean()) / pooled:+.1f}"
        for (m,), rs in by.items():
            lines.append(f"| {task} | {shape} | {setup} | {m} | {len(rs)} | "
                         f"{mean_std(r['mjc'] for r in rs)} | "
                         f"{gap if m == 'inset' else ''} | "
                         f"{np.mean([r['train_time_s'] for r in rs]):.0f} |")
    lines += ["", "Anchors:"] + [f"- {t}: {a}" for t, a in ANCHORS.items()]
    return lines


if __name__ == "__main__":
    main()
