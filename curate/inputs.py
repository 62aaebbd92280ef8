"""``SelectionInput``: what a selector sees — the candidate rows and their data.

Candidates are the dataset's ``split == "train"`` rows: validation rows (used by CLD's
class-mean trajectory) and test rows (used by ``curate evaluate``) are never selected, so
every method draws from the same pool and a budget means the same thing for all of them.

Shapes (n candidates, d dims, E checkpoints, m validation rows, C classes):
    row_idx (n,) int64 · labels (n,) int64 codes into ``classes`` · embeddings (n, d) float32
    signals.train_losses (E, n) · signals.val_losses (E, m) · signals.val_labels (m,)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.checks import count_duplicates
from curate.errors import InvalidParameterError, MissingInputError, SchemaError
from stores import Store


class RowSubset:
    """Rows ``rows`` of a (N, d) matrix (a memory map), read only when indexed.

    What a selector that works part by part (``Selector.lazy_embeddings``) gets instead of
    a gathered (n, d) copy: ``subset[idx]`` reads just those rows, ``len``/``shape``/
    ``dtype``/``ndim`` answer without reading, and ``np.asarray(subset)`` gathers all of them
    (the copy the eager path makes). Pickles as the memory map's path and the rows, so an
    executor task opens the file again instead of receiving its bytes.
    """

    def __init__(self, base: np.ndarray, rows: np.ndarray):
        from stores.executor import unship

        self.base = unship(base)
        self.rows = np.asarray(rows, dtype=np.int64)

    def __reduce__(self):
        from stores.executor import ship

        return (RowSubset, (ship(self.base), self.rows))

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), int(self.base.shape[1]))

    ndim = 2

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self.base[self.rows[idx]], dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        for lo in range(0, len(self.rows), 1 << 18):
            out[lo:lo + (1 << 18)] = self.base[self.rows[lo:lo + (1 << 18)]]
        return out if dtype is None else out.astype(dtype, copy=False)


def all_finite(array: Any, rows: int = 1 << 18) -> bool:
    """No NaN or inf, read ``rows`` rows at a time (O(rows·d) memory on a memory map)."""
    n = len(array)
    if n == 0 or np.ndim(array) < 2:
        return bool(np.isfinite(np.asarray(array)).all())
    return all(bool(np.isfinite(array[lo:lo + rows]).all()) for lo in range(0, n, rows))


def take(a: Any, positions: np.ndarray) -> Any:
    """``a[positions]`` for a per-row array or a Polars Series (gathered in Arrow, kept a
    Series); None stays None."""
    if a is None:
        return None
    if isinstance(a, pl.Series):
        return a.gather(positions)
    return np.asarray(a)[positions]


def ids_array(ids: np.ndarray | pl.Series) -> np.ndarray:
    """Sample ids as a NumPy ``str`` array — called on the k selected ids only."""
    return (ids.cast(pl.String).to_numpy() if isinstance(ids, pl.Series)
            else np.asarray(ids)).astype(str)


@dataclass(frozen=True)
class CandidateSignals:
    """Loss trajectories aligned with the candidates (columns of ``train_losses``)."""

    train_losses: np.ndarray                  # (E, n)
    val_losses: np.ndarray                    # (E, m)
    val_labels: np.ndarray | None = None      # (m,) codes into SelectionInput.classes
    train_correct: np.ndarray | None = None   # (E, n) bool
    train_probs: np.ndarray | None = None     # (n, C)
    name: str = "signals"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_checkpoints(self) -> int:
        return int(self.train_losses.shape[0])


@dataclass(frozen=True)
class SelectionInput:
    """The candidate pool handed to a selector (bare arrays work: no store needed)."""

    row_idx: np.ndarray
    labels: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    embeddings: np.ndarray | None = None
    signals: CandidateSignals | None = None
    groups: np.ndarray | None = None          # (n,) int64 group codes (sources, identities)
    target: np.ndarray | None = None          # (m, d) embeddings of a target domain
    model: Any = None                         # a trained model (e.g. an INSET set function)
    #: (n,) str ids: a NumPy array, or (from a store) the Arrow-backed Polars column, so no
    #: Python string is made per candidate; ``take`` gathers either
    sample_ids: np.ndarray | pl.Series | None = None
    #: (n,) int64: equal iff the rows' normalised texts are equal (``text_keys``)
    text_keys: np.ndarray | None = None
    dataset: str = "<memory>"
    fingerprint: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.row_idx)

    @classmethod
    def from_arrays(cls, *, labels: Any = None, embeddings: Any = None,
                    signals: CandidateSignals | None = None, n: int | None = None,
                    row_idx: Any = None) -> SelectionInput:
        """Build an input from in-memory arrays; string labels are coded in sorted order.

        Checked: every array given has one row per candidate (``row_idx`` and ``labels``
        1-D, ``embeddings`` 2-D and numeric, ``signals.train_losses`` (E, n)), ``n`` agrees
        with them, ``row_idx`` holds unique integers. A mismatch raises ``SchemaError``
        naming both lengths (no array is silently cut or broadcast).
        """
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                              or n < 0):
            raise InvalidParameterError(f"from_arrays: n must be an integer ≥ 0; got {n!r}")
        arrays: dict[str, np.ndarray] = {}
        if row_idx is not None:
            rows = np.asarray(row_idx)
            if rows.ndim != 1 or not (np.issubdtype(rows.dtype, np.integer) or len(rows) == 0):
                raise SchemaError(f"from_arrays: row_idx must be a 1-D array of integers; got "
                                  f"shape {rows.shape} of {rows.dtype}")
            if dup := count_duplicates(rows):
                raise SchemaError("from_arrays: row_idx must hold unique values; got "
                                  f"{dup} duplicate(s)")
            arrays["row_idx"] = rows
        if labels is not None:
            lab = np.asarray(labels)
            if lab.ndim != 1:
                raise SchemaError(f"from_arrays: labels must be 1-D (one per candidate); got "
                                  f"shape {lab.shape}")
            arrays["labels"] = lab
        if embeddings is not None:
            try:
                emb = np.asarray(embeddings, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise SchemaError(f"from_arrays: embeddings must be a numeric (n, d) array: "
                                  f"{exc}") from None
            if emb.ndim != 2:
                raise SchemaError(f"from_arrays: embeddings must be 2-D (n, d); got shape "
                                  f"{emb.shape}")
            arrays["embeddings"] = emb
        if signals is not None:
            losses = np.asarray(signals.train_losses)
            if losses.ndim != 2:
                raise SchemaError(f"from_arrays: signals.train_losses must be 2-D (E, n); got "
                                  f"shape {losses.shape}")
            arrays["signals.train_losses (columns)"] = losses.T
        lengths = {name: len(a) for name, a in arrays.items()}
        if n is not None:
            lengths = {"n": int(n), **lengths}
        if not lengths:
            raise MissingInputError("give at least one of row_idx, labels, embeddings, signals")
        if len(set(lengths.values())) > 1:
            parts = ", ".join(f"{name} has {m}" for name, m in lengths.items())
            raise SchemaError(f"from_arrays: every array must have one row per candidate; "
                              f"got {parts}")
        n = next(iter(lengths.values()))
        codes, classes = (None, None) if labels is None else encode_labels(arrays["labels"])
        rows = (np.arange(n, dtype=np.int64) if row_idx is None
                else arrays["row_idx"].astype(np.int64))
        return cls(row_idx=rows, labels=codes, classes=classes,
                   embeddings=arrays.get("embeddings"), signals=signals)


def positions(haystack: np.ndarray, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of each needle in ``haystack``, the needles not found), by one sort and a
    binary search: O((n + m) log n), no per-row Python."""
    order = np.argsort(haystack, kind="stable")
    ranked = haystack[order]
    at = np.searchsorted(ranked, needles)
    found = at < len(ranked)
    found[found] = ranked[at[found]] == needles[found]
    return order[np.minimum(at, max(len(ranked) - 1, 0))], needles[~found]


