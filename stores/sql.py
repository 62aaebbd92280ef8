"""``curate sql`` / ``Store.sql``: read-only SQL over views of the store, and nothing else.

The query runs on a fresh in-memory DuckDB database that never sees the catalog file: the
catalog tables are copied in as Arrow tables (they are metadata, a few rows per artefact),
each dataset becomes a view over its ``samples.parquet`` and ``selection_rows`` a view over
every ``selection.parquet``. Then the connection is sealed:

- ``allowed_paths`` lists exactly those Parquet files, ``enable_external_access = false``
  refuses every other file (``read_csv('/etc/passwd')``, ``COPY … TO``, ``ATTACH``,
  ``INSTALL``/``LOAD``), and ``lock_configuration = true`` stops a query from undoing that;
- only ``SELECT`` (and ``EXPLAIN``) statements run, checked on DuckDB's own parse of the
  text, so ``ATTACH``/``DETACH``/``COPY``/``SET``/``PRAGMA``/DDL/DML are refused by name.

Every refusal is one ``UsageError`` line.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from core.errors import UsageError

ALLOWED = ("SELECT", "EXPLAIN")


def _quote(text: str) -> str:
    return text.replace("'", "''")


def run_readonly_sql(query: str, catalog: dict[str, pa.Table], datasets: dict[str, Path],
                     selections: dict[str, Path]) -> pl.DataFrame:
    """Run ``query`` over the given catalog tables, dataset files and selection files."""
    if not isinstance(query, str) or not query.strip():
        raise UsageError("SQL query is empty")
    con = duckdb.connect(":memory:")
    try:
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from None
        if not statements:
            raise UsageError("SQL query is empty")
        for st in statements:
            kind = st.type.name
            if kind not in ALLOWED:
                raise UsageError(f"curate sql is read-only: {kind} statements are refused; "
                                 "only SELECT (and EXPLAIN) run, over the store's views")
        if len(statements) > 1:
            raise UsageError("curate sql runs one statement at a time; "
                             f"got {len(statements)}")
        for name, table in catalog.items():
            con.register(f"_cat_{name}", table)
            con.execute(f'CREATE VIEW "{name}" AS SELECT * EXCLUDE (manifest) '
                        f'FROM "_cat_{name}"' if "manifest" in table.column_names else
                        f'CREATE VIEW "{name}" AS SELECT * FROM "_cat_{name}"')
        for name, path in datasets.items():
            con.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM "
                        f"read_parquet('{_quote(str(path))}')")
        if selections:
            paths = ", ".join(f"'{_quote(str(p))}'" for p in selections.values())
            con.execute("CREATE VIEW selection_rows AS SELECT "
                        "regexp_extract(filename, '([^/]+)/selection.parquet$', 1) "
                        "AS selection_id, * EXCLUDE (filename) "
                        f"FROM read_parquet([{paths}], filename = true)")
        allowed = [str(p) for p in (*datasets.values(), *selections.values())]
        con.execute("SET allowed_paths = ?", [allowed])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            return con.sql(query).pl()
        except duckdb.Error as exc:
            raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
