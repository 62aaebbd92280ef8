"""``auto``: choose the method for this dataset and budget by a nested validation bake-off.

Which selection method helps depends on the data (herding wins on WordNet text embeddings
and loses on Fashion-MNIST pixels; el2n-ccs the reverse: ``benchmarks/results/
subset_quality.md``). ``auto`` measures instead of guessing, on the candidates only — the
test split is never read:

1. The candidates are split, class-stratified and seeded, into an inner train part
   (``1 − val_fraction``) and an inner validation part.
2. Each contender (``CONTENDERS``; the score methods only when the dataset has signals)
   selects the same *fraction* of the inner train part as the budget is of the pool, and
   the fixed downstream model (multinomial logistic regression, deterministic L-BFGS) is
   fitted on its subset and scored on the inner validation part. This is repeated for
   ``rounds`` seeds (new inner split each round); the contenders run cheapest first and
   stop when ``time_cap_s`` is spent (``random`` and ``stratified`` always run, so there is
   always a fallback no worse than random on validation).
3. The contender with the highest mean inner-validation accuracy runs on the whole pool at
   the asked budget and seed; its answer is the selection.

``time_cap_s`` (default None: no cap) skips the contenders not yet run once the bake-off has
taken that long; the answer then depends on the machine's speed (the skipped contenders are
in ``info["skipped"]``), so the default keeps it a function of the data and the seed.

The provenance ``info`` records the choice, why (its validation mean against the best
baseline's), every contender's validation accuracies and times, the skipped ones, and the
chosen method's own ``info``. Cost: ``rounds × |contenders|`` small selections and
downstream fits on the inner split, then one selection.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from curate.budget import shuffled_class_rank
from curate.checks import check_int, check_number
from curate.errors import CurateError
from curate.inputs import SelectionInput
from curate.inputs import take as take_rows
from curate.selector import Needs, Picks, Selector, make_selector, register

#: (label, method, parameters), cheapest first; the baselines first of all
CONTENDERS: tuple[tuple[str, str, dict], ...] = (
    ("random", "random", {}),
    ("stratified", "stratified", {}),
    ("el2n:policy=ccs", "el2n", {"policy": "ccs"}),
    ("cld:policy=ccs", "cld", {"policy": "ccs"}),
    ("herding", "herding", {}),
    ("kcenter", "kcenter", {}),
    ("facility_location", "facility_location", {}),
)
BASELINES = ("random", "stratified")


def inner_split(labels: np.ndarray, val_fraction: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Positions (train, val), class-stratified: each class gives ⌊val_fraction·n_c⌉ rows
    (at least 1 when it has 2 or more) to validation."""
    rank = shuffled_class_rank(labels, rng)
    counts = np.bincount(labels)[labels]
    n_val = np.where(counts >= 2, np.maximum(1, np.rint(val_fraction * counts)), 0)
    is_val = rank < n_val
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


