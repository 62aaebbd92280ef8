"""``Store``: the one entry point to a Curate workspace.

Layout of a workspace (default ``./.curate``; ``--store DIR`` or ``CURATE_HOME`` override)::

    catalog.duckdb                         metadata (see catalog.py)
    datasets/<name>/samples.parquet        row_idx, sample_id, split, user columns
    datasets/<name>/dataset.json           ingest spec, fingerprint, source
    datasets/<name>/embeddings/<model>.npy (+ .json sidecar)
    datasets/<name>/signals/<signal>/      loss trajectories (see signals.py)
    selections/<id>/selection.parquet      row_idx, sample_id, rank, weight, score
    selections/<id>/selection.json         provenance

Every write builds its files first (atomically) and registers them in the catalog in one
transaction afterwards; readers go through the catalog, so they never see half a write.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from stores import files
from stores.catalog import TABLES, Catalog
from stores.embeddings import EmbeddingMeta, file_stem, read_embeddings, write_embeddings
from stores.errors import AlreadyExistsError, NotFoundError, SchemaError, StoreError, UsageError
from stores.ingest import IngestSpec, extract_vectors, prepare_samples, read_table
from stores.signals import Signals

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
        self.catalog = Catalog(self.root / "catalog.duckdb")

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path | None = None) -> Store:
        path = resolve_root(root)
        if not (path / "catalog.duckdb").is_file():
            raise NotFoundError(f"no Curate store at {path}: run `curate init` "
                                "(or `curate init --default`), or pass --store DIR")
        return cls(path)

    @classmethod
    def create(cls, root: str | Path | None = None, exist_ok: bool = True) -> Store:
        path = resolve_root(root)
        if (path / "catalog.duckdb").is_file():
            if not exist_ok:
                raise AlreadyExistsError(f"a Curate store already exists at {path}")
            return cls(path)
        if path.exists() and not path.is_dir():
            raise UsageError(f"cannot create a store at {path}: it is a file")
        path.mkdir(parents=True, exist_ok=True)
        for sub in ("datasets", "selections"):
            (path / sub).mkdir(exist_ok=True)
        # Build the catalog under a temp name, then rename: no half-made store on a crash.
        tmp = path / f"{files.TMP_PREFIX}catalog.duckdb"
        tmp.unlink(missing_ok=True)
        Catalog(tmp).create()
        os.replace(tmp, path / "catalog.duckdb")
        return cls(path)

    # -- datasets ------------------------------------------------------------------------
    def datasets(self) -> pl.DataFrame:
        return self.catalog.query("SELECT * FROM datasets ORDER BY name")

    def has_dataset(self, name: str) -> bool:
        return bool(self.catalog.rows("SELECT 1 FROM datasets WHERE name = ?", [name]))

    def dataset_info(self, name: str | None = None) -> DatasetInfo:
        name = self.resolve_dataset(name)
        rows = self.catalog.rows("SELECT * FROM datasets WHERE name = ?", [name])
        return DatasetInfo(**rows[0])

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

    def ingest(self, path: str | Path, name: str, spec: IngestSpec) -> DatasetInfo:
        """Read, validate and add a file as dataset ``name``. Vectors (if any) become the
        embedding ``"ingested"``."""
        frame = read_table(path)
        vectors = (extract_vectors(frame, spec.vector_column, str(path))
                   if spec.vector_column else None)
        info = self.add_dataset(frame, name, spec, source=str(Path(path).absolute()))
        if vectors is not None:
            self.write_embeddings(name, "ingested", vectors, normalized=False)
        return info

    def add_dataset(self, frame: pl.DataFrame, name: str, spec: IngestSpec,
                    source: str = "<frame>") -> DatasetInfo:
        check_name(name)
        if self.has_dataset(name):
            raise AlreadyExistsError(f"dataset {name!r} already exists in {self.root}; "
                                     "choose another --name")
        samples = prepare_samples(frame, spec, source)
        final = self.root / "datasets" / name
        if final.exists():  # left by a crash before registration: not in the catalog
            raise StoreError(f"{final} exists but is not in the catalog; remove it and retry")
        with files.atomic_dir(final) as tmp:
            files.write_parquet(tmp / "samples.parquet", samples)
            fingerprint = files.sha256_file(tmp / "samples.parquet")
            files.write_json(tmp / "dataset.json", {"spec": asdict(spec), "source": source,
                                                    "fingerprint": fingerprint})
        info = DatasetInfo(name=name, n_rows=samples.height, text_column=spec.text_column,
                           label_column=spec.label_column, id_column=spec.id_column,
                           fingerprint=fingerprint, source=source, path=str(final),
                           created_at=now_iso())
        try:
            with self.catalog.transaction() as con:
                self.catalog.insert(con, "datasets", asdict(info))
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        return info

    def samples(self, name: str | None = None, columns: list[str] | None = None) -> pl.DataFrame:
        return self.dataset(name).select(columns or pl.all()).collect()

    def dataset(self, name: str | None = None) -> pl.LazyFrame:
        """The sample table as a lazy Polars frame (join selections on ``row_idx``)."""
        info = self.dataset_info(name)
        return pl.scan_parquet(Path(info.path) / "samples.parquet")

    # -- embeddings ----------------------------------------------------------------------
    def write_embeddings(self, dataset: str, model: str, array: np.ndarray,
                         normalized: bool) -> EmbeddingMeta:
        info = self.dataset_info(dataset)
        meta = EmbeddingMeta(model=model, dim=int(array.shape[1]) if array.ndim == 2 else -1,
                             n_rows=info.n_rows, normalized=normalized,
                             source_fingerprint=info.fingerprint, created_at=now_iso())
        npy = write_embeddings(Path(info.path) / "embeddings", array, meta)
        with self.catalog.transaction() as con:
            self.catalog.insert(con, "embeddings", {
                "dataset": info.name, "model": model, "dim": meta.dim, "n_rows": meta.n_rows,
                "path": str(npy), "fingerprint": files.sha256_file(npy),
                "created_at": meta.created_at}, replace=True)
        return meta

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
        return read_embeddings(Path(info.path) / "embeddings", model)

    # -- signals -------------------------------------------------------------------------
    def write_signals(self, dataset: str, name: str, signals: Signals) -> None:
        """Store loss trajectories under ``name``, replacing an older version atomically."""
        info = self.dataset_info(dataset)
        check_name(name, "signal")
        signals.validate(info.n_rows)
        parent = Path(info.path) / "signals"
        parent.mkdir(exist_ok=True)
        version = f"{name}@{uuid.uuid4().hex[:8]}"
        with files.atomic_dir(parent / version) as tmp:
            signals.write(tmp)
        old = self.catalog.rows("SELECT path FROM signals WHERE dataset = ? AND name = ?",
                                [info.name, name])
        with self.catalog.transaction() as con:
            self.catalog.insert(con, "signals", {
                "dataset": info.name, "name": name, "n_checkpoints": signals.n_checkpoints,
                "n_train": len(signals.train_rows), "n_val": len(signals.val_rows),
                "path": str(parent / version), "meta": signals.meta,
                "created_at": now_iso()}, replace=True)
        for row in old:  # the catalog no longer points at the old version
            shutil.rmtree(row["path"], ignore_errors=True)

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
        row = self.catalog.rows("SELECT path FROM signals WHERE dataset = ? AND name = ?",
                                [info.name, name])[0]
        return Signals.read(Path(row["path"]))

    # -- selections ----------------------------------------------------------------------
    def has_selection(self, selection_id: str) -> bool:
        return bool(self.catalog.rows("SELECT 1 FROM selections WHERE id = ?", [selection_id]))

    def write_selection(self, selection_id: str, table: pl.DataFrame,
                        provenance: dict[str, Any], run: dict[str, Any]) -> Path:
        """Write ``selections/<id>/`` (table + provenance) and register it. Immutable: an
        existing id is an error."""
        if self.has_selection(selection_id):
            raise AlreadyExistsError(f"selection {selection_id!r} already exists")
        required = ["row_idx", "sample_id", "rank", "weight", "score"]
        if table.columns != required:
            raise SchemaError(f"selection table must have columns {required}; got {table.columns}")
        final = self.root / "selections" / selection_id
        if final.exists():
            raise StoreError(f"{final} exists but is not in the catalog; remove it and retry")
        with files.atomic_dir(final) as tmp:
            files.write_parquet(tmp / "selection.parquet", table)
            files.write_json(tmp / "selection.json", {**provenance, "run": run})
        try:
            with self.catalog.transaction() as con:
                self.catalog.insert(con, "selections", {
                    "id": selection_id, "dataset": provenance["dataset"],
                    "method": provenance["method"], "budget": str(provenance["budget"]),
                    "n_candidates": provenance["n_candidates"],
                    "n_selected": table.height, "seed": provenance["seed"],
                    "params": provenance["params"], "path": str(final),
                    "created_at": run["created_at"], "wall_time_s": run["wall_time_s"]})
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        return final

    def selections(self, dataset: str | None = None) -> pl.DataFrame:
        if dataset is None:
            return self.catalog.query("SELECT * FROM selections ORDER BY created_at, id")
        return self.catalog.query("SELECT * FROM selections WHERE dataset = ? "
                                  "ORDER BY created_at, id", [self.resolve_dataset(dataset)])

    def selection_path(self, selection_id: str) -> Path:
        rows = self.catalog.rows("SELECT path FROM selections WHERE id = ?", [selection_id])
        if not rows:
            ids = self.selections()["id"].to_list()
            close = difflib.get_close_matches(selection_id, ids, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see `curate list`"
            raise NotFoundError(f"selection {selection_id!r} not found{hint}")
        return Path(rows[0]["path"])

    def read_selection(self, selection_id: str) -> tuple[pl.DataFrame, dict[str, Any]]:
        path = self.selection_path(selection_id)
        return (pl.read_parquet(path / "selection.parquet"),
                files.read_json(path / "selection.json"))

    # -- artefacts: trained models and search indices (immutable folders) ------------------
    def _write_artifact(self, table: str, kind: str, write, meta: dict[str, Any],
                        sidecar: str, artifact_id: str | None = None) -> str:
        """Build ``<table>/<id>/`` with ``write(folder)`` plus a JSON sidecar, atomically, and
        register it (tables: ``models``, ``indices``)."""
        from stores import catalog

        ddl = {"models": catalog.MODELS_DDL, "indices": catalog.INDICES_DDL}[table]
        artifact_id = artifact_id or f"{check_name(kind, 'kind')}-{uuid.uuid4().hex[:10]}"
        check_name(artifact_id, "artefact")
        final = self.root / table / artifact_id
        if final.exists():
            raise AlreadyExistsError(f"{sidecar} {artifact_id!r} already exists in {self.root}")
        final.parent.mkdir(exist_ok=True)
        with files.atomic_dir(final) as tmp:
            write(tmp)
            files.write_json(tmp / f"{sidecar}.json", {"id": artifact_id, "kind": kind, **meta})
        try:
            with self.catalog.transaction() as con:
                con.execute(ddl)  # stores made before this table existed
                self.catalog.insert(con, table, {"id": artifact_id, "kind": kind,
                                                 "path": str(final), "meta": meta,
                                                 "created_at": now_iso()})
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        return artifact_id

    def _artifact_path(self, table: str, artifact_id: str, hint: str) -> Path:
        try:
            rows = self.catalog.rows(f"SELECT path FROM {table} WHERE id = ?", [artifact_id])
        except duckdb.CatalogException:
            rows = []
        if not rows:
            raise NotFoundError(f"{'model' if table == 'models' else 'index'} {artifact_id!r} "
                                f"not found in {self.root}; {hint}")
        return Path(rows[0]["path"])

    def write_model(self, kind: str, write, meta: dict[str, Any]) -> str:
        """Write ``models/<kind>-<hex>/`` (``write(folder)`` + ``model.json``); return its id."""
        return self._write_artifact("models", kind, write, meta, "model")

    def model_path(self, model_id: str) -> Path:
        return self._artifact_path("models", model_id, "see `curate list` for the stored models")

    def write_index(self, name: str, write, meta: dict[str, Any]) -> str:
        """Write ``indices/<name>/`` (``write(folder)`` + ``index.json``); return the name."""
        return self._write_artifact("indices", "faiss", write, meta, "index", artifact_id=name)

    def index_path(self, name: str) -> Path:
        return self._artifact_path("indices", name, "build one with `curate index build`")

    def models(self) -> pl.DataFrame:
        """Stored models (INSET/EquiVSet, teachers, syntheses, diffusion checkpoints)."""
        try:
            return self.catalog.query("SELECT id, kind, created_at FROM models ORDER BY "
                                      "created_at, id")
        except duckdb.CatalogException:
            return pl.DataFrame(schema={"id": pl.String, "kind": pl.String,
                                        "created_at": pl.String})

    def indices(self) -> list[str]:
        try:
            return [r["id"] for r in self.catalog.rows("SELECT id FROM indices ORDER BY id")]
        except duckdb.CatalogException:
            return []

    # -- SQL for notebooks ---------------------------------------------------------------
    def sql(self, query: str) -> pl.DataFrame:
        """Run read-only SQL. Views: the catalog tables (datasets, embeddings, signals,
        selections, settings), one view per dataset named after it (its samples), and
        ``selection_rows`` (every selection's rows with a ``selection_id`` column)."""
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH '{self.catalog.path}' AS cat (READ_ONLY)")
            present = {r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'cat'").fetchall()}
            for table in TABLES:
                if table in present:
                    con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM cat."{table}"')
            for row in con.execute("SELECT name, path FROM cat.datasets").fetchall():
                samples = Path(row[1]) / "samples.parquet"
                con.execute(f"CREATE VIEW \"{row[0]}\" AS SELECT * FROM "
                            f"read_parquet('{_sql_str(samples)}')")
            sel = [r[0] for r in con.execute("SELECT path FROM cat.selections").fetchall()]
            if sel:
                paths = ", ".join(f"'{_sql_str(Path(p) / 'selection.parquet')}'" for p in sel)
                con.execute("CREATE VIEW selection_rows AS SELECT "
                            "regexp_extract(filename, '([^/]+)/selection.parquet$', 1) "
                            "AS selection_id, * EXCLUDE (filename) "
                            f"FROM read_parquet([{paths}], filename = true)")
            try:
                return con.sql(query).pl()
            except duckdb.Error as exc:
                raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from exc
        finally:
            con.close()


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


__all__ = ["DEFAULT_ROOT", "DatasetInfo", "Store", "check_name", "file_stem", "now_iso",
           "resolve_root"]
