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
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    RESULTS,
    full_store,
    group,
    machine,
    mean_std,
    merge_records,
    read_fashion_mnist,
    write_json,
)

from curate import CandidateSignals, SelectionInput, make_selector  # noqa: E402
from curate.evaluate import downstream_accuracy  # noqa: E402
from curate.inputs import encode_labels  # noqa: E402
from curate.progress import bar  # noqa: E402
from curate.signals import train_proxy  # noqa: E402

# label → (registered method, parameters)
METHODS = {
    "cld": ("cld", {}), "bottom-cld": ("cld", {"reverse": True}),
    "random": ("random", {}), "stratified": ("stratified", {}),
    "cld-ccs": ("cld", {"policy": "ccs"}), "cld-auto": ("cld", {"policy": "auto"}),
    "el2n": ("el2n", {}), "el2n-ccs": ("el2n", {"policy": "ccs"}),
    "forgetting": ("forgetting", {}), "forgetting-ccs": ("forgetting", {"policy": "ccs"}),
    "uncertainty": ("uncertainty", {}), "uncertainty-ccs": ("uncertainty", {"policy": "ccs"}),
    "kcenter": ("kcenter", {}), "herding": ("herding", {}),
    "facility_location": ("facility_location", {}),
    "auto": ("auto", {}),
}
FOUNDATION = ("cld", "bottom-cld", "random", "stratified")


def load(store_dir: Path, sample: int | None, backend: str = "torch"):
    """Embeddings, label codes, class count and split rows of the full-WordNet store; with
    ``sample``, a class-stratified subsample of it (seed 0; splits kept, so the protocol is
    the same and the embeddings are reused). ``backend`` other than ``torch`` (the store's
    float32 embeddings) re-embeds every gloss with that encoder backend, cached as
    ``<store>/../wordnet-<backend>.npy``: the same rows, splits and labels, other vectors."""
    st = full_store(store_dir)
    X = np.asarray(st.embeddings("wordnet")[0])
    if backend != "torch":
        X = backend_vectors(st, Path(store_dir).parent / f"wordnet-{backend}.npy", backend)
    s = st.samples("wordnet", ["row_idx", "split", "lexname"])
    if sample is not None and sample < s.height:
        keep = np.sort(make_selector("stratified").select(
            SelectionInput.from_arrays(labels=s["lexname"].to_numpy()), sample, seed=0).indices)
        s = s[keep]
    y, classes = encode_labels(s["lexname"].to_numpy())
    yy = np.full(len(X), -1, dtype=np.int64)
    yy[s["row_idx"].to_numpy()] = y
    rows = {k: s.filter(pl.col("split") == k)["row_idx"].to_numpy() for k in ("train", "val",
                                                                              "test")}
    return X, yy, len(classes), rows, s.height


def backend_vectors(st, path: Path, backend: str) -> np.ndarray:
    from curate.embedding import embed_texts

    if not path.exists():
        texts = st.samples("wordnet", ["gloss"])["gloss"].fill_null("").to_list()
        np.save(path, embed_texts(texts, backend=backend, progress=True))
    return np.load(path, mmap_mode="r")


def load_fashion_mnist(sample: int | None):
    """Fashion-MNIST from ../shared: pixels/255 reduced to 64 PCA dims (fit on the training
    images); official test set; 10% of the training images (stratified, seed 0) as val."""
    from sklearn.decomposition import PCA

    from stores import assign_splits

    Xtr, ytr, Xte, yte = read_fashion_mnist()
    split = assign_splits(len(ytr), pl.Series(ytr), 0.1, 0.0, seed=0)
    if sample is not None and sample < len(ytr):
        keep = np.sort(np.random.default_rng(0).choice(len(ytr), sample, replace=False))
        Xtr, ytr, split = Xtr[keep], ytr[keep], split[keep]
    pca = PCA(n_components=64, random_state=0).fit(Xtr)
    X = np.vstack([pca.transform(Xtr), pca.transform(Xte)]).astype(np.float32)
    X /= np.sqrt((X ** 2).sum(1).mean())   # unit mean norm: same L2 scale as the text task
    y = np.concatenate([ytr, yte]).astype(np.int64)
    n = len(ytr)
    rows = {"train": np.flatnonzero(split == "train"), "val": np.flatnonzero(split == "val"),
            "test": np.arange(n, n + len(yte))}
    return X, y, 10, rows, len(y)


def run(store_dir: Path, sample: int | None, seeds: int, budgets: list[float],
        epochs: int, methods: dict, dataset_name: str = "wordnet",
        backend: str = "torch") -> list[dict]:
    if dataset_name == "fashion-mnist":
        X, y, C, rows, n_rows = load_fashion_mnist(sample)
    else:
        X, y, C, rows, n_rows = load(store_dir, sample, backend)
    pool, val, test = rows["train"], rows["val"], rows["test"]
    dataset = f"{dataset_name}-{n_rows}" + (f"-{backend}" if backend != "torch" else "")
    records = []
    t0 = time.perf_counter()
    full_acc = downstream_accuracy(X, y, pool, test, C)
    full_train_s = time.perf_counter() - t0
    total = seeds * (1 + len(budgets) * len(methods))
    with bar("subset quality", total=total) as b:
        for seed in range(seeds):
            t0 = time.perf_counter()
            sig = train_proxy(X, y, pool, val, n_classes=C, epochs=epochs, seed=seed)
            proxy_s = time.perf_counter() - t0
            data = SelectionInput(
                row_idx=pool, labels=y[pool], embeddings=X[pool],
                signals=CandidateSignals(train_losses=sig.train_losses,
                                         val_losses=sig.val_losses, val_labels=y[val],
                                         train_correct=sig.train_correct,
                                         train_probs=sig.train_probs))
            records.append({"dataset": dataset, "method": "full", "budget": 1.0, "seed": seed,
                            "accuracy": full_acc, "n_selected": len(pool),
                            "selection_time_s": 0.0, "train_time_s": full_train_s})
            b.advance()
            for budget in budgets:
                for label, (method, params) in methods.items():
                    t0 = time.perf_counter()
                    sel = make_selector(method, **params).select(data, budget, seed=seed)
                    sel_s = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    acc = downstream_accuracy(X, y, sel.indices, test, C, sel.weights)
                    records.append({
                        "dataset": dataset, "method": label, "budget": budget, "seed": seed,
                        "accuracy": acc, "n_selected": len(sel),
                        "selection_time_s": sel_s + (proxy_s if make_selector(method).needs.signals
                                                     else 0.0),
                        "selection_only_time_s": sel_s, "proxy_s": proxy_s,
                        "train_time_s": time.perf_counter() - t0})
                    if method == "auto":   # what the bake-off chose, and its evidence
                        info = sel.provenance.info
                        records[-1]["chosen"] = info["chosen"]
                        records[-1]["bakeoff_s"] = info["bakeoff_s"]
                        records[-1]["bakeoff"] = {k: v["mean"] for k, v in
                                                  info["evidence"].items()}
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
        lines += auto_goal(recs, budgets)
    return "\n".join(lines)


