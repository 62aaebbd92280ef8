"""``curate compare``: which selection method helps on *this* dataset, with honest evidence.

For every method spec (``el2n:policy=ccs``), budget and seed, the method selects from the
candidate pool (``curate.select``: stored and content-addressed like any selection, so a
re-run reuses it), and the fixed downstream model (``curate.evaluate``: multinomial logistic
regression by deterministic L-BFGS) is trained on the subset and scored on the test split.
Beside them, always: ``random`` and ``stratified`` of the same size with the same seeds
(the baselines), and the full pool once.

Honesty rules:

- **runs** are distinct selections. A method whose subset does not change with the seed
  (e.g. herding) is one run: its accuracy is reported once, without a spread, never
  repeated as if it varied. Its mean ± std otherwise is over seeds (population std).
- **Δ vs best baseline** pairs by seed: d_s = acc_method(s) − acc_base(s), where ``base``
  is whichever of random and stratified has the higher mean at that budget; the interval
  is mean(d) ± t₀.₉₇₅,ₙ₋₁ · sd(d)/√n (Student t, n = seeds; none for n = 1). An interval
  above 0 says the method beats the best random arm on this data at this budget.
- **cost**: the selection's own wall time (from its stored run record, so a reused
  selection reports the time it took when made) beside the downstream fit's wall time.

Outputs (``write_report``): ``compare.json`` (every record and summary), ``compare.png``
(accuracy vs budget, one line per method with its ±std band, the baselines' band shaded,
the full pool dashed) and ``compare.html`` (self-contained: the table, the plot inlined, the
provenance of every selection).
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.api import load_selection, open_store, select
from curate.budget import Budget, resolve_budget
from curate.checks import check_int, check_seed
from curate.errors import InvalidParameterError
from curate.evaluate import evaluation_data
from curate.progress import bar
from curate.selector import get_selector_class
from curate.specs import MethodSpec
from stores import Store, files

BASELINES = ("random", "stratified")
MAX_SEEDS = 50


@dataclass(frozen=True)
class Arm:
    """One (method, budget) cell: its runs and the paired difference to the best baseline."""

    label: str
    budget: float | int
    n_selected: int
    accuracies: list[float]          # one per distinct selection
    seeds: list[int]                 # the seeds that made them (the first of each)
    selection_ids: list[str]
    selection_time_s: float          # mean over runs
    train_time_s: float              # mean downstream fit time
    delta: float | None = None       # mean paired difference to the best baseline
    delta_ci95: tuple[float, float] | None = None
    baseline: str | None = None

    @property
    def runs(self) -> int:
        return len(self.accuracies)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float | None:
        return float(np.std(self.accuracies)) if self.runs > 1 else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "runs": self.runs, "mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class CompareReport:
    dataset: str
    n_candidates: int
    n_test: int
    seeds: list[int]
    budgets: list[float | int]
    methods: list[str]
    full_pool_accuracy: float
    full_pool_train_time_s: float
    arms: list[Arm]
    provenance: dict[str, dict] = field(default_factory=dict)   # selection id → provenance
    within: str | None = None

    def arm(self, label: str, budget) -> Arm:
        return next(a for a in self.arms if a.label == label and a.budget == budget)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["arms"] = [a.to_json() for a in self.arms]
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> CompareReport:
        """Back from ``compare.json`` (to re-draw a report without re-running anything)."""
        known = set(Arm.__dataclass_fields__)
        arms = [Arm(**{k: (tuple(v) if k == "delta_ci95" and v is not None else v)
                       for k, v in a.items() if k in known}) for a in obj["arms"]]
        return cls(**{**{k: v for k, v in obj.items() if k in cls.__dataclass_fields__},
                      "arms": arms})


def _specs(methods) -> list[MethodSpec]:
    specs = [m if isinstance(m, MethodSpec) else MethodSpec.parse(m) for m in methods]
    for s in specs:
        if not get_selector_class(s.method).exact_budget:   # unknown method: one line, too
            raise InvalidParameterError(
                f"compare: {s.method} may return fewer rows than the budget, so random of "
                "the budget's size is no fair baseline; run filters such as dedup and "
                "label_issues first and compare within them (--from)")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise InvalidParameterError(f"compare: a method is listed twice: {', '.join(labels)}")
    return [s for s in specs if s.label not in BASELINES]


def compare(store: Store | str | Path | None = None, dataset: str | None = None, *,
            methods: list[str | MethodSpec], budgets: list[Budget], seeds: int = 3,
            seed: int = 0, within: str | None = None, executor=None,
            progress: bool = False) -> CompareReport:
    """Select with every method × budget × seed, train the downstream model on each subset
    and compare with ``random``/``stratified`` of the same size and the full pool.

    Checked before anything runs: every method name (and later its parameters, by the
    selector), ``seeds`` in [1, MAX_SEEDS], the seeds themselves. ``within`` runs every
    selection inside a stored selection's rows (``--from``)."""
    specs = _specs(methods)
    check_int("compare", "seeds", seeds, 1, MAX_SEEDS)
    seed = check_seed(seed)
    check_seed(seed + seeds - 1, where=f"seed + seeds − 1 (seed={seed}, seeds={seeds})")
    if not budgets:
        raise InvalidParameterError("compare: give at least one budget")
    st = open_store(store)
    seed_list = list(range(seed, seed + seeds))
    arms_in = [MethodSpec(b, {}, b) for b in BASELINES] + specs
    prov: dict[str, dict] = {}
    fits: dict[str, tuple[float, float]] = {}        # selection id → (accuracy, fit s)
    ev = None
    cells: dict[tuple[str, Any], list] = {}
    total = len(arms_in) * len(budgets) * seeds + 1
    with bar("compare", total=total, enabled=progress) as b:
        for budget in budgets:
            for spec in arms_in:
                for s in seed_list:
                    sel = select(method=spec.method, budget=budget, dataset=dataset, store=st,
                                 seed=s, params=spec.params, within=within, executor=executor)
                    if ev is None:
                        ev = evaluation_data(st, sel.provenance.dataset,
                                             sel.provenance.inputs.get("embedding"))
                    if sel.id not in fits:
                        t0 = time.perf_counter()
                        acc = ev.accuracy(sel.indices, sel.weights)
                        fits[sel.id] = (acc, time.perf_counter() - t0)
                        prov[sel.id] = {**sel.provenance.to_json(), "run": sel.run}
                    cells.setdefault((spec.label, budget), []).append((s, sel))
                    b.advance()
        pool = ev.pool
        if within is not None:     # the candidates: the parent's training rows
            pool = np.intersect1d(load_selection(st, within).indices, ev.pool)
        t0 = time.perf_counter()
        full = ev.accuracy(pool)
        full_s = time.perf_counter() - t0
        b.advance()
    arms = _summarise(cells, fits, budgets, [s.label for s in arms_in], seed_list)
    first = next(iter(prov.values()))
    return CompareReport(dataset=first["dataset"], n_candidates=int(first["n_candidates"]),
                         n_test=len(ev.test), seeds=seed_list, budgets=list(budgets),
                         methods=[s.label for s in specs], full_pool_accuracy=full,
                         full_pool_train_time_s=full_s, arms=arms, provenance=prov,
                         within=within)