@register("auto")
class AutoSelector(Selector):
    needs = Needs(labels=True, embeddings=True)
    summary = ("chooses a method (and policy) by a nested validation bake-off on the "
               "candidates, then runs it; the evidence is in the provenance")
    uses_signals = True

    def __init__(self, *, rounds: int = 2, val_fraction: float = 0.25,
                 time_cap_s: float | None = None):
        self.rounds, self.val_fraction, self.time_cap_s = rounds, val_fraction, time_cap_s
        self.check_params()

    def _check_params(self):
        check_int(self.name, "rounds", self.rounds, 1, 20)
        check_number(self.name, "val_fraction", self.val_fraction, 0.05, 0.5)
        if self.time_cap_s is not None:
            check_number(self.name, "time_cap_s", self.time_cap_s, 0.0, low_open=True)

    def contenders(self, data: SelectionInput) -> list[tuple[str, str, dict]]:
        has_signals = data.signals is not None
        return [c for c in CONTENDERS
                if has_signals or not make_selector(c[1], **c[2]).needs.signals]

    def _select(self, data: SelectionInput, k: int, rng: np.random.Generator) -> Picks:
        from curate.models import accuracy, fit_softmax_lbfgs

        n = data.n
        labels = np.asarray(data.labels)
        X = np.asarray(data.embeddings, np.float32)
        C = int(labels.max()) + 1
        contenders = self.contenders(data)
        evidence = {c[0]: {"val_accuracy": [], "time_s": 0.0} for c in contenders}
        skipped: dict[str, str] = {}
        start = time.perf_counter()
        for _ in range(self.rounds):
            tr, va = inner_split(labels, self.val_fraction, rng)
            if not len(va) or not len(tr):
                break                        # too small to validate: stratified, below
            sub = take(data, tr)
            k_in = int(min(len(tr), max(1, round(k * len(tr) / n))))
            seed = int(rng.integers(2**62))
            for label, method, params in contenders:
                if label in skipped:
                    continue
                if (label not in BASELINES and self.time_cap_s is not None
                        and time.perf_counter() - start > self.time_cap_s):
                    skipped[label] = f"time cap {self.time_cap_s:g} s reached"
                    continue
                t0 = time.perf_counter()
                try:
                    sel = make_selector(method, **params).select(sub, k_in, seed=seed,
                                                                 executor=self.executor)
                except CurateError as err:       # e.g. a score method on one class
                    skipped[label] = str(err)
                    continue
                rows = tr[sel.indices]                  # sub's row_idx are positions in tr
                model = fit_softmax_lbfgs(X[rows], labels[rows], C, sel.weights)
                evidence[label]["val_accuracy"].append(accuracy(model, X[va], labels[va]))
                evidence[label]["time_s"] += time.perf_counter() - t0
        ran = {lab: e for lab, e in evidence.items() if len(e["val_accuracy"]) == self.rounds}
        for e in evidence.values():
            e["mean"] = (float(np.mean(e["val_accuracy"])) if e["val_accuracy"] else None)
            e["time_s"] = round(e["time_s"], 3)
        if not ran:   # no inner validation possible (a class of one row, a tiny pool)
            ran = {"stratified": {**evidence["stratified"], "mean": 0.0}}
        # ties go to a baseline, then to the earlier (cheaper) contender
        chosen = max(ran, key=lambda lab: (ran[lab]["mean"], lab in BASELINES))
        best_base = max(BASELINES, key=lambda b: evidence[b]["mean"] or 0.0)
        _, method, params = next(c for c in contenders if c[0] == chosen)
        final = make_selector(method, **params).select(
            replace(data, row_idx=np.arange(n, dtype=np.int64)), k,
            seed=int(rng.integers(2**62)), executor=self.executor)
        if evidence[chosen]["mean"] is None:
            why = "stratified: the pool is too small for an inner validation split"
        else:
            why = (f"{chosen}: inner-validation accuracy {evidence[chosen]['mean']:.4f} "
                   f"vs {best_base} {evidence[best_base]['mean']:.4f} over {self.rounds} "
                   f"round(s) at {k / n:.1%} of the pool")
        info = {"chosen": chosen, "method": method, "params": params, "why": why,
                "evidence": evidence, "skipped": skipped,
                "bakeoff_s": round(time.perf_counter() - start, 3),
                "chosen_info": final.provenance.info}
        return Picks(positions=final.indices, scores=final.scores, weights=final.weights,
                     info=info)


def take(data: SelectionInput, positions: np.ndarray) -> SelectionInput:
    """The candidates at ``positions`` as their own pool; its ``row_idx`` are the positions'
    indices 0..m-1 (so a selection of it maps back through ``positions``)."""
    sig = data.signals
    if sig is not None:
        sig = replace(sig, train_losses=np.asarray(sig.train_losses)[:, positions],
                      train_correct=None if sig.train_correct is None
                      else np.asarray(sig.train_correct)[:, positions],
                      train_probs=None if sig.train_probs is None
                      else np.asarray(sig.train_probs)[positions])

    def cut(a):
        return take_rows(a, positions)

    return replace(data, row_idx=np.arange(len(positions), dtype=np.int64),
                   labels=cut(data.labels), embeddings=cut(data.embeddings), signals=sig,
                   groups=cut(data.groups), sample_ids=cut(data.sample_ids),
                   text_keys=cut(data.text_keys))
