"""``LossRecorder``: collect per-sample loss trajectories from your own training loop.

    rec = LossRecorder(train_rows=train_idx, val_rows=val_idx)
    for epoch in range(E):
        train_one_epoch(...)
        model.eval()
        for idx, x, y in eval_loader:                 # idx = row_idx of each sample
            rec.record(idx, loss_fn(model(x), y))     # per-sample losses (reduction="none")
        rec.checkpoint()                              # every row must have been seen once
    rec.save(store, "mydata", name="my-model")        # or rec.to_signals()

Rows are dataset ``row_idx`` values; train and validation rows may arrive in any order and
mixed. ``ingest_signals`` loads trajectories computed elsewhere from an ``.npz`` file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from curate.checks import count_duplicates
from curate.errors import InvalidParameterError, SchemaError
from stores import Signals, Store
from stores.store import now_iso


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class LossRecorder:
    """Accumulates one loss per row per checkpoint; see the module docstring."""

    def __init__(self, train_rows: Any, val_rows: Any, meta: dict[str, Any] | None = None):
        self.train_rows = _as_numpy(train_rows).astype(np.int64)
        self.val_rows = _as_numpy(val_rows).astype(np.int64)
        rows = np.concatenate([self.train_rows, self.val_rows])
        if count_duplicates(rows):
            raise InvalidParameterError("LossRecorder: train and val rows must be distinct")
        # row → position by binary search over the sorted rows (no per-row dict)
        self._order = np.argsort(rows, kind="stable")
        self._sorted = rows[self._order]
        self._current = np.full(len(rows), np.nan, dtype=np.float32)
        self._correct = np.zeros(len(rows), dtype=bool)
        self._has_correct = False
        self._done: list[np.ndarray] = []
        self._done_correct: list[np.ndarray] = []
        self.meta = dict(meta or {})

    def record(self, rows: Any, losses: Any, correct: Any = None) -> None:
        rows = _as_numpy(rows).astype(np.int64).ravel()
        losses = _as_numpy(losses).astype(np.float32).ravel()
        if len(rows) != len(losses):
            raise InvalidParameterError(f"LossRecorder.record: {len(rows)} rows but "
                                        f"{len(losses)} losses")
        at = np.minimum(np.searchsorted(self._sorted, rows), max(len(self._sorted) - 1, 0))
        unknown = (np.flatnonzero(self._sorted[at] != rows) if len(self._sorted)
                   else np.arange(len(rows)))
        if len(unknown):
            raise InvalidParameterError(f"LossRecorder.record: row {int(rows[unknown[0]])} is "
                                        "neither a train nor a val row")
        pos = self._order[at]
        self._current[pos] = losses
        if correct is not None:
            self._has_correct = True
            self._correct[pos] = _as_numpy(correct).astype(bool).ravel()

    def checkpoint(self) -> None:
        """Close the current checkpoint; every row must have a finite loss."""
        missing = np.flatnonzero(~np.isfinite(self._current))
        if len(missing):
            raise InvalidParameterError(f"LossRecorder.checkpoint: {len(missing)} row(s) have no "
                                        "finite loss recorded in this checkpoint")
        self._done.append(self._current.copy())
        self._done_correct.append(self._correct.copy())
        self._current[:] = np.nan

    def to_signals(self) -> Signals:
        if not self._done:
            raise InvalidParameterError("LossRecorder: no checkpoint recorded yet")
        L = np.stack(self._done)
        n_tr = len(self.train_rows)
        C = np.stack(self._done_correct)[:, :n_tr] if self._has_correct else None
        meta = {"checkpoints": list(range(1, len(L) + 1)), "source": "LossRecorder",
                "created_at": now_iso(), **self.meta}
        return Signals(train_rows=self.train_rows, train_losses=L[:, :n_tr],
                       val_rows=self.val_rows, val_losses=L[:, n_tr:], train_correct=C,
                       meta=meta)

    def save(self, store: Store, dataset: str, name: str = "recorded") -> Signals:
        signals = self.to_signals()
        signals.meta["name"] = name
        store.write_signals(dataset, name, signals)
        return signals


def ingest_signals(store: Store, dataset: str | None, path: str | Path,
                   name: str = "ingested") -> Signals:
    """Load trajectories from an ``.npz`` with ``train_rows, train_losses, val_rows,
    val_losses`` (optional ``train_correct``, ``train_probs``) and store them."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise SchemaError(f"cannot read {path} as .npz: {exc}") from exc
    required = ("train_rows", "train_losses", "val_rows", "val_losses")
    missing = [k for k in required if k not in arrays]
    if missing:
        raise SchemaError(f"{path} lacks array(s) {', '.join(missing)}; "
                          f"it has {', '.join(arrays) or 'none'}")
    signals = Signals(
        train_rows=arrays["train_rows"], train_losses=arrays["train_losses"],
        val_rows=arrays["val_rows"], val_losses=arrays["val_losses"],
        train_correct=arrays.get("train_correct"), train_probs=arrays.get("train_probs"),
        meta={"name": name, "source": str(path.absolute()), "created_at": now_iso(),
              "checkpoints": list(range(1, arrays["train_losses"].shape[0] + 1))
              if arrays["train_losses"].ndim == 2 else []})
    store.write_signals(store.resolve_dataset(dataset), name, signals)
    return signals