def _summarise(cells, fits, budgets, labels, seed_list) -> list[Arm]:
    arms = []
    for budget in budgets:
        per_seed = {lab: {s: fits[sel.id][0] for s, sel in cells[(lab, budget)]}
                    for lab in labels}
        base = max(BASELINES, key=lambda b: np.mean(list(per_seed[b].values())))
        for lab in labels:
            distinct: dict[bytes, int] = {}
            for s, sel in cells[(lab, budget)]:
                distinct.setdefault(_rows_key(sel), s)
            sels = {s: sel for s, sel in cells[(lab, budget)]}
            kept = sorted(distinct.values())
            acc = [fits[sels[s].id][0] for s in kept]
            delta = ci = None
            if lab not in BASELINES:
                d = np.array([per_seed[lab][s] - per_seed[base][s] for s in seed_list])
                delta = float(d.mean())
                ci = paired_ci95(d)
            first = sels[kept[0]]
            arms.append(Arm(
                label=lab, budget=budget, n_selected=len(first), accuracies=acc, seeds=kept,
                selection_ids=[sels[s].id for s in kept],
                selection_time_s=float(np.mean([sels[s].run.get("wall_time_s", 0.0)
                                                for s in kept])),
                train_time_s=float(np.mean([fits[sels[s].id][1] for s in kept])),
                delta=delta, delta_ci95=ci, baseline=None if lab in BASELINES else base))
    return arms


