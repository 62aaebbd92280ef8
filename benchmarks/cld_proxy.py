"""CLD's proxy study: does a different proxy change CLD's verdict against random?

The CLD paper's loss trajectories come from a deep network trained with SGD; Curate's default
proxy is a softmax regression on frozen MiniLM embeddings (``curate signals train``), where
nearly every trajectory falls with its class. This benchmark measures CLD (top-k and the CCS
policy) against random on WordNet (a 40,000-row stratified sample and all rows) under proxy
choices, with the downstream model fixed (``curate.evaluate.downstream_accuracy``: L-BFGS
logistic regression; it is never tuned here):

- ``softmax`` (today's default: 20 epochs, Adam lr 1e-2, batch 256, every checkpoint)
- checkpoints: ``early`` (epochs 1–5) and ``late`` (epochs 16–20) of the same run
- ``epochs40`` (a 40-epoch run; a 5-epoch run *is* ``early``: same seed, same first five
  epochs), ``lr1e-3``, ``batch32`` (more SGD noise)
- ``mlp`` (one hidden layer of 256, lr 1e-3, 20 epochs) and its ``early`` checkpoints

Each proxy is retrained for each seed (so CLD's spread includes the proxy's randomness);
random uses the same seeds. Budgets 1%, 10%, 30%. Records: dataset, proxy, method, budget,
seed, accuracy, proxy_time_s; results/cld_proxy.json and results/cld_proxy.md.

    python benchmarks/cld_proxy.py [--seeds 3] [--sample 40000] [--full]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, group, machine, mean_std, merge_records, write_json  # noqa: E402
from subset_quality import load  # noqa: E402

from curate import CandidateSignals, SelectionInput, make_selector  # noqa: E402
from curate.evaluate import downstream_accuracy  # noqa: E402
from curate.progress import bar  # noqa: E402
from curate.signals import train_proxy  # noqa: E402

# proxy label → (training parameters, checkpoint slice)
PROXIES = {
    "softmax": ({"model": "softmax"}, slice(None)),
    "softmax-early": ({"model": "softmax"}, slice(0, 5)),
    "softmax-late": ({"model": "softmax"}, slice(15, 20)),
    "softmax-epochs40": ({"model": "softmax", "epochs": 40}, slice(None)),
    "softmax-lr1e-3": ({"model": "softmax", "lr": 1e-3}, slice(None)),
    "softmax-batch32": ({"model": "softmax", "batch_size": 32}, slice(None)),
    "mlp": ({"model": "mlp", "lr": 1e-3}, slice(None)),
    "mlp-early": ({"model": "mlp", "lr": 1e-3}, slice(0, 5)),
}
BUDGETS = (0.01, 0.1, 0.3)
POLICIES = {"cld": {}, "cld-ccs": {"policy": "ccs"}}


def run(store: Path, sample: int | None, seeds: int) -> list[dict]:
    X, y, C, rows, n_rows = load(store, sample)
    pool, val, test = rows["train"], rows["val"], rows["test"]
    dataset = f"wordnet-{n_rows}"
    records = []
    runs = {}  # training params → (signals, seconds) for this seed
    total = seeds * (len(BUDGETS) + len(PROXIES) * len(BUDGETS) * len(POLICIES))
    full = downstream_accuracy(X, y, pool, test, C)   # deterministic: one run
    records.append({"dataset": dataset, "proxy": "—", "method": "full", "budget": 1.0,
                    "seed": 0, "accuracy": full})
    with bar(f"cld proxy study ({dataset})", total=total) as b:
        for seed in range(seeds):
            runs.clear()   # a run is shared by its checkpoint slices, never across seeds
            for budget in BUDGETS:
                sel = make_selector("random").select(SelectionInput.from_arrays(
                    labels=y[pool], row_idx=pool), budget, seed=seed)
                records.append({"dataset": dataset, "proxy": "—", "method": "random",
                                "budget": budget, "seed": seed,
                                "accuracy": downstream_accuracy(X, y, sel.indices, test, C)})
                b.advance()
            for label, (params, window) in PROXIES.items():
                key = tuple(sorted(params.items()))
                if key not in runs:
                    t0 = time.perf_counter()
                    sig = train_proxy(X, y, pool, val, n_classes=C, seed=seed,
                                      **{"epochs": 20, **params})
                    runs[key] = (sig, time.perf_counter() - t0)
                sig, proxy_s = runs[key]
                data = SelectionInput(
                    row_idx=pool, labels=y[pool],
                    signals=CandidateSignals(train_losses=sig.train_losses[window],
                                             val_losses=sig.val_losses[window],
                                             val_labels=y[val]))
                for budget in BUDGETS:
                    for method, pparams in POLICIES.items():
                        sel = make_selector("cld", **pparams).select(data, budget, seed=seed)
                        records.append({
                            "dataset": dataset, "proxy": label, "method": method,
                            "budget": budget, "seed": seed, "proxy_time_s": proxy_s,
                            "accuracy": downstream_accuracy(X, y, sel.indices, test, C,
                                                            sel.weights)})
                        b.advance()
    return records


def markdown(records: list[dict], seeds: int) -> list[str]:
    lines = ["# CLD proxy study", "",
             f"CLD (top-k and CCS) vs random under proxy choices; WordNet, MiniLM "
             f"embeddings, fixed downstream model (L-BFGS logistic regression); "
             f"{len({r['seed'] for r in records})} seeds "
             f"(each proxy retrained per seed); mean ± std. Δ = CLD − random at the same "
             f"budget (mean over seeds). {machine()}. Produced by "
             "`benchmarks/cld_proxy.py`.", ""]
    for (ds,), recs in group(records, "dataset").items():
        rand = {b: [r["accuracy"] for r in rs] for (b,), rs in
                group([r for r in recs if r["method"] == "random"], "budget").items()}
        full = next(r["accuracy"] for r in recs if r["method"] == "full")
        lines += [f"## {ds}", "", f"Full train pool: {full:.3f} (deterministic fit, one run).", "",
                  "| proxy | method | " + " | ".join(f"{b:.0%} (Δ)" for b in BUDGETS) + " |",
                  "|---|---|" + "---|" * len(BUDGETS),
                  "| — | random | " + " | ".join(mean_std(rand[b]) for b in BUDGETS) + " |"]
        for (proxy, method), rs in group([r for r in recs
                                          if r["method"] not in ("random", "full")],
                                         "proxy", "method").items():
            by = group(rs, "budget")
            cells = []
            for b in BUDGETS:
                acc = [r["accuracy"] for r in by[(b,)]]
                cells.append(f"{mean_std(acc)} ({np.mean(acc) - np.mean(rand[b]):+.3f})")
            lines.append(f"| {proxy} | {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path(__file__).parent / ".cache" /
                    "wordnet-full")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sample", type=int, default=40_000)
    ap.add_argument("--full", action="store_true", help="also all rows")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    new = run(args.store, args.sample, args.seeds)
    if args.full:
        new += run(args.store, None, args.seeds)
    path = args.out / "cld_proxy.json"
    records = merge_records(path, new, ("dataset", "proxy", "method", "budget", "seed"))
    write_json(path, records)
    from common import write_markdown

    write_markdown(args.out / "cld_proxy.md", markdown(records, args.seeds))


if __name__ == "__main__":
    main()
