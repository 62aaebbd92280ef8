"""Hand-off to training jobs: a torch ``Sampler`` over a selection, and exports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch.utils.data import Sampler

from curate.errors import InvalidParameterError
from stores import Store, check_seed, files

EXPORT_FORMATS = ("parquet", "jsonl", "csv", "npy")


class SelectionSampler(Sampler[int]):
    """Yields ``row_idx`` values of a selection.

    Unweighted: each epoch is a fresh random permutation of the selected rows.
    Weighted: ``torch.multinomial`` over the weights (with or without replacement), so a
    coreset's weights act as sampling probabilities; the expected number of draws of row i
    is ``num_samples * w_i / Σw``.
    """

    def __init__(self, indices: np.ndarray, weights: np.ndarray | None, *,
                 num_samples: int | None = None, replacement: bool = True,
                 seed: int | None = None):
        self.indices = torch.tensor(np.asarray(indices, dtype=np.int64))
        self.weights = None if weights is None else torch.tensor(
            np.asarray(weights, dtype=np.float64))
        if self.weights is not None and (self.weights < 0).any():
            raise InvalidParameterError("sampler weights must be ≥ 0")
        self.num_samples = len(self.indices) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise InvalidParameterError(f"num_samples must be ≥ 1; got {self.num_samples}")
        self.replacement = replacement
        self.generator = torch.Generator()
        self.generator.manual_seed(0 if seed is None else check_seed(seed, "sampler seed"))

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        if self.weights is None:
            n = len(self.indices)
            reps = -(-self.num_samples // n)
            order = torch.cat([torch.randperm(n, generator=self.generator) for _ in range(reps)])
            picks = order[: self.num_samples]
        else:
            picks = torch.multinomial(self.weights, self.num_samples, self.replacement,
                                      generator=self.generator)
        yield from self.indices[picks].tolist()


def export_selection(store: Store, selection_id: str, fmt: str, out: str | Path, *,
                     overwrite: bool = False) -> Path:
    """Write a selection's rows (joined with their samples) as parquet/jsonl/csv, or its
    ``row_idx`` as an int64 ``.npy``. The write is atomic; ``out`` may not lie inside a store
    nor replace an existing file unless ``overwrite``."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidParameterError(f"export format must be one of {', '.join(EXPORT_FORMATS)}; "
                                    f"got {fmt!r}")
    out = files.check_output_path(out, overwrite=overwrite, what="the export")
    table, prov = store.read_selection(selection_id)
    if fmt == "npy":
        return files.write_npy(out, table["row_idx"].to_numpy().astype(np.int64))
    samples = store.dataset(prov["dataset"]).drop("sample_id")
    joined = (table.lazy().join(samples, on="row_idx", how="left").sort("rank").collect())
    if fmt == "csv":  # CSV has no nested types: join list items with "|"
        joined = joined.with_columns(
            [pl.col(c).cast(pl.List(pl.String)).list.join("|")
             for c, t in joined.schema.items() if isinstance(t, (pl.List, pl.Array))])
    return files.write_frame(out, joined, fmt)
