"""Dynamic pruning: full data vs static random vs dynamic random vs InfoBatch vs SeTa at
matched *measured* savings near 30%, 50% and 70%, on two domains (``--domain``).

- ``wordnet`` (default): WordNet 40,000-row stratified sample (same store and splits as
  subset_quality.py), MiniLM embeddings, a one-hidden-layer MLP (256 units), 15 epochs;
  accuracy on the store's test rows.
- ``fmnist``: Fashion-MNIST, the image domain of the SeTa paper: a class-stratified 10,000 of
  the 60,000 training images (seed 0, the same subset every run), the official 10,000 test
  images, pixels/255 as flat (n, 784) rows, the ``cnn`` model of ``curate.models`` (two 3×3
  conv layers, 16 and 32 channels, each max-pool 2 + ReLU, then a linear layer), 10 epochs.
  Paper anchor (CIFAR-100, ResNet-18, 200 epochs): 79.3 full → 79.4 at 41.6% saved, 79.0 at
  54.9% saved.

Both: Adam (lr 1e-3, batch 256), 5 seeds (model init, shuffling and pruning all follow the
seed).

Matching savings: static and dynamic random hit a target exactly (r = target). InfoBatch and
SeTa save what their loss statistics let them, so each is calibrated on seed 0 over a grid of
r (SeTa: groups 5, window 0.9, anneal 0.875; InfoBatch: anneal 0.875; fmnist uses a coarser
grid: ~15 minutes in all on 2 free cores) and the r whose measured saving is closest
to the target is run on every seed (a run already made — seed 0's calibration run, or the same
r chosen for two targets — is reused, not repeated). Every record keeps the
*measured* saving; a target a method cannot reach (InfoBatch cannot skip more than the
below-mean share) shows up as a measured saving far from the target.

Writes ``OUT/dynamic_pruning.json``: {"records", "calibration", "setup"}; records
(dataset, method, target_saving, prune_ratio, seed, accuracy, saved_fraction, wall_time_s,
wall_time_per_epoch_s, epochs) and calibration runs of every dataset, ``setup`` keyed by
dataset. A run replaces its own dataset's records and keeps the others' (an older file with
one flat ``setup`` is read too). ``OUT/dynamic_pruning.md`` gets one table per dataset.
``wall_time_s`` is the whole run (training and test evaluation); ``wall_time_per_epoch_s``
the mean training epoch. Smoke run: ``--seeds 1 --epochs 1 --sample 2000 --out /tmp/dp``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

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
from curate.progress import bar  # noqa: E402
from curate.pruning import train_with_pruner  # noqa: E402

TARGETS = (0.3, 0.5, 0.7)
DOMAINS = {
    "wordnet": {"sample": 40_000, "epochs": 15, "model": "mlp", "label": "mlp-256",
                "grids": {"infobatch": (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
                          "seta": (0.1, 0.15, 0.2, 0.3, 0.35, 0.4, 0.45, 0.55, 0.6, 0.65,
                                   0.7, 0.75)}},
    "fmnist": {"sample": 10_000, "epochs": 10, "model": "cnn", "label": "cnn-16-32",
               "grids": {"infobatch": (0.4, 0.55, 0.7, 0.85, 0.95),
                         "seta": (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)}},
}
PAPER_ANCHOR = ("Paper anchor (SeTa, CVPR 2025; CIFAR-100, ResNet-18): 79.3 full → 79.4 at "
                "41.6% saved, 79.0 at 54.9% saved.")


def load_wordnet(store: Path, sample: int):
    """(X_train, y_train, X_test, y_test, n_classes, dataset name, test-set description)."""
    from subset_quality import load

    X, y, C, rows, n_rows = load(store, sample)
    tr, te = rows["train"], rows["test"]
    return X[tr], y[tr], X[te], y[te], C, f"wordnet-{n_rows}", "the store's test rows"


def load_fmnist(sample: int):
    """A class-stratified ``sample`` of the training images (seed 0), all test images."""
    Xtr, ytr, Xte, yte = read_fashion_mnist()
    if sample < len(ytr):
        keep = np.sort(make_selector("stratified").select(
            SelectionInput.from_arrays(labels=ytr), sample, seed=0).indices)
        Xtr, ytr = Xtr[keep], ytr[keep]
    return (Xtr, ytr, Xte, yte, 10, f"fashion-mnist-{len(ytr)}",
            f"the official {len(yte)} test images")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domain", choices=tuple(DOMAINS), default="wordnet")
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / ".cache" /
                    "wordnet-full", help="wordnet only: the full-WordNet store")
    ap.add_argument("--sample", type=int, default=None,
                    help="training rows/images (default: 40000 wordnet, 10000 fmnist)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=None,
                    help="default: 15 wordnet, 10 fmnist")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help="folder for dynamic_pruning.json/.md (default: benchmarks/results)")
    args = ap.parse_args()
    spec = DOMAINS[args.domain]
    sample = args.sample or spec["sample"]
    epochs = args.epochs or spec["epochs"]
    if args.domain == "wordnet":
        Xtr, ytr, Xte, yte, C, dataset, test = load_wordnet(args.store, sample)
    else:
        Xtr, ytr, Xte, yte, C, dataset, test = load_fmnist(sample)

    def run(method: str, r: float, seed: int) -> dict:
        t0 = time.perf_counter()
        common = {"n_classes": C, "epochs": epochs, "seed": seed, "model": spec["model"]}
        if method == "static_random":
            keep = np.random.default_rng(seed).choice(len(ytr), int(round((1 - r) * len(ytr))),
                                                      replace=False)
            out = train_with_pruner(Xtr[keep], ytr[keep], Xte, yte, pruner="full", **common)
            out["saved_fraction"] = 1 - len(keep) / len(ytr)
        else:
            out = train_with_pruner(Xtr, ytr, Xte, yte, pruner=method, prune_ratio=r, **common)
        return {"dataset": dataset, "method": method, "prune_ratio": r, "seed": seed,
                "accuracy": out["accuracy"], "saved_fraction": out["saved_fraction"],
                "wall_time_s": time.perf_counter() - t0,
                "wall_time_per_epoch_s": out["wall_time_per_epoch_s"], "epochs": epochs}

    grids = spec["grids"]
    done: dict[tuple, dict] = {}  # (method, r, seed) → record: a run is never repeated

    def cached(method: str, r: float, seed: int) -> dict:
        if (method, r, seed) not in done:
            done[method, r, seed] = run(method, r, seed)
        return done[method, r, seed]

    with bar("calibrating", total=sum(len(g) for g in grids.values())) as b:
        calibration = []
        for method, grid in grids.items():
            for r in grid:
                calibration.append(cached(method, r, 0))
                b.advance()
    plan = [("full", 0.0, None)]
    for target in TARGETS:
        plan += [("static_random", target, target), ("dynamic_random", target, target)]
        for method in grids:
            cal = [c for c in calibration if c["method"] == method]
            best = min(cal, key=lambda c: abs(c["saved_fraction"] - target))
            plan.append((method, best["prune_ratio"], target))
    records = []
    with bar("dynamic pruning", total=len(plan) * args.seeds) as b:
        for method, r, target in plan:
            for seed in range(args.seeds):
                records.append({**cached(method, r, seed), "target_saving": target})
                b.advance()
    setup = {"dataset": dataset, "domain": args.domain, "n_train": len(ytr),
             "n_test": len(yte), "test": test, "epochs": epochs, "model": spec["label"],
             "seeds": args.seeds, "machine": machine()}
    results = merge_results(args.out / "dynamic_pruning.json", records, calibration, setup)
    write_json(args.out / "dynamic_pruning.json", results)
    write_markdown(args.out / "dynamic_pruning.md", markdown(results))


def merge_results(path: Path, records: list[dict], calibration: list[dict],
                  setup: dict) -> dict:
    """This run's dataset replaces its old records, calibration and setup; other datasets'
    are kept. Reads the older layout too (one flat ``setup`` for its single dataset)."""
    old = json.loads(path.read_text()) if path.exists() else {}
    old_setup = old.get("setup", {})
    if "dataset" in old_setup and not isinstance(old_setup["dataset"], dict):
        old_setup = {old_setup["dataset"]: old_setup}
    name = setup["dataset"]
    return {"records": [r for r in old.get("records", []) if r["dataset"] != name] + records,
            "calibration": [c for c in old.get("calibration", []) if c["dataset"] != name]
            + calibration,
            "setup": {**{k: v for k, v in old_setup.items() if k != name}, name: setup}}


def describe(setup: dict) -> str:
    where = (f"{setup['n_train']} training rows, accuracy on {setup['test']}"
             if "n_train" in setup else "accuracy on the test rows")
    return (f"{where[0].upper()}{where[1:]}; {setup['model']}, {setup['epochs']} epochs, "
            f"{setup['seeds']} seeds; {setup['machine']}.")


def markdown(results: dict) -> list[str]:
    lines = ["# Dynamic pruning", "",
             "Saved = measured fraction of sample-iterations skipped. Accuracy = mean ± std "
             "over seeds. Wall time per epoch = mean training epoch (test evaluation "
             "excluded). Produced by `benchmarks/dynamic_pruning.py` "
             "(`--domain wordnet|fmnist`)."]
    for dataset, recs in group(results["records"], "dataset").items():
        setup = results["setup"].get(dataset[0], {})
        lines += ["", f"## {dataset[0]}"] + (["", describe(setup)] if setup else [])
        if setup.get("domain") == "fmnist":
            lines += ["", PAPER_ANCHOR]
        estimated = any("wall_time_per_epoch_s" not in r for r in recs)
        if estimated:
            lines += ["", "Wall time per epoch marked * = whole run (with the test "
                      "evaluation) / epochs: these records predate the per-epoch timing."]
        lines += ["", "| method | target | prune ratio r | measured saved | accuracy | "
                  "wall time per epoch (s) |", "|---|---|---|---|---|---|"]
        for (m, t, r), rows in group(recs, "method", "target_saving", "prune_ratio").items():
            lines.append(f"| {m} | {'—' if t is None else f'{t:.0%}'} | {r:.2f} | "
                         f"{np.mean([x['saved_fraction'] for x in rows]):.1%} | "
                         f"{mean_std(x['accuracy'] for x in rows)} | "
                         f"{epoch_time(rows, setup)} |")
    return lines


def epoch_time(rows: list[dict], setup: dict) -> str:
    if all("wall_time_per_epoch_s" in x for x in rows):
        return f"{np.mean([x['wall_time_per_epoch_s'] for x in rows]):.2f}"
    epochs = [x.get("epochs", setup.get("epochs")) for x in rows]
    if None in epochs:
        return "—"
    return f"{np.mean([x['wall_time_s'] / e for x, e in zip(rows, epochs, strict=True)]):.2f}*"


if __name__ == "__main__":
    main()
