"""Subset quality per encoder backend: does a faster backend change what the data selects?

Reads ``results/subset_quality.json`` — the WordNet-40k records of the float32 reference
(dataset ``wordnet-40000``, the store's ``torch`` embeddings) and those of each backend
(``wordnet-40000-<backend>``: every gloss re-embedded with that backend, the same rows,
splits, labels and seeds; made by ``subset_quality.py --sample 40000 --backend B``) — and
writes ``results/embed_quality.md``: per method and budget the mean accuracy over seeds, the
difference to torch (Δ) and Δ in pooled seed-to-seed stds, σ = √((σ_torch² + σ_B²)/2)
(``common.seed_std``). A method whose accuracy did not vary over seeds (herding, facility
location: deterministic given the embeddings) is one run; its Δ is read against random's σ
at that budget.

    python benchmarks/embed_quality.py [--backends openvino,openvino-int8]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, seed_std, write_markdown  # noqa: E402

BASE = "wordnet-40000"


def cells(records: list[dict], dataset: str) -> dict[tuple[str, float], np.ndarray]:
    """(method, budget) → per-seed accuracies (seed order) of one dataset."""
    out: dict[tuple[str, float], list] = {}
    for r in sorted((r for r in records if r["dataset"] == dataset and r["method"] != "full"),
                    key=lambda r: r["seed"]):
        out.setdefault((r["method"], r["budget"]), []).append(r["accuracy"])
    return {k: np.asarray(v) for k, v in out.items()}


def compare(base: dict, other: dict) -> list[dict]:
    rows = []
    for key in sorted(set(base) & set(other)):
        a, b = base[key], other[key]
        varied = not (np.all(a == a[0]) and np.all(b == b[0]))
        sigma = float(np.sqrt((seed_std(a) ** 2 + seed_std(b) ** 2) / 2)) if varied else None
        delta = float(b.mean() - a.mean())
        rows.append({"method": key[0], "budget": key[1], "torch": float(a.mean()),
                     "backend": float(b.mean()), "delta": delta, "sigma": sigma,
                     "in_sigma": delta / sigma if sigma else None})
    return rows


def summary(name: str, rows: list[dict]) -> str:
    seeded = [r for r in rows if r["sigma"]]
    fixed = [r for r in rows if not r["sigma"]]
    if not seeded:
        return f"`{name}`: no cell varied over seeds."
    big = max(seeded, key=lambda r: abs(r["delta"]))
    far = max(seeded, key=lambda r: abs(r["in_sigma"]))
    line = (f"`{name}`: over the {len(seeded)} seeded cells the largest |Δ| is "
            f"{abs(big['delta']):.4f} ({big['method']} at {big['budget']:.0%}, "
            f"{abs(big['in_sigma']):.1f} σ) and the largest in σ is {abs(far['in_sigma']):.1f} "
            f"({far['method']} at {far['budget']:.0%}, {far['delta']:+.4f})")
    if fixed:
        worst = max(fixed, key=lambda r: abs(r["delta"]))
        line += (f"; the one-run methods move by at most {abs(worst['delta']):.4f} "
                 f"({worst['method']} at {worst['budget']:.0%})")
    return line + "."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="openvino,openvino-int8")
    args = ap.parse_args()
    records = json.loads((RESULTS / "subset_quality.json").read_text())
    base = cells(records, BASE)
    random_sigma = {b: seed_std(v) for (m, b), v in base.items() if m == "random"}
    lines = ["# Subset quality: torch (float32) embeddings vs each faster backend", "",
             "WordNet 40k sample, the subset_quality protocol (5 seeds), the same rows, splits "
             "and labels; only the embeddings differ (all 117,659 glosses re-embedded with "
             "`--backend B`). Produced by `benchmarks/subset_quality.py --sample 40000 "
             "--backend B` beside the stored torch records, then `python "
             "benchmarks/embed_quality.py`. Δ = backend − torch; σ = pooled seed-to-seed std "
             "(population std over seeds, `common.seed_std`); one-run methods (deterministic "
             "given the embeddings) are compared with random's σ at that budget: "
             + ", ".join(f"{b:.0%} {s:.4f}" for b, s in sorted(random_sigma.items())) + ".",
             "The forgetting-ccs torch records predate its tie-break change (session 4).", ""]
    for name in args.backends.split(","):
        other = cells(records, f"{BASE}-{name}")
        if not other:
            lines += [f"`{name}`: no records (run `subset_quality.py --sample 40000 "
                      f"--backend {name}`).", ""]
            continue
        rows = compare(base, other)
        lines += [f"## `{name}`", "", summary(name, rows), "",
                  f"| method | budget | torch | {name} | Δ | Δ in σ |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['method']} | {r['budget']:.0%} | {r['torch']:.4f} | {r['backend']:.4f} "
                  f"| {r['delta']:+.4f} | "
                  + (f"{r['in_sigma']:+.1f}" if r["sigma"] else "— (1 run)") + " |"
                  for r in rows]
        lines.append("")
    write_markdown(RESULTS / "embed_quality.md", lines)


if __name__ == "__main__":
    main()
