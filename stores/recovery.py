"""Recovery after a killed writer: ``curate gc`` and the quick check ``Store.open`` runs.

A writer stages its files in ``.tmp-<host>-<pid>-…`` folders, then (holding the store's
exclusive lock) renames the folder into place and registers it in one catalog transaction.
A ``kill -9`` can therefore leave only two kinds of debris, and both are resolved here while
holding the exclusive lock (so no live writer is between its rename and its insert):

- **temp leftovers** whose writer is dead (same host, pid gone; another host's are left to
  that host, or to ``gc --all-hosts``) are deleted;
- **orphan folders** (renamed, never registered) are registered when that is what the
  request would have done and the folder is complete — a selection, whose id is a content
  address, so a re-run of the same request then finds it — and deleted otherwise (datasets,
  embedding/signal versions, models, indices: a re-run rebuilds them under the same name).

``gc`` also drops catalog rows whose folders were deleted by hand, and replaced versions
that a killed writer did not get to delete. ``Store.open`` runs the same pass without waiting
(``wait=False``): if another process holds the lock, it skips and leaves the work to the
next open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from core.errors import StoreError
from stores import files, integrity
from stores.catalog import KEYS
from stores.lock import StoreBusyError, store_lock

if TYPE_CHECKING:
    from stores.store import Store


@dataclass
class RecoveryReport:
    removed_temp: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    removed_orphans: list[str] = field(default_factory=list)
    dropped_rows: list[str] = field(default_factory=list)
    skipped_busy: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.removed_temp or self.registered or self.removed_orphans
                    or self.dropped_rows)

    def to_json(self) -> dict:
        return {"removed_temp": self.removed_temp, "registered": self.registered,
                "removed_orphans": self.removed_orphans, "dropped_rows": self.dropped_rows,
                "skipped_busy": self.skipped_busy}


def _containers(root: Path) -> list[Path]:
    """Folders in which writers create entries (one level each, never a deep walk)."""
    out = [root, root / "datasets", root / "selections", root / "models", root / "indices"]
    ds = root / "datasets"
    if ds.is_dir():
        for d in ds.iterdir():
            if d.is_dir() and not d.name.startswith(files.TMP_PREFIX):
                out += [d, d / "embeddings", d / "signals"]
    return [c for c in out if c.is_dir()]


def _dead_temps(root: Path, all_hosts: bool) -> list[Path]:
    dead = []
    for folder in _containers(root):
        for p in folder.iterdir():
            if not p.name.startswith(files.TMP_PREFIX):
                continue
            owner = files.tmp_owner(p.name)
            if (all_hosts and owner is not None and owner[0] != files.HOST) \
                    or not files.owner_alive(owner):
                dead.append(p)
    return dead


def _registered(st: Store) -> dict[str, set[str]]:
    """Store-relative paths the catalog points at, by table."""
    out = {}
    for table in ("datasets", "embeddings", "signals", "selections", "models", "indices"):
        out[table] = {st.relpath(st.abspath(r["path"]))
                      for r in st.catalog.rows(f"SELECT path FROM {table}")}
    legacy = {p[:-4] + ".json" for p in out["embeddings"] if p.endswith(".npy")}
    out["embeddings"] |= legacy
    return out


def _orphans(st: Store, reg: dict[str, set[str]]) -> list[tuple[str, Path]]:
    """(table, path) of every entry on disk that the catalog does not point at."""
    root, out = st.root, []

    def scan(folder: Path, table: str) -> None:
        if folder.is_dir():
            for p in folder.iterdir():
                if not p.name.startswith(files.TMP_PREFIX) and st.relpath(p) not in reg[table]:
                    out.append((table, p))

    for table in ("datasets", "selections", "models", "indices"):
        scan(root / table, table)
    for rel in reg["datasets"]:
        scan(root / rel / "embeddings", "embeddings")
        scan(root / rel / "signals", "signals")
    return out


def _register_selection(st: Store, folder: Path, con) -> bool:
    """Register an orphan selection folder if it is complete; False if it is not."""
    from stores.store import selection_row

    try:
        prov = files.read_json(folder / "selection.json")
        n = pl.scan_parquet(folder / "selection.parquet").select(pl.len()).collect().item()
        row = selection_row(folder.name, st.relpath(folder), n, prov, prov["run"],
                            integrity.manifest(folder, [folder / "selection.parquet",
                                                        folder / "selection.json"]))
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError,
            pl.exceptions.PolarsError):
        return False
    if not con.execute("SELECT 1 FROM datasets WHERE name = ?", [row["dataset"]]).fetchall():
        return False
    st.catalog.insert(con, "selections", row)
    return True


def _dangling(st: Store) -> list[tuple[str, str, list]]:
    """Catalog rows whose files are gone: (table, label, key values)."""
    out = []
    for table, cols in KEYS.items():
        for r in st.catalog.rows(f"SELECT {', '.join(cols)}, path FROM {table}"):
            if not st.abspath(r["path"]).exists():
                out.append((table, "/".join(str(r[c]) for c in cols), [r[c] for c in cols]))
    return out


def recover(st: Store, *, wait: bool = True, drop_dangling: bool = False,
            all_hosts: bool = False) -> RecoveryReport:
    """Remove dead writers' debris (see the module docs). ``wait=False`` gives up at once
    when another process holds the lock."""
    report = RecoveryReport()
    reg = _registered(st)
    temps = _dead_temps(st.root, all_hosts)
    orphans = _orphans(st, reg)
    dangling = _dangling(st) if drop_dangling else []
    if not (temps or orphans or dangling):
        return report  # the common case: nothing to do, no exclusive lock taken
    try:
        with store_lock(st.root, exclusive=True, timeout_s=None if wait else 0.0):
            reg = _registered(st)  # again, under the lock
            for p in _dead_temps(st.root, all_hosts):
                files.remove_path(p)
                report.removed_temp.append(st.relpath(p))
            orphans = _orphans(st, reg)
            dangling = _dangling(st) if drop_dangling else []
            with st.catalog.transaction() as con:
                for table, p in orphans:
                    if table == "selections" and _register_selection(st, p, con):
                        report.registered.append(st.relpath(p))
                for table, cols, values in dangling:
                    where = " AND ".join(f"{k} = ?" for k in KEYS[table])
                    con.execute(f"DELETE FROM {table} WHERE {where}", values)
                    report.dropped_rows.append(f"{table}:{cols}")
            for _table, p in orphans:
                if st.relpath(p) not in report.registered:
                    files.remove_path(p)
                    report.removed_orphans.append(st.relpath(p))
    except StoreBusyError:
        if wait:
            raise
        report.skipped_busy = True
    except OSError as exc:
        raise StoreError(f"recovery of {st.root} failed: {exc}") from exc
    return report
