"""SnP: search a multi-source pool for a held-out target domain.

Pool: five sources made from disjoint 8,000-image slices of the Fashion-MNIST training set,
each under one transformation — original, inverted (1 − x), rotated 90°, Gaussian noise
(σ = 0.35), box-blurred (3×3). Groups ("identities") = (source, class, chunk of 40 images):
1,000 groups. Target domain: the 10,000 test images blurred *and* noised (σ = 0.2) — a
combination no source has. Features: pixels → 64 PCA dims fit on a sample of the pool.

For budgets of 10% and 20% of the pool (4,000 and 8,000 images), 5 seeds: SnP (searched with
the target's features only, no target labels) vs a uniform random subset of the same size vs
the whole pool; ``snp-per-class`` is SnP with class quotas in stage II (beyond the paper).
The fixed downstream model (softmax regression, L-BFGS) is trained on each set
and scored on the labelled target; FD(set, target) is reported in the same PCA space.
Writes results/snp.json and results/snp.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter
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
from curate.evaluate import downstream_accuracy  # noqa: E402
from curate.frechet import frechet_distance  # noqa: E402
from curate.progress import bar  # noqa: E402

SOURCES = ("original", "inverted", "rotated", "noisy", "blurred")
PER_SOURCE = 8000
BUDGETS = (0.1, 0.2)
SEEDS = 5


def transform(X: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    img = X.reshape(-1, 28, 28)
    if kind == "inverted":
        img = 1.0 - img
    elif kind == "rotated":
        img = np.rot90(img, 1, axes=(1, 2))
    elif kind == "noisy":
        img = np.clip(img + rng.normal(0, 0.35, img.shape), 0, 1)
    elif kind == "blurred":
        img = uniform_filter(img, size=(1, 3, 3))
    elif kind == "target":
        img = np.clip(uniform_filter(img, size=(1, 3, 3)) + rng.normal(0, 0.2, img.shape), 0, 1)
    return img.reshape(len(X), -1).astype(np.float32)


def build():
    rng = np.random.default_rng(0)
    Xtr, ytr, Xte, yte = read_fashion_mnist()
    order = rng.permutation(len(ytr))
    parts, labels, groups, source = [], [], [], []
    for s, kind in enumerate(SOURCES):
        idx = order[s * PER_SOURCE:(s + 1) * PER_SOURCE]
        parts.append(transform(Xtr[idx], kind, rng))
        y = ytr[idx]
        labels.append(y)
        chunk = np.zeros(len(idx), dtype=np.int64)
        for c in range(10):
            members = np.flatnonzero(y == c)
            chunk[members] = np.arange(len(members)) // 40
        groups.append(s * 10_000 + y * 100 + chunk)
        source.append(np.full(len(idx), s))
    pool = np.vstack(parts)
    target = transform(Xte, "target", rng)
    pca = PCA(64, random_state=0).fit(pool[rng.choice(len(pool), 10_000, replace=False)])
    Z, ZT = pca.transform(pool), pca.transform(target)
    scale = np.sqrt((Z ** 2).sum(1).mean())
    return (Z / scale).astype(np.float32), np.concatenate(labels), np.concatenate(groups), \
        np.concatenate(source), (ZT / scale).astype(np.float32), yte


def main() -> None:
    Z, y, groups, source, ZT, yt = build()
    n = len(y)
    X = np.vstack([Z, ZT])
    yy = np.concatenate([y, yt])
    test = np.arange(n, n + len(yt))
    data = SelectionInput(row_idx=np.arange(n), embeddings=Z, labels=y, groups=groups,
                          target=ZT)
    records = []
    full_acc = downstream_accuracy(X, yy, np.arange(n), test, 10)
    full_fd = frechet_distance(Z, ZT)
    with bar("snp", total=len(BUDGETS) * SEEDS * 3) as b:
        for budget in BUDGETS:
            for seed in range(SEEDS):
                runs = []
                for name, params in (("snp", {}), ("snp-per-class", {"per_class": True})):
                    t0 = time.perf_counter()
                    sel = make_selector("snp", **params).select(data, budget, seed=seed)
                    runs.append((name, sel.indices, time.perf_counter() - t0))
                rnd = np.random.default_rng(seed).choice(n, len(sel), replace=False)
                for name, rows, secs in (*runs, ("random", rnd, 0.0)):
                    mix = np.bincount(source[rows], minlength=len(SOURCES)) / len(rows)
                    records.append({
                        "method": name, "budget": budget, "seed": seed, "n_selected": len(rows),
                        "accuracy": downstream_accuracy(X, yy, rows, test, 10),
                        "fd": frechet_distance(Z[rows], ZT), "selection_time_s": secs,
                        "source_mix": dict(zip(SOURCES, mix.round(3).tolist(), strict=True))})
                    b.advance()
    for seed in range(SEEDS):
        records.append({"method": "whole pool", "budget": 1.0, "seed": seed, "n_selected": n,
                        "accuracy": full_acc, "fd": full_fd, "selection_time_s": 0.0,
                        "source_mix": dict.fromkeys(SOURCES, 0.2)})
    write_json(RESULTS / "snp.json", {"pool": list(SOURCES), "target": "test images, blur+noise",
                                      "machine": machine(), "records": records})
    lines = ["# SnP training-data search", "",
             f"Pool: {n:,} Fashion-MNIST images in 5 sources ({', '.join(SOURCES)}), 1,000 "
             "groups; target: 10,000 test images blurred + noised (unseen combination). "
             f"{SEEDS} seeds, mean ± std. {machine()}. Produced by `benchmarks/snp.py`.", "",
             "| set | budget | rows | FD to target ↓ | target accuracy "
             "| source mix (orig/inv/rot/noisy/blur) | time (s) |",
             "|---|---|---|---|---|---|---|"]
    for (name, budget), recs in group(records, "method", "budget").items():
        mix = np.mean([list(r["source_mix"].values()) for r in recs], axis=0)
        lines.append(f"| {name} | {budget:.0%} | {recs[0]['n_selected']:,} | "
                     f"{mean_std(r['fd'] for r in recs)} | {mean_std(r['accuracy'] for r in recs)}"
                     f" | {' / '.join(f'{m:.2f}' for m in mix)} | "
                     f"{np.mean([r['selection_time_s'] for r in recs]):.1f} |")
    write_markdown(RESULTS / "snp.md", lines)


if __name__ == "__main__":
    main()
