"""Calibration-set selection: for every instance, choose the candidates a model is further
fine-tuned (calibrated) on. Liu et al., ACL 2023, "What are the desired characteristics of
calibration sets? Identifying correlates on long form scientific summarization".

Input (Polars / DuckDB / Parquet): one row per candidate with ``instance_id``,
``candidate_id``, ``text``, ``role`` (reference / positive / negative / mixed), metric columns,
``likelihood``, ``model_rank`` (1 = the model's favourite) and optionally ``source`` (the
instance's document, for extractive density). Scores: ``features.zscore_score``.

Relevance mode (k ranked candidates, default 4) — strategies:
  random · extreme (top ⌈k/2⌉ + bottom ⌊k/2⌋) · average (closest to the instance's mean
  score) · max_metric / min_metric · max_margin / min_margin (≤ 5000 subsets) ·
  max_diversity / min_diversity (≤ 200 subsets) · top_beam / bottom_beam / wide_beam (by
  model rank: best k, worst k, evenly spread) · max_surprise / min_surprise (≤ 100 subsets) ·
  long / short (by length).
Faithfulness mode (2 positives + 2 negatives) — strategies:
  random · average · max_margin / min_margin · max_diversity / min_diversity · easy (best
  positives, worst negatives) · hard (worst positives, best negatives) ·
  max_extractive_gap / min_extractive_gap (mean density of negatives − of positives; needs
  ``source``). Reference policy: ``positive`` (references count as positives), ``ensure`` (a
  reference is always one of the positives), ``remove`` (references are never chosen).

Subset searches enumerate every subset when there are at most the cap, else draw the cap at
random (seeded). An instance with fewer candidates than needed is padded by duplication, as
the paper does; ``padded`` in the diagnostics says how many slots are duplicates.
Output: the chosen candidates (metric order within each instance) and one diagnostics row
per instance (margin, diversity, mean likelihood, surprise, extractive density, length).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
import polars as pl

from curate.calibration import features as F
from curate.errors import InvalidParameterError, SchemaError

RELEVANCE = ("random", "extreme", "average", "max_metric", "min_metric", "max_margin",
             "min_margin", "max_diversity", "min_diversity", "top_beam", "bottom_beam",
             "wide_beam", "max_surprise", "min_surprise", "long", "short")
FAITHFULNESS = ("random", "average", "max_margin", "min_margin", "max_diversity",
                "min_diversity", "easy", "hard", "max_extractive_gap", "min_extractive_gap")
REFERENCE_POLICIES = ("positive", "ensure", "remove")
CAPS = {"margin": 5000, "diversity": 200, "surprise": 100, "extractive_gap": 5000}
REQUIRED = ("instance_id", "candidate_id", "text", "role", "likelihood", "model_rank")


@dataclass
class Instance:
    """One instance's candidates as arrays (positions 0..n−1)."""

    ids: np.ndarray
    role: np.ndarray
    score: np.ndarray
    likelihood: np.ndarray
    model_rank: np.ndarray
    toks: list
    density: np.ndarray | None

    @property
    def n(self) -> int:
        return len(self.ids)


def _subsets(pool: np.ndarray, k: int, cap: int, rng: np.random.Generator):
    if comb(len(pool), k) <= cap:
        return [np.array(c) for c in combinations(pool, k)]
    return [np.sort(rng.choice(pool, size=k, replace=False)) for _ in range(cap)]


def _best(cands: list, objective, maximise: bool) -> np.ndarray:
    values = np.array([objective(c) for c in cands])
    return cands[int(np.argmax(values) if maximise else np.argmin(values))]


def _pad(chosen: np.ndarray, pool: np.ndarray, k: int, order_key: np.ndarray) -> np.ndarray:
    """Duplicate candidates (best score first, cycling) until there are k."""
    if len(chosen) >= k:
        return chosen
    cycle = pool[np.argsort(-order_key[pool], kind="stable")]
    extra = np.resize(cycle, k - len(chosen)) if len(cycle) else np.array([], dtype=int)
    return np.concatenate([chosen, extra])