def _array_fingerprint(*arrays: np.ndarray) -> str:
    """Content hash of arrays: identical trajectories give identical selection ids."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a))  # the buffer itself: no copy of a memory map
    return h.hexdigest()[:16]


def encode_labels(labels: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes (sorted class order) and the class names, vectorised (Polars): labels
    are compared as strings, so ``1`` and ``"1"`` are one class."""
    series = labels if isinstance(labels, pl.Series) else pl.Series(np.asarray(labels))
    as_str = series.cast(pl.String)
    codes = (as_str.rank("dense") - 1).to_numpy().astype(np.int64)
    classes = as_str.unique().sort().to_list()
    return codes, tuple(classes)


@dataclass(frozen=True)
class LabelledSplits:
    """Label codes for every row of a dataset and the row_idx of each split."""

    labels: np.ndarray              # (N,) int64 codes into ``classes``
    classes: tuple[str, ...]
    rows: dict[str, np.ndarray]     # "train" / "val" / "test" → row_idx

    def need(self, split: str, dataset: str, why: str, flag: str) -> np.ndarray:
        if len(self.rows[split]) == 0:
            raise MissingInputError(f"dataset {dataset!r} has no {split!r} rows {why}; "
                                    f"ingest with {flag} > 0")
        return self.rows[split]


