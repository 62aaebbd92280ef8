"""AutoCoreset on a real binary task, the paper's protocol: coreset sizes 50…300, 16 trials.

Task: Fashion-MNIST T-shirt/top (0) vs Shirt (6) — the hardest pair — pixels/255 reduced to 64
PCA dims (fit on the training images). Problem: logistic regression (scikit-learn, C = 1).
q* = the model fit on all 12,000 training images. For each size m and trial t:

    relative cost error = cost(q_C) / cost(q*) − 1,  cost(q) = Σ_{i ∈ train} log-loss_i(q)

and test accuracy on the 2,000 test images, for uniform sampling (weights n/m) and for
AutoCoreset with each summariser (Carathéodory with fill=true, so its size is m;
Carathéodory as is, whose actual size is reported; sensitivity sampling). Mean ± std over
trials; records in results/autocoreset.json, table in results/autocoreset.md.

AutoCoreset keeps the best of its ≥ 3 uniform starts and its rounds, ranked by the full-data
cost that is reported, so a single uniform draw is not a fair baseline: ``uniform-best-of-N``
draws N uniform samples, fits each, and keeps the one with the lowest full-data cost, with N =
the largest number of models any AutoCoreset variant fitted at that size and trial (so the
baseline gets at least as many fits as the method). The gain over it is the method's, not the
selection among draws.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    RESULTS,
    group,
    machine,
    mean_std,
    read_fashion_mnist,
    write_json,
    write_markdown,
)

from curate import SelectionInput, make_selector  # noqa: E402
from curate.coresets import make_problem  # noqa: E402
from curate.progress import bar  # noqa: E402

SIZES = (50, 100, 150, 200, 250, 300)
TRIALS = 16
VARIANTS = {"uniform": None, "uniform-best-of-N": "best-of",
            "autocoreset-caratheodory-fill": {"summarizer": "caratheodory", "fill": True},
            "autocoreset-caratheodory": {"summarizer": "caratheodory"},
            "autocoreset-sensitivity": {"summarizer": "sensitivity"}}


def main() -> None:
    Xtr, ytr, Xte, yte = read_fashion_mnist()
    keep_tr, keep_te = np.isin(ytr, (0, 6)), np.isin(yte, (0, 6))
    Xtr, ytr, Xte, yte = Xtr[keep_tr], (ytr[keep_tr] == 6).astype(np.int64), \
        Xte[keep_te], (yte[keep_te] == 6).astype(np.int64)
    pca = PCA(64, random_state=0).fit(Xtr)
    Xtr, Xte = pca.transform(Xtr), pca.transform(Xte)
    prob = make_problem("logistic", n_classes=2)
    opt = prob.fit(Xtr, ytr, np.ones(len(ytr)), 0)
    opt_cost = float(prob.losses(opt, Xtr, ytr).sum())
    opt_acc = float((opt.predict(Xte) == yte).mean())
    data = SelectionInput.from_arrays(labels=ytr, embeddings=Xtr)
    records = []
    with bar("autocoreset", total=len(SIZES) * TRIALS * len(VARIANTS)) as b:
        for m in SIZES:
            for trial in range(TRIALS):
                fits = 1
                for name, params in sorted(VARIANTS.items(), key=lambda kv: kv[1] == "best-of"):
                    t0 = time.perf_counter()
                    if params is None:
                        rng = np.random.default_rng([trial, m])
                        idx = rng.choice(len(ytr), m, replace=False)
                        w = np.full(m, len(ytr) / m)
                        info = {}
                    elif params == "best-of":  # after every AutoCoreset variant: N is known
                        idx, w = best_uniform(prob, Xtr, ytr, m, fits,
                                              np.random.default_rng([trial, m, 1]))
                        info = {"draws": fits}
                    else:
                        sel = make_selector("autocoreset", **params).select(data, m, seed=trial)
                        idx, w, info = sel.indices, sel.weights, sel.provenance.info
                        fits = max(fits, int(info["n_models"]))
                    sel_s = time.perf_counter() - t0
                    model = prob.fit(Xtr[idx], ytr[idx], w, 0)
                    cost = float(prob.losses(model, Xtr, ytr).sum())
                    records.append({
                        "method": name, "size_asked": m, "size_actual": int(len(idx)),
                        "trial": trial, "relative_cost_error": cost / opt_cost - 1,
                        "accuracy": float((model.predict(Xte) == yte).mean()),
                        "selection_time_s": sel_s, "rounds": info.get("rounds"),
                        "models_fitted": info.get("n_models", info.get("draws", 1))})
                    b.advance()
    write_json(RESULTS / "autocoreset.json",
               {"task": "fashion-mnist 0 vs 6, PCA-64, logistic regression",
                "optimal_cost": opt_cost, "optimal_accuracy": opt_acc, "trials": TRIALS,
                "machine": machine(), "records": records})
    lines = ["# AutoCoreset", "",
             f"Fashion-MNIST T-shirt vs Shirt (12,000 train / 2,000 test), PCA-64, logistic "
             f"regression; q* (all data) test accuracy {opt_acc:.3f}. {TRIALS} trials, "
             f"mean ± std. {machine()}. Produced by `benchmarks/autocoreset.py`.", "",
             "uniform-best-of-N keeps the lowest-cost of N uniform draws, N = the most models "
             "any AutoCoreset variant fitted (column *fits*).", "",
             "| method | asked | actual size | fits | relative cost error | test accuracy | "
             "time (s) |",
             "|---|---|---|---|---|---|---|"]
    for (name, m), recs in group(records, "method", "size_asked").items():
        lines.append(f"| {name} | {m} | {np.mean([r['size_actual'] for r in recs]):.1f} | "
                     f"{np.mean([r['models_fitted'] for r in recs]):.1f} | "
                     f"{mean_std(r['relative_cost_error'] for r in recs)} | "
                     f"{mean_std(r['accuracy'] for r in recs)} | "
                     f"{np.mean([r['selection_time_s'] for r in recs]):.2f} |")
    write_markdown(RESULTS / "autocoreset.md", lines)


def best_uniform(prob, X, y, m: int, draws: int, rng: np.random.Generator):
    """The lowest full-data-cost of ``draws`` uniform samples of size m (weights n/m)."""
    best, best_cost = None, np.inf
    w = np.full(m, len(y) / m)
    for _ in range(draws):
        idx = rng.choice(len(y), m, replace=False)
        cost = float(prob.losses(prob.fit(X[idx], y[idx], w, 0), X, y).sum())
        if cost < best_cost:
            best, best_cost = idx, cost
    return best, w


if __name__ == "__main__":
    main()
