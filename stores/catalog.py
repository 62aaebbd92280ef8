"""The DuckDB catalog: metadata about datasets, embeddings, signals and selections.

Bulk data never enters DuckDB (vectors in LIST columns blow its memory); the catalog holds
one row per artefact, the path of its folder *relative to the store root* (so a store is a
folder that can be copied or moved), and a content manifest (``stores.integrity``) that reads
check. Reads open the file read-only, so looking at a store never changes a byte of it.
Writes happen in one transaction, after the files they describe exist. Every connection holds
the store's lock (``stores.lock``): shared to read, exclusive to write, so concurrent
processes wait for each other instead of failing on DuckDB's file lock.

Schema versions: 1 stored absolute paths and no manifests; 2 (current) stores relative paths
and a ``manifest`` column. ``Catalog.migrate`` upgrades a version-1 catalog on open.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb
import polars as pl

from core.errors import StoreError
from stores import files
from stores.lock import store_lock

SCHEMA_VERSION = 2
# Top-level folders of a store: an old absolute path is re-rooted at the rightmost of these.
TOP_FOLDERS = ("datasets", "selections", "models", "indices")

_DDL = [
    """CREATE TABLE IF NOT EXISTS settings (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS datasets (
        name VARCHAR PRIMARY KEY, n_rows BIGINT, text_column VARCHAR, label_column VARCHAR,
        id_column VARCHAR, fingerprint VARCHAR, source VARCHAR, path VARCHAR,
        created_at VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS embeddings (
        dataset VARCHAR, model VARCHAR, dim INTEGER, n_rows BIGINT, path VARCHAR,
        fingerprint VARCHAR, created_at VARCHAR, PRIMARY KEY (dataset, model))""",
    """CREATE TABLE IF NOT EXISTS signals (
        dataset VARCHAR, name VARCHAR, n_checkpoints INTEGER, n_train BIGINT, n_val BIGINT,
        path VARCHAR, meta VARCHAR, created_at VARCHAR, PRIMARY KEY (dataset, name))""",
    """CREATE TABLE IF NOT EXISTS selections (
        id VARCHAR PRIMARY KEY, dataset VARCHAR, method VARCHAR, budget VARCHAR,
        n_candidates BIGINT, n_selected BIGINT, seed BIGINT, params VARCHAR, path VARCHAR,
        created_at VARCHAR, wall_time_s DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS models (
        id VARCHAR PRIMARY KEY, kind VARCHAR, path VARCHAR, meta VARCHAR, created_at VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS indices (
        id VARCHAR PRIMARY KEY, kind VARCHAR, path VARCHAR, meta VARCHAR, created_at VARCHAR)""",
]

TABLES = ("settings", "datasets", "embeddings", "signals", "selections", "models", "indices")
ARTEFACT_TABLES = ("datasets", "embeddings", "signals", "selections", "models", "indices")


def relative_path(stored: str) -> str:
    """A catalog path as a store-relative POSIX path (legacy absolute paths re-rooted)."""
    p = PurePosixPath(stored)
    if not p.is_absolute():
        return str(p)
    parts = p.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in TOP_FOLDERS:
            return str(PurePosixPath(*parts[i:]))
    raise StoreError(f"catalog path {stored!r} is not inside a store folder")


class Catalog:
    """Thin wrapper over ``catalog.duckdb``: short-lived connections, typed helpers."""

    def __init__(self, path: Path, lock_root: Path | None = None):
        self.path = Path(path)
        self.lock_root = Path(lock_root) if lock_root is not None else self.path.parent

    def create(self) -> None:
        """Create the tables in a new catalog file (no lock: the file is not published yet)."""
        con = duckdb.connect(str(self.path))
        try:
            for ddl in _DDL:
                con.execute(ddl)
            for table in ARTEFACT_TABLES:
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS manifest VARCHAR")
            con.execute("INSERT OR REPLACE INTO settings VALUES ('schema_version', ?)",
                        [str(SCHEMA_VERSION)])
        finally:
            con.close()

    def migrate(self) -> bool:
        """Upgrade an older catalog in place (one transaction); True if anything changed."""
        version = self.get_setting("schema_version")
        if version is not None and int(version) >= SCHEMA_VERSION:
            return False
        with self.transaction() as con:
            for ddl in _DDL:  # tables added after version 1 (models, indices)
                con.execute(ddl)
            for table in ARTEFACT_TABLES:
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS manifest VARCHAR")
                keys = KEYS[table]
                rows = con.execute(f"SELECT {', '.join(keys)}, path FROM {table}").fetchall()
                for *key, path in rows:
                    if path is None:
                        continue
                    rel = relative_path(path)
                    if rel != path:
                        where = " AND ".join(f"{k} = ?" for k in keys)
                        con.execute(f"UPDATE {table} SET path = ? WHERE {where}", [rel, *key])
            con.execute("INSERT OR REPLACE INTO settings VALUES ('schema_version', ?)",
                        [str(SCHEMA_VERSION)])
        return True

    @contextlib.contextmanager
    def _connect(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        with store_lock(self.lock_root, exclusive=not read_only):
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open catalog {self.path}: "
                                 f"{str(exc).splitlines()[0]}") from exc
            try:
                yield con
            finally:
                con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: all statements land, or none do."""
        with self._connect(read_only=False) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                files.fault_point("catalog-insert")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        with self._connect(read_only=True) as con:
            return con.sql(sql, params=params or None).pl()

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return self.query(sql, params).to_dicts()

    def insert(self, con: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any],
               replace: bool = False) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        values = [json.dumps(v, sort_keys=True, default=str) if isinstance(v, dict) else v
                  for v in row.values()]
        con.execute(f"{verb} INTO {table} ({cols}) VALUES ({marks})", values)

    def get_setting(self, key: str) -> str | None:
        rows = self.rows("SELECT value FROM settings WHERE key = ?", [key])
        return rows[0]["value"] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value])


KEYS = {"datasets": ("name",), "embeddings": ("dataset", "model"),
         "signals": ("dataset", "name"), "selections": ("id",), "models": ("id",),
         "indices": ("id",)}