def relevance(inst: Instance, strategy: str, k: int, rng: np.random.Generator) -> np.ndarray:
    allp = np.arange(inst.n)
    if inst.n <= k:
        return _pad(allp, allp, k, inst.score)
    by_score = np.argsort(-inst.score, kind="stable")
    if strategy == "random":
        return rng.choice(allp, size=k, replace=False)
    if strategy == "extreme":
        return np.concatenate([by_score[: (k + 1) // 2], by_score[::-1][: k // 2]])
    if strategy == "average":
        return np.argsort(np.abs(inst.score - inst.score.mean()), kind="stable")[:k]
    if strategy in ("max_metric", "min_metric"):
        return by_score[:k] if strategy == "max_metric" else by_score[::-1][:k]
    if strategy in ("top_beam", "bottom_beam", "wide_beam"):
        by_rank = np.argsort(inst.model_rank, kind="stable")
        if strategy == "top_beam":
            return by_rank[:k]
        if strategy == "bottom_beam":
            return by_rank[::-1][:k]
        return by_rank[np.round(np.linspace(0, inst.n - 1, k)).astype(int)]
    if strategy in ("long", "short"):
        length = np.array([len(t) for t in inst.toks])
        order = np.argsort(-length if strategy == "long" else length, kind="stable")
        return order[:k]
    kind = strategy.split("_", 1)[1]
    objective = {
        "margin": lambda s: F.margin(inst.score[s]),
        "diversity": lambda s: F.diversity([inst.toks[i] for i in s]),
        "surprise": lambda s: F.surprise(inst.score[s], inst.model_rank[s]),
    }[kind]
    return _best(_subsets(allp, k, CAPS[kind], rng), objective, strategy.startswith("max"))


def faithfulness(inst: Instance, strategy: str, rng: np.random.Generator,
                 reference: str) -> np.ndarray:
    is_ref = inst.role == "reference"
    pos = np.flatnonzero((inst.role == "positive") | (is_ref & (reference != "remove")))
    neg = np.flatnonzero(inst.role == "negative")
    forced = np.array([], dtype=int)
    if reference == "ensure" and is_ref.any():
        refs = np.flatnonzero(is_ref)
        forced = refs[np.argsort(-inst.score[refs], kind="stable")][:1]
        pos = pos[pos != forced[0]]
    n_pos = 2 - len(forced)

    def pairs(pool: np.ndarray, m: int) -> list:
        if len(pool) <= m:
            return [_pad(pool, pool, m, inst.score)]
        return [np.array(c) for c in combinations(pool, m)]

    if strategy in ("random", "average", "easy", "hard"):
        if strategy == "random":
            p = rng.choice(pos, n_pos, replace=False) if len(pos) > n_pos else pos
            q = rng.choice(neg, 2, replace=False) if len(neg) > 2 else neg
        elif strategy == "average":
            p = pos[np.argsort(np.abs(inst.score[pos] - inst.score[pos].mean()))[:n_pos]] \
                if len(pos) else pos
            q = neg[np.argsort(np.abs(inst.score[neg] - inst.score[neg].mean()))[:2]] \
                if len(neg) else neg
        else:
            p_order = pos[np.argsort(-inst.score[pos], kind="stable")]
            n_order = neg[np.argsort(inst.score[neg], kind="stable")]
            p, q = (p_order[:n_pos], n_order[:2]) if strategy == "easy" else \
                (p_order[::-1][:n_pos], n_order[::-1][:2])
        p = _pad(np.asarray(p, dtype=int), pos, n_pos, inst.score)
        q = _pad(np.asarray(q, dtype=int), neg, 2, inst.score)
        return np.concatenate([forced, p, q])
    kind = strategy.split("_", 1)[1]
    if kind == "extractive_gap" and inst.density is None:
        raise SchemaError(f"strategy {strategy!r} needs a 'source' column (the document each "
                          "candidate is extracted from)")
    combos = [np.concatenate([forced, a, b]) for a in pairs(pos, n_pos) for b in pairs(neg, 2)]
    if len(combos) > CAPS[kind]:
        combos = [combos[i] for i in rng.choice(len(combos), CAPS[kind], replace=False)]
    npos = len(forced) + n_pos

    def objective(s):
        if kind == "margin":
            return inst.score[s[:npos]].mean() - inst.score[s[npos:]].mean()
        if kind == "diversity":
            return F.diversity([inst.toks[i] for i in s])
        return inst.density[s[npos:]].mean() - inst.density[s[:npos]].mean()

    return _best(combos, objective, strategy.startswith("max"))


def _diagnostics(inst: Instance, chosen: np.ndarray, mode: str, padded: int) -> dict:
    if mode == "faithfulness":
        pos_mask = np.isin(inst.role[chosen], ("positive", "reference"))
        m = float(inst.score[chosen][pos_mask].mean() - inst.score[chosen][~pos_mask].mean()) \
            if pos_mask.any() and (~pos_mask).any() else float("nan")
    else:
        m = F.margin(inst.score[chosen])
    return {"margin": m, "diversity": F.diversity([inst.toks[i] for i in chosen]),
            "likelihood": float(inst.likelihood[chosen].mean()),
            "surprise": F.surprise(inst.score[chosen], inst.model_rank[chosen]),
            "density": float(inst.density[chosen].mean()) if inst.density is not None
            else None,
            "length": float(np.mean([len(inst.toks[i]) for i in chosen])),
            "padded": padded}


def select_calibration(frame: pl.DataFrame, *, metrics: dict[str, float], mode: str = "relevance",
                       strategy: str = "max_margin", k: int = 4, reference: str = "positive",
                       seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Choose calibration candidates per instance. Returns (chosen rows, diagnostics)."""
    if mode not in ("relevance", "faithfulness"):
        raise InvalidParameterError(f"mode must be 'relevance' or 'faithfulness'; got {mode!r}")
    allowed = RELEVANCE if mode == "relevance" else FAITHFULNESS
    if strategy not in allowed:
        raise InvalidParameterError(f"{mode} strategy must be one of {', '.join(allowed)}; "
                                    f"got {strategy!r}")
    if reference not in REFERENCE_POLICIES:
        raise InvalidParameterError(f"reference must be one of {', '.join(REFERENCE_POLICIES)};"
                                    f" got {reference!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise InvalidParameterError(f"k must be an integer ≥ 2; got {k!r}")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SchemaError(f"calibration pool lacks column(s) {', '.join(missing)}; "
                          f"columns are {', '.join(frame.columns)}")
    if frame.height == 0:
        raise SchemaError("calibration pool is empty")
    frame = frame.with_columns(F.zscore_score(frame, metrics))
    rng = np.random.default_rng(seed)
    chosen_rows, diag = [], []
    for part in frame.partition_by("instance_id", maintain_order=True):
        toks = [F.tokens(t) for t in part["text"].to_list()]
        density = None
        if "source" in part.columns:
            src = F.tokens(part["source"][0])
            density = np.array([F.extractive_density(t, src) for t in toks])
        inst = Instance(ids=part["candidate_id"].to_numpy(), role=part["role"].to_numpy(),
                        score=part["score"].to_numpy(), likelihood=part["likelihood"].to_numpy(),
                        model_rank=part["model_rank"].to_numpy(), toks=toks, density=density)
        if mode == "relevance":
            chosen = np.asarray(relevance(inst, strategy, k, rng), dtype=int)
            need = k
        else:
            chosen = np.asarray(faithfulness(inst, strategy, rng, reference), dtype=int)
            need = 4
        padded = need - len(np.unique(chosen))
        chosen = chosen[np.argsort(-inst.score[chosen], kind="stable")]  # metric order
        iid = part["instance_id"][0]
        sub = part[chosen.tolist()].with_columns(
            pl.Series("rank_in_set", np.arange(len(chosen)), dtype=pl.Int64))
        chosen_rows.append(sub)
        diag.append({"instance_id": iid, "strategy": strategy, "mode": mode,
                     **_diagnostics(inst, chosen, mode, padded)})
    return pl.concat(chosen_rows, how="vertical_relaxed"), pl.DataFrame(diag)