def _rows_key(sel) -> bytes:
    """Two selections with the same rows in the same order (and weights) are one run."""
    w = b"" if sel.weights is None else np.ascontiguousarray(sel.weights).tobytes()
    return np.ascontiguousarray(sel.indices).tobytes() + w


def paired_ci95(d: np.ndarray) -> tuple[float, float] | None:
    """mean(d) ± t₀.₉₇₅,ₙ₋₁ · sd(d)/√n (sample sd); None for n < 2."""
    n = len(d)
    if n < 2:
        return None
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1) * np.std(d, ddof=1) / math.sqrt(n))
    return (float(d.mean() - half), float(d.mean() + half))


# -- output -------------------------------------------------------------------------------
def fmt_acc(arm: Arm) -> str:
    return f"{arm.mean:.4f}" + (f" ± {arm.std:.4f}" if arm.std is not None else " (1 run)")


def fmt_delta(arm: Arm) -> str:
    if arm.delta is None:
        return ""
    if arm.delta_ci95 is None:
        return f"{arm.delta:+.4f}"
    lo, hi = arm.delta_ci95
    return f"{arm.delta:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def table_rows(rep: CompareReport) -> list[dict[str, str]]:
    """One row per (method, budget): what the terminal table and the HTML show."""
    rows = []
    for a in rep.arms:
        k = resolve_budget(a.budget, rep.n_candidates)
        rows.append({"method": a.label, "budget": _budget_text(a.budget), "rows": str(k),
                     "accuracy": fmt_acc(a), "runs": str(a.runs),
                     "Δ [95% CI]": fmt_delta(a) or "—",
                     "vs": a.baseline or "—",
                     "select s": f"{a.selection_time_s:.2f}",
                     "train s": f"{a.train_time_s:.2f}"})
    return rows


def _budget_text(b) -> str:
    return f"{b:.0%}" if isinstance(b, float) else str(b)


