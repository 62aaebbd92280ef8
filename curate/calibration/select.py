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

Each strategy is registered in ``curate.calibration.strategies.STRATEGIES`` (one registry,
one call shape, a shared contract test over all of them: ``tests/contract``).
Subset searches enumerate every subset when there are at most the cap, else draw the cap at
random (seeded). An instance with fewer candidates than needed is padded by duplication, as
the paper does; ``padded`` in the diagnostics says how many slots are duplicates.
Output: the chosen candidates (metric order within each instance) and one diagnostics row
per instance (margin, diversity, mean likelihood, surprise, extractive density, length).

Checked before any work (``SchemaError`` for the pool, ``InvalidParameterError`` for the
arguments, one line each): the required columns, no nulls in them, ``role`` one of
reference/positive/negative/mixed, ``candidate_id`` unique within each instance,
``likelihood``/``model_rank`` and every metric column numeric and finite, ``text`` (and
``source``) strings; ``metrics`` a non-empty {column: finite weight} with a positive sum;
``seed`` in [0, 2**63); in faithfulness mode, every instance has a positive or negative
candidate (else its set would be empty); ``k`` an integer in [2, max(4, the largest
instance's candidate count)] — a larger k would only pad every instance with duplicates,
and the padding is allocated (the paper's set size, 4, is always allowed).

Faithfulness subset searches draw their capped sample by rank, without listing every
pair-of-positives × pair-of-negatives combination (O(|pos|²·|neg|²)); the draw equals
indexing that list, so results are unchanged.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.calibration import features as F
from curate.calibration.strategies import (
    MODES,
    REFERENCE_POLICIES,
    SET_SIZE,
    Instance,
    choose,
    get_strategy,
    names,
)
from curate.checks import check_choice, check_seed, is_int
from curate.errors import InvalidParameterError, SchemaError

RELEVANCE = names("relevance")        # the registry is the one source of truth
FAITHFULNESS = names("faithfulness")
REQUIRED = ("instance_id", "candidate_id", "text", "role", "likelihood", "model_rank")
ROLES = ("reference", "positive", "negative", "mixed")


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


def check_pool(frame: pl.DataFrame, metrics: dict[str, float]) -> None:
    """Validate a candidate pool and the metric weights (see the module docstring)."""
    if not isinstance(frame, pl.DataFrame):
        raise SchemaError(f"calibration pool must be a Polars DataFrame; got "
                          f"{type(frame).__name__}")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SchemaError(f"calibration pool lacks column(s) {', '.join(missing)}; "
                          f"columns are {', '.join(frame.columns)}")
    if frame.height == 0:
        raise SchemaError("calibration pool is empty")
    for col in REQUIRED:
        n_null = frame[col].null_count()
        if n_null:
            raise SchemaError(f"calibration pool: column {col!r} has {n_null} null value(s)")
    for col in ("text", "role", "source"):
        if col in frame.columns and frame[col].dtype != pl.String:
            raise SchemaError(f"calibration pool: column {col!r} must hold strings; got "
                              f"{frame[col].dtype}")
    bad = frame.filter(~pl.col("role").is_in(list(ROLES)))
    if bad.height:
        raise SchemaError(f"calibration pool: role must be one of {', '.join(ROLES)}; got "
                          f"{bad['role'][0]!r} ({bad.height} row(s))")
    dup = frame.group_by("instance_id", "candidate_id").len().filter(pl.col("len") > 1)
    if dup.height:
        raise SchemaError(f"calibration pool: candidate_id must be unique within an instance; "
                          f"{dup['candidate_id'][0]!r} appears {dup['len'][0]} times in "
                          f"instance {dup['instance_id'][0]!r} ({dup.height} duplicate(s))")
    for col in ("likelihood", "model_rank"):
        check_numeric_column(frame, col, "column")
    F.check_weights(metrics)
    for m in metrics:
        if m not in frame.columns:
            break  # zscore_score names every missing column
        check_numeric_column(frame, m, "metric column")


def check_numeric_column(frame: pl.DataFrame, col: str, what: str) -> None:
    """``frame[col]`` is numeric (or boolean) with no null, NaN or infinite value."""
    series = frame[col]
    if not (series.dtype.is_numeric() or series.dtype == pl.Boolean):
        raise SchemaError(f"calibration pool: {what} {col!r} must be numeric; got "
                          f"{series.dtype}")
    values = series.cast(pl.Float64)
    n_bad = values.null_count() + int((~values.drop_nulls().is_finite()).sum())
    if n_bad:
        raise SchemaError(f"calibration pool: {what} {col!r} has {n_bad} null, NaN or "
                          "infinite value(s)")


def select_calibration(frame: pl.DataFrame, *, metrics: dict[str, float], mode: str = "relevance",
                       strategy: str = "max_margin", k: int = 4, reference: str = "positive",
                       seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Choose calibration candidates per instance. Returns (chosen rows, diagnostics).
    Everything is validated first (see the module docstring)."""
    check_choice("", "mode", mode, MODES)
    if not isinstance(strategy, str):
        raise InvalidParameterError(f"{mode} strategy must be a name; got {strategy!r}")
    chosen_strategy = get_strategy(mode, strategy)
    check_choice("", "reference", reference, REFERENCE_POLICIES)
    if not is_int(k) or k < 2:
        raise InvalidParameterError(f"k must be an integer ≥ 2; got {k!r}")
    seed = check_seed(seed)
    check_pool(frame, metrics)
    if chosen_strategy.needs_source and "source" not in frame.columns:
        raise SchemaError(f"strategy {strategy!r} needs a 'source' column (the document each "
                          "candidate is extracted from)")
    if mode == "relevance":
        largest = int(frame["instance_id"].value_counts()["count"].max())
        if k > max(SET_SIZE, largest):
            raise InvalidParameterError(f"k must be an integer in [2, {max(SET_SIZE, largest)}] "
                                        f"(the largest instance has {largest} candidates; a "
                                        f"larger k only pads with duplicates); got {k}")
    if mode == "faithfulness":
        usable = ["positive", "negative"] + ([] if reference == "remove" else ["reference"])
        counts = frame.group_by("instance_id", maintain_order=True).agg(
            pl.col("role").is_in(usable).sum().alias("usable"))
        empty = counts.filter(pl.col("usable") == 0)
        if empty.height:
            raise SchemaError(f"faithfulness mode needs positive or negative candidates; "
                              f"instance {empty['instance_id'][0]!r} has none ("
                              f"{empty.height} such instance(s); roles used: "
                              f"{', '.join(usable)})")
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
        chosen = choose(mode, strategy, inst, k, rng, reference)
        need = k if mode == "relevance" else SET_SIZE
        padded = need - len(np.unique(chosen))
        chosen = chosen[np.argsort(-inst.score[chosen], kind="stable")]  # metric order
        iid = part["instance_id"][0]
        sub = part[chosen.tolist()].with_columns(
            pl.Series("rank_in_set", np.arange(len(chosen)), dtype=pl.Int64))
        chosen_rows.append(sub)
        diag.append({"instance_id": iid, "strategy": strategy, "mode": mode,
                     **_diagnostics(inst, chosen, mode, padded)})
    return pl.concat(chosen_rows, how="vertical_relaxed"), pl.DataFrame(diag)
