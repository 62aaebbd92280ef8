"""Curation before selection on WordNet: dedup and label issues, each against a random
filter of the same size (issue "Choose data honestly", §5).

Protocol: the all-WordNet benchmark store (117,659 glosses, MiniLM embeddings; candidates =
the train split, accuracy on the test split with the fixed downstream model, as in
``subset_quality.py``).

- **dedup** at several ε: exact groups (normalised text) and semantic groups (SemDeDup,
  k-means cells of 10,000 rows), rows removed; downstream accuracy trained on the kept rows
  vs on the pool with the *same number* of uniformly random rows removed (``--seeds``
  draws). The dedup itself is seeded by the cells (seed 0): one run.
- **label issues, natural labels**: rows flagged by ``label_issues`` (cleanlab on 5-fold
  out-of-fold probabilities); accuracy trained on the clean rows vs the pool minus as many
  random rows.
- **label issues, planted noise**: ``--noise`` of the candidates' labels flipped to another
  class (seeded); precision and recall of the flagged rows against the flips, beside a
  random filter of the same size (whose expected precision is the noise rate), and the
  downstream accuracy after removing each.

Writes ``results/curation.json`` (records: ``task``, ``eps``/``noise``, ``arm``, ``seed``,
``accuracy``, counts, times) and ``results/curation.md``.

    python benchmarks/curation.py [--sample N] [--seeds 5] [--eps 0.02,0.05,0.1,0.2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, group, machine, mean_std, write_json, write_markdown  # noqa: E402
from subset_quality import load  # noqa: E402

from curate import SelectionInput, make_selector  # noqa: E402
from curate.evaluate import downstream_accuracy  # noqa: E402
from curate.inputs import text_keys  # noqa: E402


def texts_of(store_dir: Path, row_idx: np.ndarray):
    import polars as pl
    from common import full_store

    st = full_store(store_dir)
    g = st.samples("wordnet", ["row_idx", "gloss"])
    g = g.join(pl.DataFrame({"row_idx": row_idx}).cast({"row_idx": g.schema["row_idx"]}),
               on="row_idx", how="semi", maintain_order="left")
    return g["gloss"]


def random_removal(pool, n_remove, seed):
    keep = np.random.default_rng(seed).choice(len(pool), len(pool) - n_remove, replace=False)
    return pool[np.sort(keep)]


def run(args) -> list[dict]:
    X, y, C, rows, n_rows = load(args.store, args.sample)
    pool, test = rows["train"], rows["test"]
    dataset = f"wordnet-{n_rows}"
    recs: list[dict] = []

    def acc(train_rows, labels=y):
        t0 = time.perf_counter()
        a = downstream_accuracy(X, labels, train_rows, test, C)
        return a, time.perf_counter() - t0

    full, full_s = acc(pool)
    recs.append({"dataset": dataset, "task": "full", "arm": "full pool", "seed": 0,
                 "accuracy": full, "n_train": len(pool), "train_time_s": full_s})
    keys = text_keys(texts_of(args.store, pool))
    base = SelectionInput(row_idx=pool, labels=y[pool], embeddings=X[pool], text_keys=keys)
    for eps in args.eps:
        t0 = time.perf_counter()
        sel = make_selector("dedup", eps=eps).select(base, 1.0, seed=0)
        sel_s = time.perf_counter() - t0
        info = sel.provenance.info
        n_removed = info["n_removed"]
        exact = make_selector("dedup", semantic=False).select(base, 1.0, seed=0) \
            if eps == args.eps[0] else None
        a, t = acc(np.sort(sel.indices))
        common = {"dataset": dataset, "task": "dedup", "eps": eps, "n_removed": n_removed,
                  "groups": info["groups_total"], "semantic_pairs": info["semantic_pairs"],
                  "exact_pairs": info["exact_pairs"]}
        recs.append({**common, "arm": "dedup", "seed": 0, "accuracy": a,
                     "selection_time_s": sel_s, "train_time_s": t,
                     "n_train": len(sel.indices)})
        if exact is not None:
            recs.append({"dataset": dataset, "task": "exact-dedup", "arm": "exact only",
                         "seed": 0, "n_removed": exact.provenance.info["n_removed"],
                         "groups": exact.provenance.info["groups_total"],
                         "accuracy": acc(np.sort(exact.indices))[0]})
        for s in range(args.seeds):
            a, t = acc(random_removal(pool, n_removed, s))
            recs.append({**common, "arm": "random removal", "seed": s, "accuracy": a,
                         "train_time_s": t, "n_train": len(pool) - n_removed})
        print(f"dedup eps={eps}: removed {n_removed} in {sel_s:.1f} s", flush=True)

    # label issues on the given labels
    t0 = time.perf_counter()
    issues = make_selector("label_issues").select(base, 1.0, seed=0)
    li_s = time.perf_counter() - t0
    flagged = issues.indices
    clean = np.setdiff1d(pool, flagged)
    a, t = acc(clean)
    recs.append({"dataset": dataset, "task": "label-issues", "arm": "clean (flagged removed)",
                 "seed": 0, "accuracy": a, "n_removed": len(flagged),
                 "selection_time_s": li_s, "train_time_s": t})
    for s in range(args.seeds):
        recs.append({"dataset": dataset, "task": "label-issues", "arm": "random removal",
                     "seed": s, "accuracy": acc(random_removal(pool, len(flagged), s))[0],
                     "n_removed": len(flagged)})
    print(f"label issues: {len(flagged)} flagged in {li_s:.1f} s", flush=True)

    # planted noise: precision/recall against known flips
    for s in range(args.seeds):
        rng = np.random.default_rng(1000 + s)
        noisy = y.copy()
        flip = rng.choice(pool, int(args.noise * len(pool)), replace=False)
        noisy[flip] = (noisy[flip] + rng.integers(1, C, len(flip))) % C
        data = SelectionInput(row_idx=pool, labels=noisy[pool], embeddings=X[pool])
        found = make_selector("label_issues").select(data, 1.0, seed=s).indices
        rand = rng.choice(pool, len(found), replace=False)
        truth = set(flip.tolist())
        for arm, removed in (("label_issues", found), ("random filter", rand)):
            hit = len(truth & set(removed.tolist()))
            recs.append({"dataset": dataset, "task": "planted-noise", "noise": args.noise,
                         "arm": arm, "seed": s, "n_removed": len(removed),
                         "precision": hit / max(1, len(removed)), "recall": hit / len(flip),
                         "accuracy": acc(np.setdiff1d(pool, removed), noisy)[0]})
        recs.append({"dataset": dataset, "task": "planted-noise", "noise": args.noise,
                     "arm": "noisy pool (nothing removed)", "seed": s, "n_removed": 0,
                     "accuracy": acc(pool, noisy)[0]})
        print(f"planted noise seed {s}: {len(found)} flagged", flush=True)
    return recs


def markdown(recs: list[dict]) -> list[str]:
    ds = recs[0]["dataset"]
    full = [r for r in recs if r["task"] == "full"][0]
    lines = ["# Curation before selection (WordNet)", "",
             f"{ds}: candidates = train split, accuracy on the test split with the fixed "
             f"downstream model; full pool {full['accuracy']:.3f} ({full['n_train']:,} rows). "
             f"Machine: {machine()}. Produced by `benchmarks/curation.py`.", "",
             "## Dedup vs removing as many random rows", "",
             "| ε (cosine ≥ 1−ε) | rows removed | groups | semantic pairs | exact pairs | "
             "accuracy after dedup | after random removal | dedup time s |",
             "|---:|---:|---:|---:|---:|---|---|---:|"]
    for (eps,), rs in sorted(group([r for r in recs if r["task"] == "dedup"], "eps").items()):
        d = [r for r in rs if r["arm"] == "dedup"][0]
        rnd = [r["accuracy"] for r in rs if r["arm"] == "random removal"]
        lines.append(f"| {eps} | {d['n_removed']:,} | {d['groups']:,} | "
                     f"{d['semantic_pairs']:,} | {d['exact_pairs']:,} | "
                     f"{d['accuracy']:.3f} (1 run) | {mean_std(rnd)} | "
                     f"{d['selection_time_s']:.1f} |")
    ex = [r for r in recs if r["task"] == "exact-dedup"]
    if ex:
        lines += ["", f"Exact duplicates alone (normalised text): {ex[0]['groups']:,} groups, "
                  f"{ex[0]['n_removed']:,} rows removed, accuracy {ex[0]['accuracy']:.3f}."]
    li = [r for r in recs if r["task"] == "label-issues"]
    c = [r for r in li if r["arm"].startswith("clean")][0]
    rnd = [r["accuracy"] for r in li if r["arm"] == "random removal"]
    lines += ["", "## Label issues on the given labels", "",
              f"Flagged: {c['n_removed']:,} of {full['n_train']:,} candidates "
              f"({c['n_removed'] / full['n_train']:.1%}) in {c['selection_time_s']:.1f} s. "
              f"Accuracy trained on the clean rows: {c['accuracy']:.3f} (1 run); with as many "
              f"random rows removed: {mean_std(rnd)}.", "",
              "## Planted label noise", ""]
    pn = [r for r in recs if r["task"] == "planted-noise"]
    if pn:
        lines += [f"{pn[0]['noise']:.0%} of the candidates' labels flipped to another class "
                  f"(a new draw per seed; {len({r['seed'] for r in pn})} seeds).", "",
                  "| arm | rows removed | precision | recall | accuracy |",
                  "|---|---:|---|---|---|"]
        for (arm,), rs in group(pn, "arm").items():
            pr = mean_std(r["precision"] for r in rs) if "precision" in rs[0] else "—"
            rc = mean_std(r["recall"] for r in rs) if "recall" in rs[0] else "—"
            lines.append(f"| {arm} | {np.mean([r['n_removed'] for r in rs]):,.0f} | {pr} | "
                         f"{rc} | {mean_std(r['accuracy'] for r in rs)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / ".cache" /
                    "wordnet-full")
    ap.add_argument("--sample", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--eps", default="0.02,0.05,0.1,0.2")
    ap.add_argument("--noise", type=float, default=0.05)
    args = ap.parse_args()
    args.eps = [float(e) for e in args.eps.split(",")]
    recs = run(args)
    write_json(RESULTS / "curation.json", recs)
    write_markdown(RESULTS / "curation.md", markdown(recs))


if __name__ == "__main__":
    main()
