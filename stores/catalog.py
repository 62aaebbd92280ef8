"""The DuckDB catalog: metadata about datasets, embeddings, signals and selections.

Bulk data never enters DuckDB (vectors in LIST columns blow its memory); the catalog holds
one row per artefact and the path of its files. Reads open the file read-only, so looking
at a store never changes a byte of it. Writes happen in one transaction, after the files
they describe exist.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from stores.errors import StoreError

SCHEMA_VERSION = 1

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
MODELS_DDL = _DDL[-2]
INDICES_DDL = _DDL[-1]


class Catalog:
    """Thin wrapper over ``catalog.duckdb``: short-lived connections, typed helpers."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def create(self) -> None:
        with self._connect(read_only=False) as con:
            for ddl in _DDL:
                con.execute(ddl)
            con.execute(
                "INSERT OR REPLACE INTO settings VALUES ('schema_version', ?)",
                [str(SCHEMA_VERSION)],
            )

    @contextlib.contextmanager
    def _connect(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open catalog {self.path}: {exc}") from exc
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
        values = [json.dumps(v, sort_keys=True) if isinstance(v, dict) else v
                  for v in row.values()]
        con.execute(f"{verb} INTO {table} ({cols}) VALUES ({marks})", values)

    def get_setting(self, key: str) -> str | None:
        rows = self.rows("SELECT value FROM settings WHERE key = ?", [key])
        return rows[0]["value"] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value])