def auto_goal(recs: list[dict], budgets: list[float]) -> list[str]:
    """Issue 12's goal for ``auto``: per budget, auto against the better of random and
    stratified (by mean), Δ paired by seed with a Student-t 95% interval, what the bake-off
    chose on each seed, and its cost beside one downstream fit."""
    from curate.comparison import paired_ci95

    if not any(r["method"] == "auto" for r in recs):
        return []
    by = {(r["method"], r["budget"], r["seed"]): r for r in recs}
    full_fit = np.mean([r["train_time_s"] for r in recs if r["method"] == "full"])
    lines = ["| budget | auto | chosen (per seed) | best random arm | Δ auto − arm [95% CI] | "
             "auto ≥ arm | auto's selection s (bake-off incl.) | one fit on its subset s |",
             "|---|---|---|---|---|---|---|---|"]
    for b in budgets:
        seeds = sorted(s for (m, bb, s) in by if m == "auto" and bb == b)
        if not seeds or not all(("random", b, s) in by and ("stratified", b, s) in by
                                for s in seeds):
            continue
        acc = {m: np.array([by[(m, b, s)]["accuracy"] for s in seeds])
               for m in ("auto", "random", "stratified")}
        arm = max(("random", "stratified"), key=lambda m: acc[m].mean())
        d = acc["auto"] - acc[arm]
        ci = paired_ci95(d)
        runs = len(set(acc["auto"].tolist()))
        auto = mean_std(acc["auto"]) + (f" ({runs} distinct of {len(seeds)})" if runs > 1
                                         else "")
        picks = Counter(str(by[("auto", b, s)].get("chosen", "?")) for s in seeds)
        chosen = ", ".join(f"{m} ×{c}" for m, c in picks.most_common())
        verdict = ("✓ (CI > 0)" if ci and ci[0] > 0 else "✓ (mean)" if d.mean() >= 0
                   else "✗")
        ci_txt = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
        sel_s = np.mean([by[("auto", b, s)]["selection_time_s"] for s in seeds])
        fit_s = np.mean([by[("auto", b, s)]["train_time_s"] for s in seeds])
        lines.append(f"| {b:.0%} | {auto} | {chosen} | {arm} {mean_std(acc[arm])} | "
                     f"{d.mean():+.3f}{ci_txt} | {verdict} | {sel_s:.1f} | {fit_s:.2f} |")
    # the bake-off's el2n-ccs / cld-ccs contenders read the proxy's signals, trained once
    proxy = [r["proxy_s"] if "proxy_s" in r else r["selection_time_s"] - r["selection_only_time_s"]
             for r in recs if "selection_only_time_s" in r
             and ("proxy_s" in r or r["selection_time_s"] > r["selection_only_time_s"])]
    lines += ["", f"One downstream fit on the whole pool: {full_fit:.2f} s"
              + (f"; the proxy training auto's signal contenders use (once per seed, not in "
                 f"the selection time): {np.mean(proxy):.1f} s." if proxy else "."), ""]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / ".cache" /
                    "wordnet-full")
    ap.add_argument("--dataset", choices=("wordnet", "fashion-mnist"), default="wordnet")
    ap.add_argument("--sample", type=int, default=None, help="stratified sample (default: all)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--budgets", default="0.01,0.05,0.1,0.3")
    ap.add_argument("--methods", default=",".join(FOUNDATION),
                    help=f"comma list from: {', '.join(METHODS)}")
    ap.add_argument("--backend", default="torch",
                    help="WordNet: encoder backend of the embeddings (torch = the store's)")
    ap.add_argument("--report", action="store_true",
                    help="only rewrite results/subset_quality.md from the JSON")
    args = ap.parse_args()
    path = RESULTS / "subset_quality.json"
    if args.report:
        (RESULTS / "subset_quality.md").write_text(markdown(json.loads(path.read_text())))
        return
    budgets = [float(b) for b in args.budgets.split(",")]
    unknown = [m for m in args.methods.split(",") if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s): {', '.join(unknown)}")
    methods = {m: METHODS[m] for m in args.methods.split(",")}
    records = run(args.store, args.sample, args.seeds, budgets, args.epochs, methods,
                  args.dataset, args.backend)
    allrec = merge_records(path, records, ("dataset", "method"))
    write_json(path, allrec)
    (RESULTS / "subset_quality.md").write_text(markdown(allrec))
    print(markdown(records))


if __name__ == "__main__":
    main()
