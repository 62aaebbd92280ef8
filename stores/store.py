"""``Store``: the one entry point to a Curate workspace.

Layout of a workspace (default ``./.curate``; ``--store DIR`` or ``CURATE_HOME`` override)::

    catalog.duckdb                         metadata (see catalog.py)
    datasets/<name>/samples.parquet        row_idx, sample_id, split, user columns
    datasets/<name>/dataset.json           ingest spec, fingerprint, source
    datasets/<name>/embeddings/<model>.npy (+ .json sidecar)
    datasets/<name>/signals/<signal>/      loss trajectories (see signals.py)
    selections/<id>/selection.parquet      row_idx, sample_id, rank, weight, score
    selections/<id>/selection.json         provenance

Every write builds its files in a staged temp folder first, then, holding the store's
exclusive lock (``stores.lock``), renames the folder into place and registers it in the
catalog in one transaction; readers go through the catalog, so they never see half a write.
Catalog paths are relative to the root (a store is a folder: copy or move it whole), and
each artefact's catalog row holds a content manifest that reads verify
(``stores.integrity``). ``Store.open`` runs a quick recovery pass (``stores.recovery``) that
removes dead writers' temp folders and resolves orphan folders.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from core.checks import did_you_mean
from core.errors import AlreadyExistsError, NotFoundError, SchemaError, StoreError, UsageError
from stores import files, integrity
from stores.catalog import TABLES, Catalog, relative_path
from stores.embeddings import (
    SIDECAR,
    VECTORS,
    EmbeddingMeta,
    array_batches,
    embedding_files,
    file_stem,
    read_embeddings,
    write_embeddings,
)
from stores.ingest import IngestSpec, check_finite, check_spec, prepare_samples
from stores.lock import store_lock
from stores.signals import Signals
from stores.sql import run_readonly_sql
from stores.stream import BATCH_ROWS, open_source, stream_ingest

DEFAULT_ROOT = ".curate"
RESERVED_NAMES = frozenset(TABLES) | {"selection_rows"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def check_name(name: str, what: str = "dataset") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"{what} name must start with a letter and use only letters, digits, "
                         f"'_', '-', '.' (at most 64 characters); got {name!r}")
    if name.lower() in RESERVED_NAMES:
        raise UsageError(f"{what} name {name!r} is reserved (SQL view names: "
                         f"{', '.join(sorted(RESERVED_NAMES))})")
    return name


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    n_rows: int
    text_column: str | None
    label_column: str | None
    id_column: str | None
    fingerprint: str
    source: str
    path: str
    created_at: str


def resolve_root(root: str | Path | None = None) -> Path:
    """``root`` if given, else ``$CURATE_HOME``, else ``./.curate``."""
    return Path(root or os.environ.get("CURATE_HOME") or DEFAULT_ROOT).expanduser().absolute()


class Store:
    """A Curate workspace: ``Store.open()`` an existing one, ``Store.create()`` a new one."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.catalog = Catalog(self.root / "catalog.duckdb", lock_root=self.root)

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path | None = None, recover: bool = True) -> Store:
        """Open an existing store: migrate an older catalog, then (``recover``) remove dead
        writers' leftovers if no other process is writing."""
        path = resolve_root(root)
        if not (path / "catalog.duckdb").is_file():
            raise NotFoundError(f"no Curate store at {path}: run `curate init` "
                                "(or `curate init --default`), or pass --store DIR")
        st = cls(path)
        st._migrate()
        if recover:
            from stores.recovery import recover as _recover

            _recover(st, wait=False)
        return st

    @classmethod
    def create(cls, root: str | Path | None = None, exist_ok: bool = True) -> Store:
        path = resolve_root(root)
        if (path / "catalog.duckdb").is_file():
            if not exist_ok:
                raise AlreadyExistsError(f"a Curate store already exists at {path}")
            return cls.open(path)
        if path.exists() and not path.is_dir():
            raise UsageError(f"cannot create a store at {path}: it is a file")
        path.mkdir(parents=True, exist_ok=True)
        for sub in ("datasets", "selections"):
            (path / sub).mkdir(exist_ok=True)
        # Build the catalog under a temp name, then rename: no half-made store on a crash.
        with store_lock(path, exclusive=True):
            if not (path / "catalog.duckdb").is_file():  # another process may have won
                tmp = path / f"{files.TMP_PREFIX}catalog.duckdb"
                tmp.unlink(missing_ok=True)
                Catalog(tmp, lock_root=path).create()
                os.replace(tmp, path / "catalog.duckdb")
                files.fsync_dir(path)
        return cls(path)

    def _migrate(self) -> None:
        try:
            self.catalog.migrate()
        except StoreError:
            raise
        except (duckdb.Error, OSError) as exc:
            raise StoreError(f"cannot upgrade the catalog of {self.root}: "
                             f"{str(exc).splitlines()[0]}") from exc

    # -- paths ---------------------------------------------------------------------------
    def abspath(self, stored: str) -> Path:
        """The absolute path of a catalog path (relative to the root; legacy absolute
        paths are re-rooted here, so a copied old store never reads the original)."""
        return self.root / relative_path(stored)

    def relpath(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def _publish(self, tmp: Path, final: Path, register) -> None:
        """Holding the exclusive lock: rename staged ``tmp`` onto ``final`` and run
        ``register(con)`` in one catalog transaction; undo the rename if registering fails.
        A folder already at ``final`` here is an orphan (publishing happens only under this
        lock, so no live writer owns it) and is replaced."""
        if final.exists():
            files.remove_path(final)
        files.publish_dir(tmp, final)
        try:
            with self.catalog.transaction() as con:
                register(con)
        except BaseException:
            files.remove_path(final)
            raise
        files.fault_point("registered")

    def _writing(self):
        return store_lock(self.root, exclusive=True)

    # -- datasets ------------------------------------------------------------------------
    def datasets(self) -> pl.DataFrame:
        return self.catalog.query("SELECT * EXCLUDE (manifest) FROM datasets ORDER BY name")

    def has_dataset(self, name: str) -> bool:
        return bool(self.catalog.rows("SELECT 1 FROM datasets WHERE name = ?", [name]))

    def dataset_info(self, name: str | None = None) -> DatasetInfo:
        name = self.resolve_dataset(name)
        row = self.catalog.rows("SELECT * EXCLUDE (manifest) FROM datasets WHERE name = ?",
                                [name])[0]
        row["path"] = str(self.abspath(row["path"]))
        return DatasetInfo(**row)

    def resolve_dataset(self, name: str | None) -> str:
        """``name`` if it exists; the store's default when ``name`` is None."""
        if name is None:
            name = self.default_dataset
            if name is None:
                raise UsageError("no dataset given and the store has no default dataset; "
                                 "name one, or run `curate init --default`")
        if not self.has_dataset(name):
            known = self.datasets()["name"].to_list()
            hint = f"; datasets: {', '.join(known)}" if known else "; the store has no datasets"
            raise NotFoundError(f"dataset {name!r} not found in {self.root}{hint}")
        return name

    @property
    def default_dataset(self) -> str | None:
        return self.catalog.get_setting("default_dataset")

    def set_default(self, name: str) -> None:
        self.catalog.set_setting("default_dataset", self.resolve_dataset(name))

    def ingest(self, path: str | Path, name: str, spec: IngestSpec,
               batch_rows: int = BATCH_ROWS, progress: bool = False,
               executor=None) -> DatasetInfo:
        """Stream a file or a folder of shards into dataset ``name`` (``stores.stream``):
        validated batch by batch, never held whole. Vectors (if any) become the embedding
        ``"ingested"``; samples and vectors are registered in one transaction, and bad input
        anywhere (any shard, any batch) leaves the store unchanged. ``executor`` (``ray``)
        converts Parquet shards' vectors one shard per task (``stream_ingest``)."""
        from core.progress import bar

        check_name(name)
        check_spec(spec)
        if self.has_dataset(name):
            raise AlreadyExistsError(f"dataset {name!r} already exists in {self.root}; "
                                     "choose another --name")
        from stores.executor import get_executor

        executor = get_executor(executor)
        source = open_source(path)
        final = self.root / "datasets" / name
        with files.staged_dir(final) as tmp:
            emb_dir = tmp / "embeddings" / f"{file_stem('ingested')}@{_hex()}"
            if spec.vector_column:
                emb_dir.mkdir(parents=True)
            with bar(f"ingest {name}", total=source.n_rows, enabled=progress) as b:
                n, dim = stream_ingest(source, spec, tmp / "samples.parquet",
                                       emb_dir / VECTORS if spec.vector_column else None,
                                       batch_rows=batch_rows, progress=b.advance,
                                       executor=executor)
            return self._finish_dataset(tmp, final, name, spec, str(Path(path).absolute()),
                                        n, emb_dir if spec.vector_column else None,
                                        (n, dim))

    def add_dataset(self, frame: pl.DataFrame, name: str, spec: IngestSpec,
                    source: str = "<frame>", vectors: np.ndarray | None = None) -> DatasetInfo:
        """Add an in-memory frame (and optional (N, d) vectors) as dataset ``name``."""
        check_name(name)
        if self.has_dataset(name):
            raise AlreadyExistsError(f"dataset {name!r} already exists in {self.root}; "
                                     "choose another --name")
        samples = prepare_samples(frame, spec, source)
        final = self.root / "datasets" / name
        with files.staged_dir(final) as tmp:
            files.write_parquet(tmp / "samples.parquet", samples)
            emb_dir = None
            if vectors is not None:
                if vectors.ndim != 2 or len(vectors) != samples.height:
                    raise SchemaError(f"vectors must have shape ({samples.height}, d); got "
                                      f"{vectors.shape}")
                check_finite(vectors, "vectors")
                emb_dir = tmp / "embeddings" / f"{file_stem('ingested')}@{_hex()}"
                emb_dir.mkdir(parents=True)
                files.write_npy(emb_dir / VECTORS,
                                np.ascontiguousarray(vectors, dtype=np.float32))
            return self._finish_dataset(tmp, final, name, spec, source, samples.height,
                                        emb_dir, None if vectors is None else vectors.shape)

    def _finish_dataset(self, tmp: Path, final: Path, name: str, spec: IngestSpec,
                        source: str, n_rows: int, emb_dir: Path | None,
                        shape: tuple[int, int] | None) -> DatasetInfo:
        """Fingerprint and describe a staged dataset folder, then publish and register it
        (with its ingested vectors, if any) in one transaction."""
        fingerprint = files.sha256_file(tmp / "samples.parquet")
        files.write_json(tmp / "dataset.json", {"spec": asdict(spec), "source": source,
                                                "fingerprint": fingerprint})
        info = DatasetInfo(name=name, n_rows=n_rows, text_column=spec.text_column,
                           label_column=spec.label_column, id_column=spec.id_column,
                           fingerprint=fingerprint, source=source, path=str(final),
                           created_at=now_iso())
        emb_row = None
        if emb_dir is not None:
            meta = EmbeddingMeta(model="ingested", dim=int(shape[1]), n_rows=n_rows,
                                 normalized=False, source_fingerprint=fingerprint,
                                 created_at=now_iso())
            files.write_json(emb_dir / SIDECAR, meta.to_json())
            emb_row = self._embedding_row(name, meta, f"datasets/{name}/embeddings/"
                                          f"{emb_dir.name}", integrity.manifest(emb_dir))
        manifest = integrity.manifest(tmp, [tmp / "samples.parquet", tmp / "dataset.json"])

        def register(con) -> None:
            self.catalog.insert(con, "datasets", {**asdict(info), "path": f"datasets/{name}",
                                                  "manifest": manifest})
            if emb_row is not None:
                self.catalog.insert(con, "embeddings", emb_row)

        with self._writing():
            if self.has_dataset(name):
                raise AlreadyExistsError(f"dataset {name!r} already exists in "
                                         f"{self.root}; choose another --name")
            self._publish(tmp, final, register)
        return info

    def _dataset_folder(self, name: str) -> Path:
        """The dataset's folder, after checking its samples against the manifest."""
        row = self.catalog.rows("SELECT path, manifest FROM datasets WHERE name = ?", [name])[0]
        folder = self.abspath(row["path"])
        integrity.verify(folder, _load(row["manifest"]), f"dataset {name!r}")
        return folder

    def samples(self, name: str | None = None, columns: list[str] | None = None) -> pl.DataFrame:
        return self.dataset(name).select(columns or pl.all()).collect()

    def dataset_path(self, name: str | None = None) -> Path:
        """The dataset's folder (samples checked against their manifest), for readers such as
        Ray Data that open ``samples.parquet`` themselves."""
        return self._dataset_folder(self.resolve_dataset(name))

    def text_batches(self, name: str | None, column: str,
                     rows: int = 65_536) -> Iterator[list[str]]:
        """The dataset's text ``column`` in row order, ``rows`` at a time (nulls as ``""``),
        read record batch by record batch from ``samples.parquet``: what an encoder streams
        over, so the column is never in memory whole."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.dataset_path(name) / "samples.parquet")
        for batch in pf.iter_batches(batch_size=rows, columns=[column]):
            yield pc.fill_null(batch.column(0), "").to_pylist()

    def dataset(self, name: str | None = None) -> pl.LazyFrame:
        """The sample table as a lazy Polars frame (join selections on ``row_idx``)."""
        name = self.resolve_dataset(name)
        return pl.scan_parquet(self._dataset_folder(name) / "samples.parquet")

    # -- embeddings ----------------------------------------------------------------------
    @staticmethod
    def _embedding_meta(model: str, dim: int, n_rows: int, fingerprint: str,
                        normalized: bool, backend: dict | None = None) -> EmbeddingMeta:
        return EmbeddingMeta(model=model, dim=dim, n_rows=n_rows, normalized=normalized,
                             source_fingerprint=fingerprint, created_at=now_iso(),
                             backend=backend)

    @staticmethod
    def _embedding_row(dataset: str, meta: EmbeddingMeta, rel: str,
                       manifest: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": dataset, "model": meta.model, "dim": meta.dim,
                "n_rows": meta.n_rows, "path": rel,
                "fingerprint": manifest["vectors.npy"]["sha256"],
                "created_at": meta.created_at, "manifest": manifest}

    def write_embeddings(self, dataset: str, model: str,
                         vectors: np.ndarray | Iterable[np.ndarray], normalized: bool,
                         backend: dict | None = None, dim: int | None = None) -> EmbeddingMeta:
        """Store ``vectors`` as embedding ``model``, replacing an older version atomically
        (the old version's files are deleted after the catalog switched). ``vectors`` is an
        (N, d) array (a memory map included) or an iterable of (n_i, ``dim``) row batches —
        an encoder's output streamed to disk as it comes, never held whole; their rows must
        come to the dataset's N. A failure mid-stream leaves the store as it was. A list
        of rows (lists of numbers, or 1-D arrays) is one (N, d) array, not a stream."""
        info = self.dataset_info(dataset)
        if isinstance(vectors, (list, tuple)) and not (
                len(vectors) and getattr(vectors[0], "ndim", 0) == 2):
            try:
                vectors = np.asarray(vectors, dtype=np.float32)
            except (TypeError, ValueError):
                raise SchemaError(f"embeddings for {model!r}: rows must be numbers, all of "
                                  "one length") from None
        if isinstance(vectors, np.ndarray):
            if vectors.ndim != 2 or len(vectors) != info.n_rows:
                d = vectors.shape[1] if vectors.ndim == 2 else "d"
                raise SchemaError(f"embeddings for {model!r} must have shape ({info.n_rows}, "
                                  f"{d}); got {vectors.shape}")
            dim, vectors = int(vectors.shape[1]), array_batches(vectors)
        elif dim is None:
            raise UsageError("write_embeddings: give dim= with a stream of batches")
        meta = self._embedding_meta(model, dim, info.n_rows, info.fingerprint, normalized,
                                    backend)
        final = Path(info.path) / "embeddings" / f"{file_stem(model)}@{_hex()}"
        with files.staged_dir(final) as tmp:
            write_embeddings(tmp, vectors, meta)
            row = self._embedding_row(info.name, meta, self.relpath(final),
                                      integrity.manifest(tmp))
            self._replace_version("embeddings", "model", row, tmp, final)
        return meta

    def _replace_version(self, table: str, key: str, row: dict[str, Any], tmp: Path,
                         final: Path) -> None:
        """Publish a new version folder of an embedding or signal (``row``: its catalog row,
        keyed by ``dataset`` and ``key``), switch the catalog to it, then delete the versions
        it replaced (a kill before that leaves orphans for recovery, never a broken row)."""
        with self._writing():
            old = self.catalog.rows(f"SELECT path FROM {table} WHERE dataset = ? AND "
                                    f"{key} = ?", [row["dataset"], row[key]])
            self._publish(tmp, final,
                          lambda con: self.catalog.insert(con, table, row, replace=True))
            for r in old:  # the catalog no longer points at the old version
                path = self.abspath(r["path"])
                targets = embedding_files(path) if path.suffix == ".npy" else (path,)
                for p in targets:
                    files.remove_path(p)

    def embedding_models(self, dataset: str | None = None) -> list[str]:
        name = self.resolve_dataset(dataset)
        return [r["model"] for r in self.catalog.rows(
            "SELECT model FROM embeddings WHERE dataset = ? ORDER BY created_at, model", [name])]

    def embeddings(self, dataset: str | None = None,
                   model: str | None = None) -> tuple[np.ndarray, EmbeddingMeta]:
        """(N×d float32 memory map, sidecar). ``model=None`` takes the dataset's only/first one."""
        info = self.dataset_info(dataset)
        models = self.embedding_models(info.name)
        if model is None:
            if not models:
                raise NotFoundError(f"dataset {info.name!r} has no embeddings: run "
                                    f"`curate embed {info.name}`")
            model = models[0]
        elif model not in models:
            raise NotFoundError(f"dataset {info.name!r} has no embedding {model!r}; "
                                f"it has: {', '.join(models) or 'none'}")
        row = self.catalog.rows("SELECT path, manifest FROM embeddings WHERE dataset = ? AND "
                                "model = ?", [info.name, model])[0]
        path = self.abspath(row["path"])
        base = path.parent if path.suffix == ".npy" else path
        integrity.verify(base, _load(row["manifest"]),
                         f"embedding {model!r} of dataset {info.name!r}")
        return read_embeddings(path)

    # -- signals -------------------------------------------------------------------------
    def write_signals(self, dataset: str, name: str, signals: Signals) -> None:
        """Store loss trajectories under ``name``, replacing an older version atomically."""
        info = self.dataset_info(dataset)
        check_name(name, "signal")
        signals.validate(info.n_rows)
        final = Path(info.path) / "signals" / f"{name}@{_hex()}"
        with files.staged_dir(final) as tmp:
            signals.write(tmp)
            row = {"dataset": info.name, "name": name, "n_checkpoints": signals.n_checkpoints,
                   "n_train": len(signals.train_rows), "n_val": len(signals.val_rows),
                   "path": self.relpath(final), "meta": signals.meta,
                   "created_at": now_iso(), "manifest": integrity.manifest(tmp)}
            self._replace_version("signals", "name", row, tmp, final)

    def signal_names(self, dataset: str | None = None) -> list[str]:
        name = self.resolve_dataset(dataset)
        return [r["name"] for r in self.catalog.rows(
            "SELECT name FROM signals WHERE dataset = ? ORDER BY name", [name])]

    def signals(self, dataset: str | None = None, name: str | None = None) -> Signals:
        info = self.dataset_info(dataset)
        names = self.signal_names(info.name)
        if name is None:
            if not names:
                raise NotFoundError(f"dataset {info.name!r} has no signals: run "
                                    f"`curate signals train {info.name}`")
            name = "proxy" if "proxy" in names else names[0]
        elif name not in names:
            raise NotFoundError(f"dataset {info.name!r} has no signal {name!r}; it has: "
                                f"{', '.join(names) or 'none'}")
        row = self.catalog.rows("SELECT path, manifest FROM signals WHERE dataset = ? AND "
                                "name = ?", [info.name, name])[0]
        folder = self.abspath(row["path"])
        integrity.verify(folder, _load(row["manifest"]),
                         f"signal {name!r} of dataset {info.name!r}")
        return Signals.read(folder)

    # -- selections ----------------------------------------------------------------------
    def has_selection(self, selection_id: str) -> bool:
        return bool(self.catalog.rows("SELECT 1 FROM selections WHERE id = ?", [selection_id]))

    def write_selection(self, selection_id: str, table: pl.DataFrame,
                        provenance: dict[str, Any], run: dict[str, Any],
                        exist_ok: bool = False) -> Path:
        """Write ``selections/<id>/`` (table + provenance) and register it. Immutable: an
        existing id is an error, or (``exist_ok``, for content-addressed ids) the answer."""
        check_name(selection_id, "selection")
        if self.has_selection(selection_id) and not exist_ok:
            raise AlreadyExistsError(f"selection {selection_id!r} already exists")
        required = ["row_idx", "sample_id", "rank", "weight", "score"]
        if table.columns != required:
            raise SchemaError(f"selection table must have columns {required}; got {table.columns}")
        final = self.root / "selections" / selection_id
        with files.staged_dir(final) as tmp:
            files.write_parquet(tmp / "selection.parquet", table)
            files.write_json(tmp / "selection.json", {**provenance, "run": run})
            row = selection_row(selection_id, self.relpath(final), table.height, provenance,
                                run, integrity.manifest(tmp))
            with self._writing():
                if self.has_selection(selection_id):  # a concurrent writer made the same one
                    if exist_ok:
                        return final
                    raise AlreadyExistsError(f"selection {selection_id!r} already exists")
                self._publish(tmp, final,
                              lambda con: self.catalog.insert(con, "selections", row))
        return final

    def selections(self, dataset: str | None = None) -> pl.DataFrame:
        cols = "* EXCLUDE (manifest)"
        if dataset is None:
            frame = self.catalog.query(f"SELECT {cols} FROM selections ORDER BY created_at, id")
        else:
            frame = self.catalog.query(f"SELECT {cols} FROM selections WHERE dataset = ? "
                                       "ORDER BY created_at, id",
                                       [self.resolve_dataset(dataset)])
        return frame.with_columns(pl.col("path").map_elements(
            lambda p: str(self.abspath(p)), return_dtype=pl.String))

    def _selection_row(self, selection_id: str) -> dict[str, Any]:
        rows = self.catalog.rows("SELECT path, manifest FROM selections WHERE id = ?",
                                 [selection_id])
        if not rows:
            ids = self.catalog.query("SELECT id FROM selections")["id"].to_list()
            hint = did_you_mean(selection_id, ids, cutoff=0.6) or "; see `curate list`"
            raise NotFoundError(f"selection {selection_id!r} not found{hint}")
        return rows[0]

    def selection_path(self, selection_id: str) -> Path:
        return self.abspath(self._selection_row(selection_id)["path"])

    def read_selection(self, selection_id: str) -> tuple[pl.DataFrame, dict[str, Any]]:
        """(rows, provenance), after checking both files against the catalog's manifest."""
        row = self._selection_row(selection_id)
        path = self.abspath(row["path"])
        integrity.verify(path, _load(row["manifest"]), f"selection {selection_id!r}")
        return (pl.read_parquet(path / "selection.parquet"),
                files.read_json(path / "selection.json"))

    # -- artefacts: trained models and search indices (immutable folders) ------------------
    def _write_artifact(self, table: str, kind: str, write, meta: dict[str, Any],
                        sidecar: str, artifact_id: str | None = None) -> str:
        """Build ``<table>/<id>/`` with ``write(folder)`` plus a JSON sidecar, atomically, and
        register it (tables: ``models``, ``indices``)."""
        artifact_id = artifact_id or f"{check_name(kind, 'kind')}-{uuid.uuid4().hex[:10]}"
        check_name(artifact_id, "artefact")
        final = self.root / table / artifact_id
        taken = f"{sidecar} {artifact_id!r} already exists in {self.root}"
        if self._artifact_row(table, artifact_id) is not None:
            raise AlreadyExistsError(taken)
        with files.staged_dir(final) as tmp:
            write(tmp)
            files.write_json(tmp / f"{sidecar}.json", {"id": artifact_id, "kind": kind, **meta})
            row = {"id": artifact_id, "kind": kind, "path": self.relpath(final), "meta": meta,
                   "created_at": now_iso(), "manifest": integrity.manifest(tmp)}
            with self._writing():
                if self._artifact_row(table, artifact_id) is not None:
                    raise AlreadyExistsError(taken)
                self._publish(tmp, final, lambda con: self.catalog.insert(con, table, row))
        return artifact_id

    def _artifact_row(self, table: str, artifact_id: str) -> dict[str, Any] | None:
        rows = self.catalog.rows(f"SELECT path, manifest FROM {table} WHERE id = ?",
                                 [artifact_id])
        return rows[0] if rows else None

    def _artifact_path(self, table: str, artifact_id: str, hint: str) -> Path:
        what = "model" if table == "models" else "index"
        row = self._artifact_row(table, artifact_id)
        if row is None:
            raise NotFoundError(f"{what} {artifact_id!r} not found in {self.root}; {hint}")
        path = self.abspath(row["path"])
        integrity.verify(path, _load(row["manifest"]), f"{what} {artifact_id!r}")
        return path

    def write_model(self, kind: str, write, meta: dict[str, Any],
                    model_id: str | None = None) -> str:
        """Write ``models/<kind>-<hex>/`` (``write(folder)`` + ``model.json``); return its id
        (``model_id``: a content address the caller computed; else a random hex)."""
        return self._write_artifact("models", kind, write, meta, "model", artifact_id=model_id)

    def model_path(self, model_id: str) -> Path:
        return self._artifact_path("models", model_id, "see `curate list` for the stored models")

    def write_index(self, name: str, write, meta: dict[str, Any]) -> str:
        """Write ``indices/<name>/`` (``write(folder)`` + ``index.json``); return the name."""
        return self._write_artifact("indices", "faiss", write, meta, "index", artifact_id=name)

    def index_path(self, name: str) -> Path:
        return self._artifact_path("indices", name, "build one with `curate index build`")

    def models(self) -> pl.DataFrame:
        """Stored models (INSET/EquiVSet, teachers, syntheses, diffusion checkpoints)."""
        return self.catalog.query("SELECT id, kind, created_at FROM models ORDER BY "
                                  "created_at, id")

    def indices(self) -> list[str]:
        return [r["id"] for r in self.catalog.rows("SELECT id FROM indices ORDER BY id")]

    # -- integrity -----------------------------------------------------------------------
    def verify(self, full: bool = True) -> list[str]:
        """Check every registered artefact against its manifest; one line per problem."""
        problems = []
        for table, what in (("datasets", "name"), ("embeddings", "dataset || '/' || model"),
                            ("signals", "dataset || '/' || name"), ("selections", "id"),
                            ("models", "id"), ("indices", "id")):
            for row in self.catalog.rows(f"SELECT {what} AS key, path, manifest FROM {table}"):
                path = self.abspath(row["path"])
                base = path.parent if path.suffix == ".npy" else path
                try:
                    integrity.verify(base, _load(row["manifest"]),
                                     f"{table[:-1]} {row['key']!r}", full=full)
                except StoreError as exc:
                    problems.append(str(exc))
        return problems

    # -- SQL for notebooks ---------------------------------------------------------------
    def sql(self, query: str) -> pl.DataFrame:
        """Run read-only SQL (see ``stores.sql``). Views: the catalog tables (datasets,
        embeddings, signals, selections, models, indices, settings), one view per dataset
        named after it (its samples), and ``selection_rows`` (every selection's rows with a
        ``selection_id`` column)."""
        catalog = {}
        with store_lock(self.root, exclusive=False):
            con = duckdb.connect(str(self.catalog.path), read_only=True)
            try:
                for table in TABLES:
                    catalog[table] = con.sql(f'SELECT * FROM "{table}"').to_arrow_table()
            finally:
                con.close()
        datasets = {row["name"]: self.abspath(row["path"]) / "samples.parquet"
                    for row in catalog["datasets"].to_pylist()}
        selections = {row["id"]: self.abspath(row["path"]) / "selection.parquet"
                      for row in catalog["selections"].to_pylist()}
        return run_readonly_sql(query, catalog, datasets, selections)


def selection_row(selection_id: str, rel: str, n_selected: int, provenance: dict[str, Any],
                  run: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """The catalog row of a selection (also used by recovery to register an orphan)."""
    return {"id": selection_id, "dataset": provenance["dataset"],
            "method": provenance["method"], "budget": str(provenance["budget"]),
            "n_candidates": provenance["n_candidates"], "n_selected": n_selected,
            "seed": provenance["seed"], "params": provenance["params"], "path": rel,
            "created_at": run["created_at"], "wall_time_s": run["wall_time_s"],
            "manifest": manifest}


def _hex() -> str:
    return uuid.uuid4().hex[:8]


def _load(manifest: str | None) -> dict[str, Any] | None:
    import json

    return json.loads(manifest) if manifest else None


__all__ = ["DEFAULT_ROOT", "DatasetInfo", "Store", "check_name", "file_stem", "now_iso",
           "resolve_root", "selection_row"]