def labelled_splits(store: Store, dataset: str | None, purpose: str) -> LabelledSplits:
    """Labels and split rows of a stored dataset; ``purpose`` names who needs the labels."""
    info = store.dataset_info(dataset)
    if not info.label_column:
        raise MissingInputError(f"{purpose} needs labels: dataset {info.name!r} has no label "
                                "column (ingest with --label-column)")
    samples = store.samples(info.name, ["row_idx", "split", info.label_column])
    codes, classes = encode_labels(samples[info.label_column])
    rows = {k: samples.filter(pl.col("split") == k)["row_idx"].to_numpy()
            for k in ("train", "val", "test")}
    return LabelledSplits(labels=codes, classes=classes, rows=rows)


def text_keys(texts: pl.Series) -> np.ndarray:
    """(n,) int64 codes, equal iff the normalised texts are equal: Unicode NFKC, lower
    case, every run of white space one space, trimmed. A null or empty text gets −1: it
    says nothing, so it is nobody's duplicate. Vectorised (Polars string kernels and a
    dense rank), exact (no hashing)."""
    norm = (texts.cast(pl.String).fill_null("").str.normalize("NFKC").str.to_lowercase()
            .str.replace_all(r"\s+", " ").str.strip_chars())
    keys = norm.rank("dense").to_numpy().astype(np.int64)
    keys[(norm.str.len_bytes() == 0).to_numpy()] = -1
    return keys


