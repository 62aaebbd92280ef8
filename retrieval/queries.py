"""Query sets: a user's own queries, the training and evaluation data of the fan-out teacher
and the diffusion retriever, on any indexed dataset.

A query set is a table (Parquet, CSV or JSONL file, or a Polars frame), one row per query:

    query_id     str, unique                        (``id_column``)
    text         str: the query                      (``text_column``; or ``vector_column``;
                 or neither: a query given by its ``item`` is that item's stored vector)
    views        str columns, optional: other texts of the same query (a title, a body, …)
                 — the query's views are [text, *views] (``retrieval.views``)
    references   list[str], optional: item ``sample_id``s that answer the query (weak
                 supervision: ``--regime weak`` rewards their recall)
    item         str, optional: the query's own ``sample_id`` when the query is itself an item
                 of the dataset (never returned for it — a hypernym is not its own hyponym)

``register_queries`` validates it (one line for a missing column, a duplicate or empty id,
an unknown reference or item id, a vector of the wrong dimension, no text to embed on a
non-MiniLM index), embeds every view once (MiniLM, the index's embedding; or the given
vectors as one view), maps references and items to ``row_idx`` with one join (no per-row
Python), splits the queries train/val/test (70/10/20, a seeded permutation) and stores it
as ``models/queries-<hex>/``, content-addressed (same table, options, index and seed → the
same id, reused):

    views.npy          (m, V, d) float32 unit vectors; view 0 is the query itself
    queries.parquet    query_id, split, item_row (−1: none), ref_rows list[int64]
    model.json         index, dataset, views (names), view_rule, n, splits, has_references,
                       seed

``view_rule`` says how a model trained on the set gets a *new* query's views (``_view_rule``):
``single``; ``colon`` (the view columns are the text split at its first colon, so a
"head: body" text gives them); ``columns`` (other columns: the query must bring its views —
``FanoutEngine.query(views=[...])``, the service's ``views``, ``curate fanout query --view``).

``resolve_query_set(store, index, queries, bundled=...)`` is what a command's ``--queries``
means: a stored query-set id, a table file registered with the default column names, or —
without one — a bundled query set the caller supplies (the CLI: WordNet's, from
``curate.defaults.wordnet_query_table``).

``load_queries(store, id, split)`` gives a ``QuerySplit``: views, item rows (the rows never
returned) and references as a padded (m, R) int64 array (−1 = none), ready for
``recall_reward``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.checks import check_seed
from core.errors import (
    CurateError,
    InvalidParameterError,
    MissingInputError,
    NotFoundError,
    SchemaError,
)
from retrieval.index import load_index, normalise
from stores import Store, files

SPLITS = {"train": 0.7, "val": 0.1, "test": 0.2}


@dataclass(frozen=True)
class QuerySplit:
    """One split of a stored query set. views (m, V, d) float32; exclude (m,) int64 item rows
    (−1: none); refs (m, R) int64 reference rows padded with −1 (R = 0 without references);
    query_id (m,) str."""

    query_set: str
    split: str
    query_id: np.ndarray
    views: np.ndarray
    exclude: np.ndarray
    refs: np.ndarray

    def __len__(self) -> int:
        return int(len(self.query_id))

    @property
    def has_references(self) -> bool:
        return self.refs.shape[1] > 0 and bool((self.refs >= 0).any())


def _frame(source: str | Path | pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """The table and a content hash of it."""
    if isinstance(source, pl.DataFrame):
        frame = source
    else:
        from stores.stream import read_table

        path = Path(source)
        if not path.exists():
            raise NotFoundError(f"query table {str(path)!r} does not exist")
        frame = read_table(path)
    return frame, content_digest(frame)


def resolve_query_set(store: Store, index_name: str, queries: str | Path | None, *,
                      bundled: Callable[[Store, dict[str, Any]],
                                        tuple[pl.DataFrame, dict[str, Any]]] | None = None,
                      progress: bool = False) -> str:
    """The stored query-set id ``queries`` names: itself when it is a stored query set; a
    table file registered with the default column names (``text``; ``references`` and
    ``item`` when present, else a vector column must be named in Python); or, when
    ``queries`` is None, the table ``bundled(store, index_meta)`` returns with its columns'
    roles (``register_queries``' keyword arguments) registered: a data module's own query
    set for the index's dataset (None: refused)."""
    if queries is not None and str(queries) in store.models()["id"].to_list():
        return str(queries)
    if queries is not None:
        if not Path(queries).is_file():
            raise NotFoundError(f"--queries {str(queries)!r} is neither a stored query set nor "
                                "a file")
        from stores.stream import read_table

        frame = read_table(Path(queries))
        cols = set(frame.columns)
        return register_queries(store, index_name, frame,
                                text_column="text" if "text" in cols else None,
                                references_column="references" if "references" in cols
                                else None, item_column="item" if "item" in cols else None,
                                progress=progress)["query_set"]
    if bundled is None:
        raise MissingInputError("give a query set: a stored id or a table with query_id, "
                                "text[, references, item]")
    frame, columns = bundled(store, files.read_json(store.index_path(index_name) /
                                                    "index.json"))
    return register_queries(store, index_name, frame, progress=progress,
                            **columns)["query_set"]


def content_digest(frame: pl.DataFrame, rows: int = 1 << 16) -> str:
    """sha256 of the table's values in a canonical text form (column names, then NDJSON,
    ``rows`` rows at a time, written by Polars in Rust: no per-row Python). It depends on the
    values only — not on chunking, memory layout or Polars' ``Series.hash``, which Polars
    documents as unstable across versions; a Polars release that changed its NDJSON text
    (number formatting) would move ids once, re-registering a set rather than reusing it.
    ``SchemaError`` for a column NDJSON cannot hold (binary, objects)."""
    digest = hashlib.sha256(json.dumps(frame.columns).encode())
    try:
        for lo in range(0, frame.height, rows):
            digest.update(frame.slice(lo, rows).write_ndjson().encode())
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise SchemaError(f"the query table has a column that cannot be read as JSON values "
                          f"({type(exc).__name__}); give text, numbers or lists of them") \
            from None
    return digest.hexdigest()


def _need(frame: pl.DataFrame, column: str | None, what: str) -> None:
    if column is not None and column not in frame.columns:
        raise SchemaError(f"the query table has no {what} column {column!r}; its columns: "
                          f"{', '.join(frame.columns)}")


def register_queries(store: Store, index_name: str, source: str | Path | pl.DataFrame, *,
                     id_column: str = "query_id", text_column: str | None = "text",
                     view_columns: tuple[str, ...] | list[str] = (),
                     vector_column: str | None = None,
                     references_column: str | None = None, item_column: str | None = None,
                     seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Validate, embed, split and store a query set for index ``index_name``; returns its
    meta with ``query_set`` (the id). See the module docstring for the table."""
    seed = check_seed(seed)
    frame, digest = _frame(source)
    view_columns = tuple(view_columns)
    if text_column is not None and vector_column is not None:
        raise InvalidParameterError("give one of a text column and a vector column for the "
                                    "queries, not both")
    if text_column is None and vector_column is None and item_column is None:
        raise InvalidParameterError("the queries need a text column, a vector column, or an "
                                    "item column (the query is then its item's vector)")
    if vector_column is not None and view_columns:
        raise InvalidParameterError("view columns are texts; a vector query set has one view")
    for col, what in ((id_column, "id"), (text_column, "text"), (vector_column, "vector"),
                      (references_column, "references"), (item_column, "item")):
        _need(frame, col, what)
    for col in view_columns:
        _need(frame, col, "view")
    if frame.height == 0:
        raise SchemaError("the query table has no rows")
    index = load_index(store, index_name)
    meta = index.meta
    options = {"index": index_name, "id": id_column, "text": text_column,
               "views": list(view_columns), "vector": vector_column,
               "references": references_column, "item": item_column, "seed": seed,
               "index_fingerprint": meta.get("dataset_fingerprint")}
    if meta.get("encoder_backend") is not None:   # re-embedded items: another query set
        options["encoder_backend"] = meta["encoder_backend"]
    qid = "queries-" + hashlib.sha256((digest + json.dumps(options, sort_keys=True))
                                      .encode()).hexdigest()[:12]
    if qid in store.models()["id"].to_list():
        return {"query_set": qid, **files.read_json(store.model_path(qid) / "model.json")}
    ids = frame[id_column].cast(pl.Utf8)
    if ids.null_count() or (ids.str.strip_chars() == "").any():
        raise SchemaError(f"query ids ({id_column!r}) must be non-empty strings")
    if ids.n_unique() != len(ids):
        dup = ids.filter(ids.is_duplicated()).head(1).to_list()[0]
        raise SchemaError(f"query id {dup!r} appears more than once in {id_column!r}")
    samples = store.samples(meta["dataset"], ["sample_id"]).with_row_index("row")
    item_rows = _item_rows(frame, item_column, samples)
    ref_rows = _reference_rows(frame, references_column, samples)
    if text_column is None and vector_column is None:          # the items' own vectors
        if (item_rows < 0).any():
            raise SchemaError(f"every query needs an item id in {item_column!r} when the "
                              "queries are given by their items")
        X = store.embeddings(meta["dataset"], meta["embedding"])[0]
        views = normalise(np.asarray(X[np.sort(item_rows)])[np.argsort(np.argsort(item_rows))]
                          )[:, None, :]
    else:
        views = _embed_views(store, meta, frame, text_column, view_columns, vector_column,
                             progress)
    if views.shape[2] != index.dim:
        raise SchemaError(f"query vectors have dimension {views.shape[2]}; index "
                          f"{index_name!r} has {index.dim}")
    m = frame.height
    order = np.random.default_rng(seed).permutation(m)
    n_test, n_val = int(SPLITS["test"] * m), int(SPLITS["val"] * m)
    split = np.empty(m, dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test:n_test + n_val]] = "val"
    split[order[n_test + n_val:]] = "train"
    table = pl.DataFrame({"query_id": ids, "split": split.astype(str),
                          "item_row": item_rows, "ref_rows": ref_rows})
    info = {"index": index_name, "dataset": meta["dataset"],
            "views": [text_column or vector_column or f"{item_column} vector",
                      *view_columns], "n": m,
            "view_rule": _view_rule(frame, text_column, view_columns),
            "splits": {s: int((split == s).sum()) for s in SPLITS},
            "has_references": references_column is not None, "options": options,
            "content_sha256": digest}

    def write(folder: Path) -> None:
        files.write_npy(folder / "views.npy", views)
        files.write_parquet(folder / "queries.parquet", table)

    store.write_model("queries", write, info, model_id=qid)
    return {"query_set": qid, "id": qid, "kind": "queries", **info}


def _item_rows(frame: pl.DataFrame, column: str | None, samples: pl.DataFrame) -> np.ndarray:
    if column is None:
        return np.full(frame.height, -1, dtype=np.int64)
    keys = frame.select(pl.col(column).cast(pl.Utf8).alias("sample_id")).with_row_index("q")
    joined = keys.join(samples, on="sample_id", how="left").sort("q")
    missing = joined.filter(pl.col("row").is_null() & pl.col("sample_id").is_not_null())
    if missing.height:
        raise SchemaError(f"{missing.height} query item id(s) in {column!r} are not sample ids "
                          f"of the index's dataset (e.g. {missing['sample_id'][0]!r})")
    return joined["row"].fill_null(-1).cast(pl.Int64).to_numpy()


def _reference_rows(frame: pl.DataFrame, column: str | None,
                    samples: pl.DataFrame) -> pl.Series:
    if column is None:
        return pl.Series("ref_rows", [[]] * frame.height, dtype=pl.List(pl.Int64))
    if not isinstance(frame.schema[column], pl.List):
        raise SchemaError(f"references column {column!r} must be a list of sample ids; got "
                          f"{frame.schema[column]}")
    long = (frame.select(pl.col(column).alias("sample_id")).with_row_index("q")
            .explode("sample_id").filter(pl.col("sample_id").is_not_null())
            .with_columns(pl.col("sample_id").cast(pl.Utf8)))
    joined = long.join(samples, on="sample_id", how="left")
    missing = joined.filter(pl.col("row").is_null())
    if missing.height:
        raise SchemaError(f"{missing.height} reference id(s) in {column!r} are not sample ids "
                          f"of the index's dataset (e.g. {missing['sample_id'][0]!r})")
    grouped = joined.group_by("q").agg(pl.col("row").unique(maintain_order=True).cast(pl.Int64))
    full = pl.DataFrame({"q": np.arange(frame.height, dtype=np.uint32)}).join(
        grouped.with_columns(pl.col("q").cast(pl.UInt32)), on="q", how="left").sort("q")
    return full["row"].fill_null(pl.lit([], dtype=pl.List(pl.Int64))).alias("ref_rows")


def _embed_views(store: Store, meta: dict, frame: pl.DataFrame, text_column: str | None,
                 view_columns: tuple[str, ...], vector_column: str | None,
                 progress: bool) -> np.ndarray:
    """(m, V, d) unit views: MiniLM of [text, *views], or the vector column as one view."""
    if vector_column is not None:
        col = frame[vector_column]
        try:
            X = np.asarray(col.to_numpy() if isinstance(col.dtype, pl.Array)
                           else np.stack(col.to_numpy()), dtype=np.float32)
        except (ValueError, TypeError):
            raise SchemaError(f"query vectors in {vector_column!r} must be lists of numbers of "
                              "one length") from None
        if X.ndim != 2 or not np.isfinite(X).all() or (np.abs(X).max(1) == 0).any():
            raise SchemaError(f"query vectors in {vector_column!r} must be finite, non-zero "
                              "and of one length")
        return normalise(X)[:, None, :]
    from core.encoders import MODEL_NAME, embed_texts, query_backend

    if meta.get("embedding") != MODEL_NAME:
        raise MissingInputError(f"the index is built on embedding {meta.get('embedding')!r}; "
                                f"text queries need {MODEL_NAME} — give a vector column "
                                "instead")
    cols = [text_column, *view_columns]
    texts = frame.select([pl.col(c).cast(pl.Utf8).fill_null("") for c in cols])
    for c in cols:
        blank = texts[c].str.strip_chars() == ""
        if blank.any():
            first = int(np.flatnonzero(blank.to_numpy())[0])
            raise SchemaError(f"query column {c!r} is empty or null in {int(blank.sum())} "
                              f"row(s) (the first: row {first} of the table); every view of a "
                              "query needs text")
    flat = texts.to_numpy().reshape(-1).tolist()            # row-major: (m · V,)
    unique, inverse = np.unique(np.asarray(flat, dtype=object).astype(str), return_inverse=True)
    items = store.embeddings(meta["dataset"], meta["embedding"])[1].backend
    E = embed_texts(unique.tolist(), progress=progress, backend=query_backend(meta, items))
    return E[inverse].reshape(frame.height, len(cols), -1).astype(np.float32)


VIEW_RULES = ("single", "colon", "columns")


def _view_rule(frame: pl.DataFrame, text_column: str | None,
               view_columns: tuple[str, ...]) -> str:
    """How a model trained on this query set gets its views from a new query:
    ``single`` (one view), ``colon`` (the two view columns are the text split at its first
    colon, ``retrieval.views.split_query``, on every row — then a "head: body" query text
    gives them, as for the bundled WordNet set), ``columns`` (the views are other columns:
    a query must bring them). Vectorised: one Polars split and compare."""
    if not view_columns:
        return "single"
    if text_column is None or len(view_columns) != 2:
        return "columns"
    text = frame[text_column].cast(pl.Utf8)
    parts = text.str.splitn(":", 2).struct.rename_fields(["head", "body"])
    head = parts.struct.field("head").str.strip_chars()
    body = parts.struct.field("body").str.strip_chars()
    first, second = (frame[c].cast(pl.Utf8).str.strip_chars() for c in view_columns)
    ok = (body.is_not_null() & (head != "") & (body != "") & (head == first)
          & (body == second))
    return "colon" if bool(ok.all()) else "columns"


def model_views(store: Store, meta: dict[str, Any]) -> tuple[str, list[str]]:
    """(view rule, view names) of a teacher or diffusion model: recorded in its meta at
    training (from its query set); for models trained before that, looked up in the query
    set its meta (or its synthesis's) names — ``colon`` for the bundled (text, head, body)
    set, ``single`` for one view, else ``columns`` — and ``colon`` when that set is gone."""
    if meta.get("view_rule") in VIEW_RULES:
        return meta["view_rule"], list(meta.get("view_names", []))
    try:
        qs = meta.get("queries")
        if qs is None and meta.get("synthesis"):
            qs = files.read_json(store.model_path(meta["synthesis"]) / "model.json"
                                 ).get("queries")
        qmeta = query_set_meta(store, qs) if qs is not None else None
    except (CurateError, OSError, ValueError):
        qmeta = None
    if qmeta is None:
        return "colon", []
    names = list(qmeta.get("views", []))
    rule = qmeta.get("view_rule")
    if rule not in VIEW_RULES:
        rule = ("single" if len(names) <= 1 else
                "colon" if names == ["text", "head", "body"] else "columns")
    return rule, names


def query_set_meta(store: Store, query_set: str) -> dict[str, Any]:
    meta = files.read_json(store.model_path(query_set) / "model.json")
    if meta.get("kind") != "queries":
        raise SchemaError(f"model {query_set!r} is a {meta.get('kind')!r} model, not a query "
                          "set (from `curate fanout queries`)")
    return meta


def load_queries(store: Store, query_set: str, split: str = "train") -> QuerySplit:
    """One split (``train``, ``val``, ``test`` or ``all``) of a stored query set."""
    if split not in (*SPLITS, "all"):
        raise InvalidParameterError(f"split must be one of {', '.join(SPLITS)}, all; got "
                                    f"{split!r}")
    query_set_meta(store, query_set)
    path = store.model_path(query_set)
    table = pl.read_parquet(path / "queries.parquet")
    views = np.load(path / "views.npy", mmap_mode="r")
    pick = (np.arange(table.height) if split == "all"
            else np.flatnonzero(table["split"].to_numpy() == split))
    sub = table[pick]
    lengths = sub["ref_rows"].list.len().to_numpy().astype(np.int64)
    R = int(lengths.max()) if len(lengths) else 0
    refs = np.full((len(pick), R), -1, dtype=np.int64)
    if R:
        flat = sub["ref_rows"].explode().drop_nulls().to_numpy().astype(np.int64)
        rows = np.repeat(np.arange(len(pick)), lengths)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        refs[rows, cols] = flat
    return QuerySplit(query_set, split, sub["query_id"].to_numpy(),
                      np.ascontiguousarray(views[pick], dtype=np.float32),
                      sub["item_row"].to_numpy().astype(np.int64), refs)


def recall_reward(refs: np.ndarray):
    """A vectorised weak-supervision reward for ``Teacher``: ``fn(query_idx (B,), rows
    (B, n, k)) -> (B, n)`` = |Y ∩ R| / |Y| with Y the references of each query (``refs``
    (m, R) padded with −1; a query without references scores 0)."""
    sizes = (refs >= 0).sum(1)

    def fn(idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        Y = refs[idx]                                          # (B, R)
        hit = (rows[:, :, :, None] == Y[:, None, None, :]) & (Y[:, None, None, :] >= 0)
        return hit.any(2).sum(2) / np.maximum(sizes[idx], 1)[:, None]

    return fn


def recall_at_k(rows: np.ndarray, refs: np.ndarray, cap: int | None = None) -> np.ndarray:
    """(m,) |Y ∩ R| / |Y| of sets ``rows`` (m, k) against references ``refs`` (m, R, −1
    padded); ``cap`` divides by min(|Y|, cap) (the most a k-set can reach). NaN where a query
    has no references."""
    sizes = (refs >= 0).sum(1)
    hits = ((rows[:, :, None] == refs[:, None, :]) & (refs[:, None, :] >= 0)).any(1).sum(1)
    denom = np.minimum(sizes, cap) if cap else sizes
    return np.where(sizes > 0, hits / np.maximum(denom, 1), np.nan)
