"""Subset quality: downstream accuracy of each method's subset vs random, on real data.

Protocol (issue "Foundation", DESIGN.md §5):
- WordNet glosses (all 117,659 by default; ``--sample N`` for a stratified sample), embedded
  with all-MiniLM-L6-v2; label = lexicographer class (45); split 70/10/20 train/val/test
  (stratified, seed 0). Candidates = train rows; the proxy's validation = val rows; accuracy
  on test rows.
- Proxy signals: softmax regression, 20 epochs, Adam; retrained for every seed, so CLD's
  spread includes proxy randomness.
- Downstream model (fixed): multinomial logistic regression, deterministic full-batch L-BFGS
  (``curate.evaluate.downstream_accuracy``).
- Budgets 1%, 5%, 10%, 30% of the candidates; methods cld, bottom-cld (cld reverse=True),
  random, stratified; full data; ≥ 5 seeds.

Writes ``results/subset_quality.json`` (records: dataset, method, budget, seed, accuracy, ...;
records of other datasets/methods already in the file are kept) and
``results/subset_quality.md``.

    python benchmarks/subset_quality.py [--store DIR] [--sample N] [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, group, machine, mean_std, merge_records, write_json  # noqa: E402

from curate import CandidateSignals, SelectionInput, make_selector  # noqa: E402
from curate.defaults import init_default  # noqa: E402
from curate.evaluate import downstream_accuracy  # noqa: E402
from curate.inputs import encode_labels  # noqa: E402
from curate.progress import bar  # noqa: E402
from curate.signals import train_proxy  # noqa: E402
from stores import Store  # noqa: E402

METHODS = {"cld": ("cld", {}), "bottom-cld": ("cld", {"reverse": True}),
           "random": ("random", {}), "stratified": ("stratified", {})}


def load(store_dir: Path, sample: int | None):
    if not (store_dir / "catalog.duckdb").exists():
        init_default(Store.create(store_dir), sample=sample, epochs=20, progress=True)
    st = Store.open(store_dir)
    X = np.asarray(st.embeddings("wordnet")[0])
    s = st.samples("wordnet", ["row_idx", "split", "lexname"])
    y, classes = encode_labels(s["lexname"].to_numpy())
    rows = {k: s.filter(pl.col("split") == k)["row_idx"].to_numpy() for k in ("train", "val",
                                                                              "test")}
    return X, y, len(classes), rows


def run(store_dir: Path, sample: int | None, seeds: int, budgets: list[float],
        epochs: int) -> list[dict]:
    X, y, C, rows = load(store_dir, sample)
    pool, val, test = rows["train"], rows["val"], rows["test"]
    dataset = f"wordnet-{len(y)}"
    records = []
    t0 = time.perf_counter()
    full_acc = downstream_accuracy(X, y, pool, test, C)
    full_train_s = time.perf_counter() - t0
    total = seeds * (1 + len(budgets) * len(METHODS))
    with bar("subset quality", total=total) as b:
        for seed in range(seeds):
            t0 = time.perf_counter()
            sig = train_proxy(X, y, pool, val, n_classes=C, epochs=epochs, seed=seed)
            proxy_s = time.perf_counter() - t0
            data = SelectionInput(
                row_idx=pool, labels=y[pool],
                signals=CandidateSignals(train_losses=sig.train_losses,
                                         val_losses=sig.val_losses, val_labels=y[val]))
            records.append({"dataset": dataset, "method": "full", "budget": 1.0, "seed": seed,
                            "accuracy": full_acc, "n_selected": len(pool),
                            "selection_time_s": 0.0, "train_time_s": full_train_s})
            b.advance()
            for budget in budgets:
                for label, (method, params) in METHODS.items():
                    t0 = time.perf_counter()
                    sel = make_selector(method, **params).select(data, budget, seed=seed)
                    sel_s = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    acc = downstream_accuracy(X, y, sel.indices, test, C, sel.weights)
                    records.append({
                        "dataset": dataset, "method": label, "budget": budget, "seed": seed,
                        "accuracy": acc, "n_selected": len(sel),
                        "selection_time_s": sel_s + (proxy_s if method == "cld" else 0.0),
                        "selection_only_time_s": sel_s,
                        "train_time_s": time.perf_counter() - t0})
                    b.advance()
    return records


def markdown(records: list[dict]) -> str:
    lines = ["# Subset quality", "",
             "Downstream accuracy (mean ± std over seeds) of the fixed downstream model trained "
             "on each method's subset; selection time includes proxy training for score-based "
             f"methods. Machine: {machine()}. Produced by `benchmarks/subset_quality.py`.", ""]
    for (dataset,), recs in sorted(group(records, "dataset").items()):
        budgets = sorted({r["budget"] for r in recs if r["method"] != "full"})
        methods = sorted({r["method"] for r in recs if r["method"] != "full"},
                         key=lambda m: (m not in ("random", "stratified"), m))
        cells = group(recs, "method", "budget")
        full = [r["accuracy"] for r in recs if r["method"] == "full"]
        n_seeds = len({r["seed"] for r in recs})
        lines += [f"## {dataset} ({n_seeds} seeds; full data {mean_std(full)})", "",
                  "| method | " + " | ".join(f"{b:.0%}" for b in budgets) +
                  " | selection time (s) |",
                  "|---|" + "---|" * len(budgets) + "---|"]
        for m in methods:
            row = [mean_std(r["accuracy"] for r in cells.get((m, b), [])) if (m, b) in cells
                   else "—" for b in budgets]
            t = np.mean([r["selection_time_s"] for r in recs if r["method"] == m])
            lines.append(f"| {m} | " + " | ".join(row) + f" | {t:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / ".cache" /
                    "wordnet-full")
    ap.add_argument("--sample", type=int, default=None, help="stratified sample (default: all)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--budgets", default="0.01,0.05,0.1,0.3")
    args = ap.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    records = run(args.store, args.sample, args.seeds, budgets, args.epochs)
    path = RESULTS / "subset_quality.json"
    allrec = merge_records(path, records, ("dataset", "method"))
    write_json(path, allrec)
    (RESULTS / "subset_quality.md").write_text(markdown(allrec))
    print(markdown(records))


if __name__ == "__main__":
    main()