def plot(rep: CompareReport, path: Path) -> None:
    """Accuracy vs budget: a line and ±std band per method, baselines shaded, full dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [resolve_budget(b, rep.n_candidates) for b in rep.budgets]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for base, colour in zip(BASELINES, ("0.55", "0.75"), strict=True):
        arms = [rep.arm(base, b) for b in rep.budgets]
        m = np.array([a.mean for a in arms])
        s = np.array([a.std or 0.0 for a in arms])
        ax.fill_between(xs, m - s, m + s, color=colour, alpha=0.35, lw=0)
        ax.plot(xs, m, color=colour, lw=1.5, ls=":", label=f"{base} (± std)")
    for i, lab in enumerate(rep.methods):
        arms = [rep.arm(lab, b) for b in rep.budgets]
        m = np.array([a.mean for a in arms])
        s = np.array([a.std or 0.0 for a in arms])
        line, = ax.plot(xs, m, marker="o", lw=2, label=lab, color=f"C{i}")
        ax.fill_between(xs, m - s, m + s, color=line.get_color(), alpha=0.15, lw=0)
    ax.axhline(rep.full_pool_accuracy, color="k", ls="--", lw=1,
               label=f"full pool ({rep.n_candidates:,} rows)")
    if len(xs) > 1 and max(xs) / max(min(xs), 1) > 8:
        ax.set_xscale("log")
    ax.set_xticks(xs, [f"{k:,}\n{_budget_text(b)}" for k, b in zip(xs, rep.budgets,
                                                                  strict=True)])
    ax.minorticks_off()
    ax.set_xlabel("selected rows (budget)")
    ax.set_ylabel("test accuracy (downstream model)")
    ax.set_title(f"{rep.dataset}: {len(rep.seeds)} seed(s) per point")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def html_report(rep: CompareReport, png: bytes) -> str:
    rows = table_rows(rep)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values()) +
                   "</tr>" for r in rows)
    prov = "".join(
        f"<details><summary><code>{html.escape(sid)}</code> — {html.escape(p['method'])}, "
        f"{p['n_selected']} of {p['n_candidates']}, seed {p['seed']}</summary><pre>"
        f"{html.escape(json.dumps(p, indent=2, default=str))}</pre></details>"
        for sid, p in rep.provenance.items())
    img = base64.b64encode(png).decode()
    within = (f" within selection <code>{html.escape(rep.within)}</code>"
              if rep.within else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>curate compare: {html.escape(rep.dataset)}
</title><style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .6em;
text-align:right}}td:first-child,th:first-child{{text-align:left}}th{{background:#f3f3f3}}
pre{{background:#f8f8f8;padding:.6em;overflow:auto;font-size:12px}}
</style></head><body>
<h1>Which selection method helps on <code>{html.escape(rep.dataset)}</code>?</h1>
<p>{rep.n_candidates:,} candidates{within}, {rep.n_test:,} test rows, seeds
{rep.seeds[0]}–{rep.seeds[-1]}. Downstream model: multinomial logistic regression (L-BFGS),
fixed. Full pool: {rep.full_pool_accuracy:.4f} (1 run, {rep.full_pool_train_time_s:.2f} s).
A method whose subset does not change with the seed is one run. Δ is paired by seed against
the better of random and stratified at that budget, with a Student-t 95% interval.</p>
<img alt="accuracy vs budget" src="data:image/png;base64,{img}" style="max-width:100%">
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Provenance of every selection</h2>{prov}
</body></html>
"""


def write_report(rep: CompareReport, out: str | Path, *, overwrite: bool = False
                 ) -> dict[str, str]:
    """``compare.json``, ``compare.png`` and ``compare.html`` in folder ``out`` (created if
    its parent exists; refused inside a store; existing files only with ``overwrite``),
    each written atomically. Returns their paths."""
    out = Path(out)
    if not out.exists():
        files.check_output_path(out, what="report folder")
        out.mkdir()
    paths = {k: files.check_output_path(out / f"compare.{k}", overwrite=overwrite,
                                        what="report")
             for k in ("json", "png", "html")}
    files.write_json(paths["json"], rep.to_json())
    files.atomic_write(paths["png"], lambda tmp: plot(rep, tmp))
    png = paths["png"].read_bytes()
    files.atomic_write(paths["html"],
                       lambda tmp: tmp.write_text(html_report(rep, png), encoding="utf-8"))
    return {k: str(v) for k, v in paths.items()}


def compare_and_report(store: Store | str | Path | None = None, dataset: str | None = None, *,
                       methods: list[str | MethodSpec], budgets: list[Budget],
                       seeds: int = 3, seed: int = 0, within: str | None = None,
                       executor=None, progress: bool = False, out: str | Path | None = None,
                       overwrite: bool = False) -> tuple[CompareReport, dict[str, str]]:
    """``curate compare``: run ``compare`` and write its report (``write_report``) into
    ``out`` (default ``./compare-<dataset>``). Returns the report and the written paths."""
    rep = compare(store, dataset, methods=methods, budgets=budgets, seeds=seeds, seed=seed,
                  within=within, executor=executor, progress=progress)
    paths = write_report(rep, out or Path(f"compare-{rep.dataset}"), overwrite=overwrite)
    return rep, paths
