"""The store protects itself: outputs never land inside a store or over a file, artefacts
are verified on read, a store is a folder (copy/move), old stores migrate, concurrent
writers wait for each other, and ``curate sql`` is read-only (issue: reliability §1-3, §5)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

import curate
from curate.cli import main
from stores import Store, StoreError, UsageError
from stores.integrity import CorruptArtefactError
from stores.lock import store_lock
from tests.conftest import tree_hash

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def with_selection(synthetic_store):
    sel = curate.select(method="random", budget=10, store=synthetic_store, seed=0)
    return synthetic_store, sel


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    got = capsys.readouterr()
    return code, got.out, got.err


# -- 1. outputs never damage a store -----------------------------------------------------
@pytest.mark.parametrize("target", ["catalog.duckdb", "selection", "new-file-in-store"])
def test_export_refuses_paths_inside_the_store(with_selection, capsys, target):
    st, sel = with_selection
    other = curate.select(method="random", budget=10, store=st, seed=1)
    out = {"catalog.duckdb": st.root / "catalog.duckdb",
           "selection": other.path / "selection.parquet",
           "new-file-in-store": st.root / "datasets" / "x.csv"}[target]
    before = tree_hash(st.root)
    code, _, err = _cli(capsys, "--store", str(st.root), "export", sel.id, "--format", "csv",
                        "--out", str(out))
    assert code == 2 and "inside the Curate store" in err and len(err.splitlines()) == 1
    assert tree_hash(st.root) == before
    assert _cli(capsys, "--store", str(st.root), "show", other.id, "--json")[0] == 0


def test_export_refuses_to_overwrite_unless_asked(with_selection, tmp_path, capsys):
    st, sel = with_selection
    out = tmp_path / "rows.parquet"
    out.write_text("precious")
    code, _, err = _cli(capsys, "--store", str(st.root), "export", sel.id, "--out", str(out))
    assert code == 2 and "refusing to overwrite" in err and out.read_text() == "precious"
    assert _cli(capsys, "--store", str(st.root), "export", sel.id, "--out", str(out),
                "--overwrite")[0] == 0
    assert pl.read_parquet(out).height == 10


def test_export_through_a_symlink_into_the_store_is_refused(with_selection, tmp_path,
                                                           capsys):
    st, sel = with_selection
    link = tmp_path / "link"
    link.symlink_to(st.root / "datasets")
    code, _, err = _cli(capsys, "--store", str(st.root), "export", sel.id,
                        "--out", str(link / "rows.parquet"))
    assert code == 2 and "inside the Curate store" in err


def test_calibrate_refuses_a_store_path_and_existing_files(synthetic_store, tmp_path, capsys):
    from tests.test_calibration import relevance_pool

    src = tmp_path / "pool.parquet"
    relevance_pool().write_parquet(src)
    before = tree_hash(synthetic_store.root)
    code, _, err = _cli(capsys, "calibrate", str(src), "--metrics", "m=1",
                        "--out", str(synthetic_store.root / "catalog.duckdb"))
    assert code == 2 and tree_hash(synthetic_store.root) == before
    (tmp_path / "cal.diagnostics.parquet").write_text("keep")
    code, _, err = _cli(capsys, "calibrate", str(src), "--metrics", "m=1",
                        "--out", str(tmp_path / "cal.parquet"))
    assert code == 2 and "refusing to overwrite" in err
    assert (tmp_path / "cal.diagnostics.parquet").read_text() == "keep"


def test_a_tampered_selection_is_a_clear_error(with_selection, capsys):
    st, sel = with_selection
    other = curate.select(method="random", budget=12, store=st, seed=5)
    shutil.copyfile(other.path / "selection.parquet", sel.path / "selection.parquet")
    code, _, err = _cli(capsys, "--store", str(st.root), "show", sel.id)
    assert code == 1 and f"selection {sel.id!r} is damaged" in err
    with pytest.raises(CorruptArtefactError, match="is damaged"):
        curate.load_selection(st, sel.id)
    assert any(sel.id in p for p in st.verify())


def test_tampered_embeddings_and_signals_are_detected(synthetic_store):
    emb = next((synthetic_store.root / "datasets" / "blobs" / "embeddings").iterdir())
    with open(emb / "vectors.npy", "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x00\x80\x7f")
    with pytest.raises(CorruptArtefactError, match="embedding 'ingested'"):
        synthetic_store.embeddings("blobs")
    sig = next((synthetic_store.root / "datasets" / "blobs" / "signals").iterdir())
    (sig / "train_losses.npy").unlink()
    with pytest.raises(CorruptArtefactError, match="missing"):
        synthetic_store.signals("blobs")


# -- 2. a store is a folder ----------------------------------------------------------------
def test_a_copied_store_is_independent(with_selection, tmp_path):
    st, _ = with_selection
    original = tree_hash(st.root)
    copy = tmp_path / "copy"
    shutil.copytree(st.root, copy)
    cp = Store.open(copy)
    from curate.signals import train_signals

    train_signals(cp, "blobs", epochs=3, seed=1)  # replaces the copy's signals
    import numpy as np

    cp.write_embeddings("blobs", "other", np.ones((400, 3), np.float32), normalized=False)
    curate.select(method="random", budget=7, store=cp, seed=9)
    assert tree_hash(st.root) == original
    shutil.rmtree(st.root)  # the copy never needed the original
    assert Store.open(copy).signals("blobs").n_checkpoints == 3
    assert len(Store.open(copy).selections()) == 2


def _make_legacy(root: Path) -> None:
    """Turn a store into what schema version 1 wrote: absolute paths, no manifests."""
    con = duckdb.connect(str(root / "catalog.duckdb"))
    for table in ("datasets", "embeddings", "signals", "selections", "models", "indices"):
        con.execute(f"UPDATE {table} SET path = ? || '/' || path", [str(root)])
        con.execute(f"ALTER TABLE {table} DROP COLUMN manifest")
    con.execute("UPDATE settings SET value = '1' WHERE key = 'schema_version'")
    con.close()


def test_old_stores_with_absolute_paths_migrate_on_open(with_selection, tmp_path):
    st, sel = with_selection
    _make_legacy(st.root)
    moved = tmp_path / "moved"
    shutil.move(st.root, moved)  # the original location is gone
    m = Store.open(moved)
    assert m.catalog.get_setting("schema_version") == "2"
    paths = m.catalog.rows("SELECT path FROM datasets UNION ALL SELECT path FROM selections")
    assert all(not p["path"].startswith("/") for p in paths)
    assert m.read_selection(sel.id)[0].height == 10
    assert m.signals("blobs").n_checkpoints == 5 and m.embeddings("blobs")[0].shape[0] == 400


# -- 3. concurrent writers wait ------------------------------------------------------------
def test_four_concurrent_selects_all_succeed(synthetic_store):
    root = synthetic_store.root
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "curate.cli", "--store", str(root),
                               "select", "--method", "random", "--budget", "0.1", "--seed",
                               str(seed), "--json"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1] for o in outs]
    ids = {json.loads(o[0])["selection_id"] for o in outs}
    assert len(ids) == 4 and set(Store.open(root).selections()["id"]) == ids


def test_a_writer_waiting_too_long_gets_one_clear_line(synthetic_store):
    env = {**os.environ, "PYTHONPATH": str(REPO), "CURATE_LOCK_TIMEOUT": "0.5"}
    with store_lock(synthetic_store.root, exclusive=True):
        proc = subprocess.run([sys.executable, "-m", "curate.cli", "--store",
                               str(synthetic_store.root), "select", "--method", "random",
                               "--budget", "5"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300)
    assert proc.returncode == 1 and "is busy" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_lock_is_reentrant_within_a_thread(synthetic_store):
    with store_lock(synthetic_store.root, exclusive=True):
        assert synthetic_store.has_dataset("blobs")  # a read inside a write: no self-wait
        synthetic_store.set_default("blobs")


# -- 5. curate sql is a read-only view -------------------------------------------------------
REFUSED = [
    "COPY (SELECT 1) TO '{out}'",
    "COPY blobs TO '{root}/datasets/blobs/samples.parquet'",
    "DETACH cat",
    "ATTACH '{root}/catalog.duckdb' AS w",
    "ATTACH '{out}.db' AS fresh",
    "UPDATE datasets SET n_rows = 0",
    "DROP VIEW blobs",
    "DELETE FROM selections",
    "CREATE TABLE t AS SELECT 1",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "PRAGMA database_list",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('{root}/catalog.duckdb')",
    "SELECT * FROM glob('/*')",
    "SELECT 1; DROP VIEW blobs",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_sql_refuses_everything_but_reading_views(with_selection, tmp_path, capsys,
                                                  statement):
    st, _ = with_selection
    before = tree_hash(st.root)
    outside = tmp_path / "outside"
    outside.mkdir()
    q = statement.format(out=outside / "leak.csv", root=st.root)
    code, out, err = _cli(capsys, "--store", str(st.root), "sql", q)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert tree_hash(st.root) == before
    assert list(outside.iterdir()) == []
    with pytest.raises(UsageError):
        st.sql(q)


def test_sql_still_reads_every_view(with_selection):
    st, sel = with_selection
    assert st.sql("SELECT count(*) AS n FROM blobs")["n"][0] == 400
    assert st.sql(f"SELECT count(*) AS n FROM selection_rows WHERE selection_id = '{sel.id}'"
                  )["n"][0] == 10
    assert "manifest" not in st.sql("SELECT * FROM selections").columns
    assert st.sql("EXPLAIN SELECT * FROM blobs").height >= 1


def test_store_errors_are_store_errors():
    assert issubclass(CorruptArtefactError, StoreError)
