"""Per-candidate features and per-set diagnostics for calibration-set selection
(Liu et al., ACL 2023, "What are the desired characteristics of calibration sets?").

- score: the mean of the metric columns, each z-normalised over the *whole dataset*
  (z = (x − mean) / std; a constant metric contributes 0), with optional weights.
- margin(S): mean gap between adjacent candidates of S sorted by score
  (= (max − min) / (|S| − 1)); faithfulness sets use mean(score⁺) − mean(score⁻).
- diversity(S): 1 − mean pairwise overlap, overlap = F1 of the unigram+bigram multisets
  (a self-ROUGE; the paper uses self-BLEU or embedding distance — a simplification).
- surprise(S): (1 − ρ) / 2 with ρ = Spearman(score, −model_rank) over S: 0 when the model
  ranks S exactly as the metric does, 1 when exactly reversed.
- extractive density (Grusky et al., 2018): Σ|f|² / |candidate| over the greedy extractive
  fragments f shared with the instance's ``source`` text (needs a ``source`` column).
- length: tokens (whitespace split).
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from itertools import combinations

import numpy as np
import polars as pl

from curate.errors import InvalidParameterError, SchemaError


def tokens(text: str) -> list[str]:
    return str(text).lower().split()


def check_weights(metrics: dict[str, float]) -> None:
    """Metric weights are finite numbers (not bools or strings) with a positive sum
    (``InvalidParameterError``: they are an argument, not part of the pool)."""
    if not isinstance(metrics, dict) or not metrics:
        raise InvalidParameterError(f"metrics must be a non-empty mapping {{column: weight}}; "
                                    f"got {metrics!r}")
    for m, w in metrics.items():
        if not isinstance(m, str):
            raise InvalidParameterError(f"metric names must be column names (strings); "
                                        f"got {m!r}")
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real) \
                or not math.isfinite(float(w)):
            raise InvalidParameterError(f"metric weight for {m!r} must be a finite number; "
                                        f"got {w!r}")
    total = float(sum(metrics.values()))
    if not (total > 0 and math.isfinite(total)):
        raise InvalidParameterError(f"metric weights must sum to a positive finite number; "
                                    f"got {total:g}")


def zscore_score(frame: pl.DataFrame, metrics: dict[str, float]) -> pl.Series:
    """Weighted mean of dataset-level z-scores of the metric columns (each numeric, finite)."""
    check_weights(metrics)
    missing = [m for m in metrics if m not in frame.columns]
    if missing:
        raise SchemaError(f"metric column(s) {', '.join(missing)} not found; columns are "
                          f"{', '.join(frame.columns)}")
    total = float(sum(metrics.values()))
    parts = []
    for m, w in metrics.items():
        if not (frame[m].dtype.is_numeric() or frame[m].dtype == pl.Boolean):
            raise SchemaError(f"metric column {m!r} must be numeric; got {frame[m].dtype}")
        col = frame[m].cast(pl.Float64)
        if col.null_count() or (~col.is_finite()).any():
            raise SchemaError(f"metric column {m!r} has null, NaN or infinite values")
        std = col.std(ddof=0) or 0.0
        z = (col - col.mean()) / std if std > 0 else col * 0.0
        parts.append(z * (w / total))
    return sum(parts[1:], parts[0]).alias("score")


def _ngrams(tok: list[str]) -> Counter:
    return Counter(tok) + Counter(zip(tok, tok[1:], strict=False))


def overlap(a: list[str], b: list[str]) -> float:
    ca, cb = _ngrams(a), _ngrams(b)
    common = sum((ca & cb).values())
    if common == 0:
        return 0.0
    p, r = common / max(1, sum(ca.values())), common / max(1, sum(cb.values()))
    return 2 * p * r / (p + r)


def diversity(toks: list[list[str]]) -> float:
    pairs = list(combinations(range(len(toks)), 2))
    if not pairs:
        return 0.0
    return 1.0 - float(np.mean([overlap(toks[i], toks[j]) for i, j in pairs]))


def margin(scores: np.ndarray) -> float:
    s = np.sort(np.asarray(scores, dtype=float))
    return float((s[-1] - s[0]) / (len(s) - 1)) if len(s) > 1 else 0.0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(float)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def surprise(scores: np.ndarray, model_rank: np.ndarray) -> float:
    return (1.0 - spearman(np.asarray(scores), -np.asarray(model_rank, dtype=float))) / 2.0


def extractive_density(candidate: list[str], source: list[str]) -> float:
    """Greedy fragment matching of Grusky et al. (2018): Σ|f|² / |candidate|."""
    if not candidate:
        return 0.0
    positions: dict[str, list[int]] = {}
    for j, t in enumerate(source):
        positions.setdefault(t, []).append(j)
    i, total = 0, 0
    while i < len(candidate):
        best = 0
        for j in positions.get(candidate[i], []):
            n = 0
            while i + n < len(candidate) and j + n < len(source) and \
                    candidate[i + n] == source[j + n]:
                n += 1
            best = max(best, n)
        if best:
            total += best * best
            i += best
        else:
            i += 1
    return total / len(candidate)
