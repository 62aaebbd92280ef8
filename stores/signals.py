"""Per-sample training signals (loss trajectories) on disk.

A signal folder ``datasets/<name>/signals/<signal>/`` holds::

    train_rows.npy    (N_train,)     int64    row_idx of the training rows
    train_losses.npy  (E, N_train)   float32  per-sample loss after each checkpoint
    val_rows.npy      (N_val,)       int64    row_idx of the validation rows
    val_losses.npy    (E, N_val)     float32
    train_correct.npy (E, N_train)   bool     optional: prediction correct at each checkpoint
    train_probs.npy   (N_train, C)   float32  optional: class probabilities at the last one
    signal.json                               checkpoints, model, seed, split, classes, ...

Rows of each array are aligned with the ``*_rows`` array, not with the dataset. ``read``
memory-maps every array (read-only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.checks import count_duplicates
from core.errors import SchemaError
from stores import files
from stores.ingest import check_finite

_ARRAYS = ("train_rows", "train_losses", "val_rows", "val_losses", "train_correct",
           "train_probs")


@dataclass(frozen=True)
class Signals:
    """Loss trajectories of a proxy (or the user's own) model over E checkpoints."""

    train_rows: np.ndarray
    train_losses: np.ndarray
    val_rows: np.ndarray
    val_losses: np.ndarray
    train_correct: np.ndarray | None = None
    train_probs: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_checkpoints(self) -> int:
        return int(self.train_losses.shape[0])

    def validate(self, n_rows: int | None = None) -> None:
        """Raise SchemaError unless shapes agree, rows are unique/in range and losses finite."""
        tr, va = self.train_losses, self.val_losses
        if tr.ndim != 2 or va.ndim != 2:
            raise SchemaError("signals: train_losses and val_losses must be 2-D "
                              f"(checkpoints, rows); got shapes {tr.shape} and {va.shape}")
        if tr.shape[0] != va.shape[0]:
            raise SchemaError(f"signals: train has {tr.shape[0]} checkpoints but val has "
                              f"{va.shape[0]}")
        if tr.shape[1] != len(self.train_rows) or va.shape[1] != len(self.val_rows):
            raise SchemaError("signals: losses have "
                              f"{tr.shape[1]}/{va.shape[1]} columns but "
                              f"{len(self.train_rows)}/{len(self.val_rows)} train/val rows")
        rows = np.concatenate([self.train_rows, self.val_rows])
        if count_duplicates(rows):
            raise SchemaError("signals: a row appears twice among train and val rows")
        if n_rows is not None and len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
            raise SchemaError(f"signals: row indices must be in [0, {n_rows}); "
                              f"got [{rows.min()}, {rows.max()}]")
        check_finite(tr.T, "signals train_losses")
        check_finite(va.T, "signals val_losses")
        if self.train_correct is not None and self.train_correct.shape != tr.shape:
            raise SchemaError(f"signals: train_correct shape {self.train_correct.shape} "
                              f"!= train_losses shape {tr.shape}")
        if self.train_probs is not None and len(self.train_probs) != tr.shape[1]:
            raise SchemaError("signals: train_probs must have one row per train row")

    def write(self, folder: Path) -> None:
        """Write every array and the sidecar into ``folder`` (already a temp folder)."""
        arrays = {
            "train_rows": self.train_rows.astype(np.int64),
            "train_losses": self.train_losses.astype(np.float32),
            "val_rows": self.val_rows.astype(np.int64),
            "val_losses": self.val_losses.astype(np.float32),
            "train_correct": None if self.train_correct is None
            else self.train_correct.astype(bool),
            "train_probs": None if self.train_probs is None
            else self.train_probs.astype(np.float32),
        }
        for name, arr in arrays.items():
            if arr is not None:
                files.write_npy(folder / f"{name}.npy", arr)
        files.write_json(folder / "signal.json", self.meta)

    @classmethod
    def read(cls, folder: Path) -> Signals:
        loaded = {}
        for name in _ARRAYS:
            p = folder / f"{name}.npy"
            # memory-mapped: a (E, N) loss matrix costs no RAM until a method reads it
            loaded[name] = np.load(p, mmap_mode="r", allow_pickle=False) if p.exists() \
                else None
        return cls(meta=files.read_json(folder / "signal.json"), **loaded)
