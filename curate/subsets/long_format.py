"""Users' own (V, S*) pairs in a long table, for ``curate subsets train --data FILE``.

One row per (ground set, item)::

    ground_set   any scalar: the ground set V this row belongs to
    item         the item: a ``sample_id`` of the dataset (its embedding is the feature) …
    in_subset    bool or 0/1: whether the item is in the optimal subset S*
    vector       … or a list / fixed-size-list column of floats: the item's features
                 (``vector_column`` names it; then ``item`` is only a label)

Every ground set must have the same number of items |V| (the set models run on a (B, |V|, d)
tensor; pad or split your sets to a common size) and 1 ≤ |S*| < |V|; (ground_set, item) pairs
are unique. Rows keep their order within a ground set; sets are ordered by first appearance.
Checked before anything is built, one ``SchemaError`` line each: missing columns, nulls,
``in_subset`` not boolean/0-1, unequal |V| (the sizes found are named), an empty or full S*,
duplicates, ragged or non-finite vectors, items not in the dataset. Vectorised: one sort, one
reshape, one id lookup (no per-row Python).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.errors import SchemaError
from curate.inputs import positions
from curate.subsets.data import SubsetData

LONG_COLUMNS = ("ground_set", "item", "in_subset")


def is_long_format(table: pl.DataFrame) -> bool:
    """A table meant as long-format pairs: it has ``ground_set`` or ``in_subset`` (then
    ``long_pairs`` names whatever else is missing)."""
    return bool({"ground_set", "in_subset"} & set(table.columns))


def _check(table: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    missing = [c for c in LONG_COLUMNS if c not in table.columns]
    if missing:
        raise SchemaError(f"long-format pairs need columns {', '.join(LONG_COLUMNS)}; "
                          f"missing {', '.join(missing)}")
    nulls = [c for c in LONG_COLUMNS if table[c].null_count()]
    if nulls:
        raise SchemaError(f"long-format pairs: column {nulls[0]!r} has "
                          f"{table[nulls[0]].null_count()} null value(s)")
    flag = table["in_subset"]
    if flag.dtype != pl.Boolean:
        if not flag.dtype.is_numeric() or not flag.is_in([0, 1]).all():
            raise SchemaError("long-format pairs: in_subset must be boolean or 0/1")
        flag = flag.cast(pl.Boolean)
    t = table.with_columns(flag.alias("in_subset"),
                           pl.int_range(pl.len()).alias("_row"))
    if t.select(pl.struct("ground_set", "item").is_duplicated().any()).item():
        raise SchemaError("long-format pairs: an item appears twice in one ground set")
    sizes = t.group_by("ground_set").agg(pl.len().alias("v"), pl.col("in_subset").sum()
                                         .alias("s"), pl.col("_row").min().alias("first"))
    distinct = sizes["v"].unique().sort().to_list()
    if len(distinct) > 1:
        shown = ", ".join(map(str, distinct[:5])) + (" …" if len(distinct) > 5 else "")
        raise SchemaError(f"long-format pairs: every ground set needs the same number of "
                          f"items; found sizes {shown} (pad or split the sets)")
    v = int(distinct[0])
    bad = sizes.filter((pl.col("s") < 1) | (pl.col("s") >= v))
    if bad.height:
        raise SchemaError(f"long-format pairs: ground set {bad['ground_set'][0]!r} has "
                          f"|S*| = {bad['s'][0]} of {v}; need 1 ≤ |S*| < |V|")
    order = sizes.select("ground_set", "first")
    t = t.join(order, on="ground_set").sort(["first", "_row"])
    return t, v


def _vectors(column: pl.Series, n: int) -> np.ndarray:
    if not isinstance(column.dtype, (pl.List, pl.Array)):
        raise SchemaError(f"long-format pairs: vector column {column.name!r} must be a list "
                          f"of floats; got {column.dtype}")
    lengths = column.list.len() if isinstance(column.dtype, pl.List) else None
    if column.null_count() or (lengths is not None and lengths.n_unique() > 1):
        raise SchemaError(f"long-format pairs: vector column {column.name!r} has null or "
                          "ragged rows (every item needs a vector of one length)")
    flat = column.explode() if lengths is not None else column.arr.explode()
    try:
        X = flat.cast(pl.Float32).to_numpy().reshape(n, -1)
    except (pl.exceptions.InvalidOperationError, ValueError) as exc:
        raise SchemaError(f"long-format pairs: vector column {column.name!r} is not numeric: "
                          f"{exc}") from None
    if not np.isfinite(X).all():
        raise SchemaError(f"long-format pairs: vector column {column.name!r} holds NaN or inf")
    return X


def long_pairs(table: pl.DataFrame, *, vector_column: str | None = "vector",
               sample_ids: np.ndarray | None = None,
               embeddings: np.ndarray | None = None) -> SubsetData:
    """SubsetData from a long table: features from ``vector_column`` when the table has it,
    else from ``embeddings`` rows matched on ``sample_ids`` (the store's ``sample_id``
    column, row-aligned with ``embeddings``)."""
    t, v = _check(table)
    n = t.height
    if vector_column and vector_column in t.columns:
        X = _vectors(t[vector_column], n)
    else:
        if sample_ids is None or embeddings is None:
            raise SchemaError("long-format pairs need a vector column or a dataset whose "
                              "sample_ids the items are")
        ids = np.asarray(sample_ids).astype(str)
        rows, missing = positions(ids, t["item"].cast(pl.String).to_numpy().astype(str))
        if len(missing):
            raise SchemaError(f"long-format pairs: {len(missing)} item(s) are not sample_ids "
                              f"of the dataset, e.g. {missing[0]!r}")
        X = np.asarray(embeddings[rows], dtype=np.float32)
    B = n // v
    return SubsetData(X.reshape(B, v, -1), t["in_subset"].to_numpy().astype(np.float32)
                      .reshape(B, v), t["item"].to_numpy().reshape(B, v),
                      t["ground_set"].to_numpy().reshape(B, v)[:, 0])
