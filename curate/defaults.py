"""The bundled default dataset: WordNet 3.0 glosses labelled by 45 lexicographer classes.

``curate init --default`` builds a store with a stratified sample (20,000 rows by default,
``sample=None`` for all 117,659) named ``wordnet``: gloss → ``lexname``, ``synset_id`` as the
stable id, a stratified train/val/test split (70/10/20), MiniLM embeddings, and proxy
signals; it becomes the store's default dataset. WordNet licence: ``data/wordnet/LICENSE``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from curate.budget import largest_remainder
from curate.checks import check_int, check_seed
from curate.embedding import DEFAULT_BACKEND, embed_dataset
from curate.errors import InvalidParameterError
from curate.signals import train_signals
from stores import IngestSpec, Store

DEFAULT_NAME = "wordnet"
DEFAULT_SAMPLE = 20_000
WORDNET_SPEC = IngestSpec(text_column="gloss", label_column="lexname", id_column="synset_id",
                          val_fraction=0.1, test_fraction=0.2, seed=0)


def wordnet_path() -> Path:
    return Path(str(resources.files("curate") / "data" / "wordnet" / "synsets.parquet"))


def hyponym_sets_path() -> Path:
    """The bundled WordNet hypernym → hyponym sets (20,472 rows; see curate/data/wordnet)."""
    return Path(str(resources.files("curate") / "data" / "wordnet" / "hyponym_sets.parquet"))


def load_wordnet(sample: int | None = DEFAULT_SAMPLE, seed: int = 0) -> pl.DataFrame:
    """The bundled synsets, or a class-stratified sample of ``sample`` rows (proportional
    quotas by largest remainder; every class keeps at least one row)."""
    seed = check_seed(seed)
    if sample is not None:
        check_int("", "sample", sample)
    frame = pl.read_parquet(wordnet_path()).select("synset_id", "pos", "lexname", "lemmas",
                                                   "gloss")
    if sample is None or sample >= frame.height:
        return frame
    if sample < 45:
        raise InvalidParameterError(f"sample must be ≥ 45 (one row per class); got {sample}")
    labels = frame["lexname"].to_numpy()
    classes, sizes = np.unique(labels, return_counts=True)
    quotas = np.minimum(sizes, largest_remainder(sizes - 1, sample - len(classes)) + 1)
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
                           for c, q in zip(classes, quotas, strict=True)])
    return frame[np.sort(keep)]


def init_default(store: Store, *, sample: int | None = DEFAULT_SAMPLE, epochs: int = 20,
                 seed: int = 0, progress: bool = False,
                 backend: str = DEFAULT_BACKEND, executor=None) -> dict:
    """Build the default ``wordnet`` dataset in ``store`` (ingest → embed → signals). The seed,
    sample size, epochs and backend are checked before anything is read or written;
    ``backend`` and ``executor`` go to ``embed_dataset``."""
    from core.encoders import BACKENDS
    from curate.checks import check_choice

    seed = check_seed(seed)
    check_int("", "epochs", epochs)
    check_choice("", "backend", backend, tuple(BACKENDS))
    frame = load_wordnet(sample, seed)
    info = store.add_dataset(frame, DEFAULT_NAME, WORDNET_SPEC, source=str(wordnet_path()))
    emb = embed_dataset(store, DEFAULT_NAME, progress=progress, backend=backend,
                        executor=executor)
    sig = train_signals(store, DEFAULT_NAME, epochs=epochs, seed=seed, progress=progress)
    store.set_default(DEFAULT_NAME)
    return {"store": str(store.root), "dataset": info.name, "n_rows": info.n_rows,
            "embedding": emb["model"], "backend": backend, "signal": sig["signal"],
            "epochs": epochs,
            "default": True}


def wordnet_query_table(store: Store, index_meta: dict) -> tuple[pl.DataFrame, dict]:
    """The bundled WordNet query set for an index (``index_meta``: its ``index.json``) and
    its columns' roles, as ``retrieval.queries.resolve_query_set`` takes it: on a MiniLM
    index, the "lemmas: gloss" text with the views ``head`` and ``body``; on any other
    embedding each hypernym's own stored vector (its ``item``). Refused when the index's
    dataset holds no complete hyponym set."""
    from curate.embedding import MODEL_NAME
    from curate.errors import MissingInputError

    frame = wordnet_query_set(store, index_meta["dataset"])
    if frame.height == 0:
        raise MissingInputError(f"dataset {index_meta['dataset']!r} holds no complete bundled "
                                "WordNet hyponym set; give your own query table with "
                                "--queries")
    columns = {"references_column": "references", "item_column": "item"}
    if index_meta.get("embedding") != MODEL_NAME:
        return frame.drop("text", "head", "body"), {**columns, "text_column": None}
    return frame, {**columns, "text_column": "text", "view_columns": ("head", "body")}


def wordnet_query_set(store: Store, dataset: str = DEFAULT_NAME,
                      min_members: int = 5) -> pl.DataFrame:
    """The bundled WordNet fan-out query set as a user's query table
    (``retrieval.queries``): one query per hypernym with ≥ ``min_members`` hyponyms whose
    hypernym and hyponyms are all rows of ``dataset`` (so a sampled store gets the sets it can
    answer). Columns: ``query_id`` and ``item`` (the hypernym's synset id: the query is itself
    an item, never returned for itself), ``text`` ("lemma, lemma: gloss", what a user would
    type), the views ``head`` (the lemmas) and ``body`` (the gloss), and ``references`` (the
    hyponyms' synset ids)."""
    check_int("", "min_members", min_members)
    ids = store.samples(dataset, ["sample_id"]).rename({"sample_id": "id"})
    sets = pl.read_parquet(hyponym_sets_path()).filter(pl.col("size") >= min_members)
    present = (sets.select("set_id", "members").explode("members")
               .join(ids.with_columns(pl.lit(True).alias("ok")), left_on="members",
                     right_on="id", how="left")
               .group_by("set_id").agg(pl.col("ok").is_not_null().all().alias("all_in")))
    sets = (sets.join(present.filter(pl.col("all_in")).select("set_id"), on="set_id")
            .join(ids, left_on="set_id", right_on="id", how="semi").sort("set_id"))
    head = sets["query_lemmas"].list.join(", ").str.replace_all("_", " ")
    return pl.DataFrame({"query_id": sets["set_id"], "text": head + ": " + sets["query_gloss"],
                         "head": head, "body": sets["query_gloss"],
                         "references": sets["members"], "item": sets["set_id"]})