def load_input(store: Store, dataset: str | None, *, labels: bool, embeddings: bool,
               signals: bool, embedding: str | None = None, signal: str | None = None,
               group_column: str | None = None, target: str | None = None,
               model: str | None = None, lazy_embeddings: bool = False,
               within: np.ndarray | None = None, texts: bool = False) -> SelectionInput:
    """Load the candidate pool of ``dataset`` with exactly the parts a selector needs.

    ``within`` (``row_idx`` values, e.g. an earlier selection's rows) narrows the pool to
    those training rows: ``dedup → label filter → cld 10%`` chains selections this way.
    ``texts`` adds ``text_keys`` of the text column, when the dataset has one.

    ``group_column`` adds group codes (SnP's sources/identities); ``target`` adds the
    embeddings of every row of another dataset (the target domain), which must have the
    same embedding model and dimension. ``lazy_embeddings`` hands the method a ``RowSubset``
    of the memory-mapped embeddings (rows read part by part) instead of a gathered copy.
    """
    info = store.dataset_info(dataset)
    cols = ["row_idx", "sample_id", "split"]
    if info.label_column:
        cols.append(info.label_column)
    if texts and info.text_column:
        cols.append(info.text_column)
    if group_column is not None:
        known = store.dataset(info.name).collect_schema().names()
        if group_column not in known:
            raise SchemaError(f"group column {group_column!r} not found in {info.name!r}; "
                              f"columns are {', '.join(known)}")
        cols.append(group_column)
    samples = store.samples(info.name, cols)
    cand = samples.filter(pl.col("split") == "train")
    if within is not None:
        keep = pl.DataFrame({"row_idx": np.asarray(within, np.int64)})
        cand = cand.join(keep.cast({"row_idx": cand.schema["row_idx"]}), on="row_idx",
                         how="semi", maintain_order="left")
    rows = cand["row_idx"].to_numpy().astype(np.int64)
    codes = classes = all_codes = None
    # labels are one column: load them whenever they exist (some methods use them optionally)
    if info.label_column:
        all_codes, classes = encode_labels(samples[info.label_column])
        codes = all_codes[rows]
    elif labels:
        raise MissingInputError(f"dataset {info.name!r} has no label column; ingest it "
                                "with --label-column")
    used: dict[str, Any] = {}
    emb = None
    if embeddings:
        matrix, meta = store.embeddings(info.name, embedding)
        if meta.source_fingerprint != info.fingerprint:
            raise SchemaError(f"embedding {meta.model!r} was computed for another version of "
                              f"{info.name!r}; run `curate embed {info.name}` again")
        emb = RowSubset(matrix, rows) if lazy_embeddings else \
            np.asarray(matrix[rows], dtype=np.float32)
        used["embedding"] = meta.model
        used["embedding_created_at"] = meta.created_at   # a re-embedding is another input
    sig = None
    if signals:
        raw = store.signals(info.name, signal)
        take, missing = positions(np.asarray(raw.train_rows), rows)
        if len(missing):
            raise SchemaError(f"signals do not cover {len(missing)} candidate row(s) of "
                              f"{info.name!r} (e.g. row {int(missing[0])}); run "
                              f"`curate signals train {info.name}` again")
        if len(take) == len(raw.train_rows) and (take == np.arange(len(take))).all():
            take = slice(None)  # candidates in the signal's own order: keep the memory maps
        sig = CandidateSignals(
            train_losses=raw.train_losses[:, take],
            val_losses=raw.val_losses,
            val_labels=None if all_codes is None else all_codes[raw.val_rows],
            train_correct=None if raw.train_correct is None else raw.train_correct[:, take],
            train_probs=None if raw.train_probs is None else raw.train_probs[take],
            name=raw.meta.get("name", signal or "proxy"), meta=raw.meta)
        used["signal"] = sig.name
        used["signal_fingerprint"] = _array_fingerprint(raw.train_losses, raw.val_losses)
    groups = None
    if group_column is not None:
        groups = encode_labels(cand[group_column])[0]
        used["group_column"] = group_column
    tgt = None
    if target is not None:
        tinfo = store.dataset_info(target)
        tmat, tmeta = store.embeddings(tinfo.name, used.get("embedding", embedding))
        if emb is not None and tmat.shape[1] != emb.shape[1]:
            raise SchemaError(f"target dataset {tinfo.name!r} has {tmat.shape[1]}-dim embeddings "
                              f"({tmeta.model}) but {info.name!r} has {emb.shape[1]}-dim ones; "
                              "embed both with the same model")
        tgt = np.asarray(tmat, dtype=np.float32)
        used["target"] = tinfo.name
        used["target_fingerprint"] = tinfo.fingerprint
    trained = None
    if model is not None:
        from curate.subsets.persist import load_set_model

        trained, mmeta = load_set_model(store, model)
        if emb is not None and int(mmeta["dim"]) != emb.shape[1]:
            raise SchemaError(f"model {model!r} was trained on {mmeta['dim']}-dim features but "
                              f"{info.name!r} has {emb.shape[1]}-dim embeddings")
        used["model"] = model
    keys = None
    if texts and info.text_column:
        keys = text_keys(cand[info.text_column])
        used["text_column"] = info.text_column
    return SelectionInput(row_idx=rows, labels=codes, classes=classes, embeddings=emb,
                          signals=sig, groups=groups, target=tgt, model=trained,
                          text_keys=keys,
                          sample_ids=cand["sample_id"],
                          dataset=info.name, fingerprint=info.fingerprint, inputs=used)
