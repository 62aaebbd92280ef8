"""Dynamic pruning: full data vs static random vs dynamic random vs InfoBatch vs SeTa at
matched *measured* savings near 30%, 50% and 70%.

Setup: WordNet 40,000-row stratified sample (same store and splits as subset_quality.py),
MiniLM embeddings, a one-hidden-layer MLP (256 units) trained with Adam (lr 1e-3, batch 256,
15 epochs) on the train rows; accuracy on the test rows; 5 seeds.

Matching savings: static and dynamic random hit a target exactly (r = target). InfoBatch and
SeTa save what their loss statistics let them, so each is calibrated on seed 0 over a grid of
r (SeTa: groups 5, window 0.9, anneal 0.875; InfoBatch: anneal 0.875) and the r whose measured
saving is closest to the target is run on every seed. Every record keeps the *measured* saving;
a target a method cannot reach (InfoBatch cannot skip more than the below-mean half) shows up
as a measured saving far from the target.

Writes results/dynamic_pruning.json (records: dataset, method, target_saving, prune_ratio,
seed, accuracy, saved_fraction, wall_time_s) and results/dynamic_pruning.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, group, machine, mean_std, write_json  # noqa: E402
from subset_quality import load  # noqa: E402

from curate.progress import bar  # noqa: E402
from curate.pruning import train_with_pruner  # noqa: E402

TARGETS = (0.3, 0.5, 0.7)
GRIDS = {"infobatch": (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
         "seta": (0.1, 0.15, 0.2, 0.3, 0.35, 0.4, 0.45, 0.55, 0.6, 0.65, 0.7, 0.75)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / ".cache" /
                    "wordnet-full")
    ap.add_argument("--sample", type=int, default=40_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    X, y, C, rows, n_rows = load(args.store, args.sample)
    tr, te = rows["train"], rows["test"]
    Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
    dataset = f"wordnet-{n_rows}"

    def run(method: str, r: float, seed: int) -> dict:
        t0 = time.perf_counter()
        if method == "static_random":
            keep = np.random.default_rng(seed).choice(len(ytr), int(round((1 - r) * len(ytr))),
                                                      replace=False)
            out = train_with_pruner(Xtr[keep], ytr[keep], Xte, yte, n_classes=C,
                                    pruner="full", epochs=args.epochs, seed=seed)
            out["saved_fraction"] = 1 - len(keep) / len(ytr)
        else:
            out = train_with_pruner(Xtr, ytr, Xte, yte, n_classes=C, pruner=method,
                                    epochs=args.epochs, prune_ratio=r, seed=seed)
        return {"dataset": dataset, "method": method, "prune_ratio": r, "seed": seed,
                "accuracy": out["accuracy"], "saved_fraction": out["saved_fraction"],
                "wall_time_s": time.perf_counter() - t0}

    records, calibration = [], []
    with bar("calibrating", total=sum(len(g) for g in GRIDS.values())) as b:
        for method, grid in GRIDS.items():
            for r in grid:
                calibration.append(run(method, r, 0))
                b.advance()
    plan = [("full", 0.0, None)]
    for target in TARGETS:
        plan += [("static_random", target, target), ("dynamic_random", target, target)]
        for method in GRIDS:
            cal = [c for c in calibration if c["method"] == method]
            best = min(cal, key=lambda c: abs(c["saved_fraction"] - target))
            plan.append((method, best["prune_ratio"], target))
    with bar("dynamic pruning", total=len(plan) * args.seeds) as b:
        for method, r, target in plan:
            for seed in range(args.seeds):
                rec = next((c for c in calibration if c["method"] == method
                            and c["prune_ratio"] == r and seed == 0), None) or run(method, r, seed)
                records.append({**rec, "target_saving": target})
                b.advance()
    write_json(RESULTS / "dynamic_pruning.json",
               {"records": records, "calibration": calibration,
                "setup": {"dataset": dataset, "epochs": args.epochs, "model": "mlp-256",
                          "seeds": args.seeds, "machine": machine()}})
    md = markdown(records, args)
    (RESULTS / "dynamic_pruning.md").write_text(md)
    print(md)


def markdown(records: list[dict], args) -> str:
    lines = ["# Dynamic pruning", "",
             f"WordNet {args.sample}-row sample, MLP-256, {args.epochs} epochs, {args.seeds} "
             f"seeds; {machine()}. Saved = measured fraction of sample-iterations skipped. "
             "Produced by `benchmarks/dynamic_pruning.py`.", "",
             "| method | target | prune ratio r | measured saved | accuracy | wall time (s) |",
             "|---|---|---|---|---|---|"]
    for (m, t, r), recs in group(records, "method", "target_saving", "prune_ratio").items():
        lines.append(f"| {m} | {'—' if t is None else f'{t:.0%}'} | {r:.2f} | "
                     f"{np.mean([x['saved_fraction'] for x in recs]):.1%} | "
                     f"{mean_std(x['accuracy'] for x in recs)} | "
                     f"{np.mean([x['wall_time_s'] for x in recs]):.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
