"""``Selection``: the immutable result of a selector, and its provenance.

A selection is an ordered list of candidate rows (pick order: any prefix is a valid smaller
selection for ranking methods), with optional per-row weights (≥ 0, e.g. coreset weights) and
scores (the method's ranking statistic). It round-trips through
``selections/<id>/selection.parquet`` (``row_idx, sample_id, rank, weight, score``) and
``selection.json`` (provenance), and hands off to training as a torch ``Sampler``,
a ``Subset``, or plain indices for ``datasets.Dataset.select``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Provenance:
    """Everything needed to reproduce a selection (JSON-safe)."""

    method: str
    params: dict[str, Any]
    budget: float | int            # as asked
    n_selected: int                # as resolved
    n_candidates: int
    seed: int
    dataset: str = "<memory>"
    dataset_fingerprint: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)   # embedding / signal used
    info: dict[str, Any] = field(default_factory=dict)     # method diagnostics
    library_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Provenance:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in obj.items() if k in known})


@dataclass(frozen=True, eq=False)
class Selection:
    """Selected rows of a dataset, in pick order.

    Attributes:
        indices: (k,) int64 ``row_idx`` values, unique, in pick order.
        weights: (k,) float64 ≥ 0, or None when the method gives no weights.
        scores: (k,) float64 ranking statistic, or None.
        sample_ids: (k,) str stable ids, or None when selecting from bare arrays.
        provenance: how it was made.
        id / path: set once the selection is saved in a store.
    """

    indices: np.ndarray
    provenance: Provenance
    weights: np.ndarray | None = None
    scores: np.ndarray | None = None
    sample_ids: np.ndarray | None = None
    id: str | None = None
    path: Path | None = None
    run: dict[str, Any] = field(default_factory=dict)  # created_at, wall_time_s

    def __post_init__(self) -> None:
        for name in ("indices", "weights", "scores", "sample_ids"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.array(arr, copy=True)
                arr.setflags(write=False)
                object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.indices)

    def with_location(self, selection_id: str, path: Path, run: dict[str, Any]) -> Selection:
        return replace(self, id=selection_id, path=path, run=run)

    # -- tables ----------------------------------------------------------------------------
    def to_frame(self) -> pl.DataFrame:
        """``row_idx, sample_id, rank, weight, score`` (weight/score null when absent)."""
        k = len(self.indices)
        ids = (self.sample_ids.astype(str) if self.sample_ids is not None
               else self.indices.astype(str))
        return pl.DataFrame({
            "row_idx": pl.Series(self.indices, dtype=pl.Int64),
            "sample_id": pl.Series(ids, dtype=pl.String),
            "rank": pl.Series(np.arange(k), dtype=pl.Int64),
            "weight": pl.Series(self.weights, dtype=pl.Float64) if self.weights is not None
            else pl.repeat(None, k, dtype=pl.Float64, eager=True),
            "score": pl.Series(self.scores, dtype=pl.Float64) if self.scores is not None
            else pl.repeat(None, k, dtype=pl.Float64, eager=True),
        })

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, provenance: dict[str, Any],
                   selection_id: str | None = None, path: Path | None = None) -> Selection:
        frame = frame.sort("rank")
        weight = frame["weight"]
        score = frame["score"]
        prov = {k: v for k, v in provenance.items() if k != "run"}
        return cls(
            indices=frame["row_idx"].to_numpy().astype(np.int64),
            weights=None if weight.null_count() == len(weight) else weight.to_numpy(),
            scores=None if score.null_count() == len(score) else score.to_numpy(),
            sample_ids=frame["sample_id"].to_numpy().astype(str),
            provenance=Provenance.from_json(prov),
            id=selection_id, path=path, run=provenance.get("run", {}),
        )

    # -- training hand-off -----------------------------------------------------------------
    def hf_indices(self) -> list[int]:
        """Indices for ``datasets.Dataset.select`` (rows in ``row_idx`` order of the source)."""
        return [int(i) for i in self.indices]

    def to_sampler(self, *, num_samples: int | None = None, replacement: bool = True,
                   seed: int | None = None):
        """A torch ``Sampler`` over the selected ``row_idx`` of the full dataset.

        With weights: draws ``num_samples`` (default k) rows with probability ∝ weight
        (``replacement`` as given). Without weights: a random permutation of the selection.
        ``seed`` fixes the order through a private ``torch.Generator``. Checked here:
        ``seed`` in [0, 2**63), ``num_samples`` an integer ≥ 1 whose draw fits in memory.
        """
        from curate.checks import check_int, check_memory, check_seed
        from curate.training import SelectionSampler

        if seed is not None:
            seed = check_seed(seed)
        if num_samples is not None:
            check_int("", "num_samples", num_samples)
            if not replacement and self.weights is not None and num_samples > len(self):
                from curate.errors import InvalidParameterError

                raise InvalidParameterError(f"num_samples must be ≤ {len(self)} (the "
                                            "selection's size) when drawing weighted rows "
                                            f"without replacement; got {num_samples}")
            # each pass draws all num_samples indices at once (int64, plus torch's buffers)
            check_memory(f"to_sampler: num_samples={num_samples}", 24.0 * num_samples,
                         "draw fewer samples per epoch")
        return SelectionSampler(self.indices, self.weights, num_samples=num_samples,
                                replacement=replacement, seed=seed)

    def to_subset(self, dataset):
        """``torch.utils.data.Subset`` of a map-style dataset indexed by ``row_idx``."""
        from torch.utils.data import Subset

        return Subset(dataset, self.hf_indices())
