"""stores/: ingest formats, catalog, SQL views, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest

import curate
from core.errors import AlreadyExistsError, NotFoundError, SchemaError
from stores import IngestSpec, Store
from tests.conftest import blobs, tree_hash


def _frame():
    return blobs(50).drop("vec")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_ingest_formats_roundtrip(tmp_path, fmt):
    frame = _frame()
    path = tmp_path / f"data.{fmt}"
    {"parquet": frame.write_parquet, "csv": frame.write_csv, "jsonl": frame.write_ndjson}[fmt](path)
    st = Store.create(tmp_path / "s")
    info = st.ingest(path, "d", IngestSpec(text_column="text", label_column="label",
                                           id_column="uid"))
    assert info.n_rows == 50
    got = st.samples("d")
    assert got["row_idx"].to_list() == list(range(50))
    assert got["sample_id"].to_list() == frame["uid"].to_list()
    assert set(got["split"].unique()) <= {"train", "val", "test"}
    assert got["text"].to_list() == frame["text"].to_list()


def test_ingest_hf_saved_dataset_folder(tmp_path):
    import pyarrow as pa

    folder = tmp_path / "hf"
    folder.mkdir()
    table = _frame().to_arrow()
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, \
            pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    st = Store.create(tmp_path / "s")
    assert st.ingest(folder, "hf", IngestSpec(label_column="label")).n_rows == 50


def test_existing_split_column_is_kept(tmp_path):
    frame = _frame().with_columns(split=pl.Series(["train"] * 40 + ["val"] * 5 + ["test"] * 5))
    path = tmp_path / "d.parquet"
    frame.write_parquet(path)
    st = Store.create(tmp_path / "s")
    st.ingest(path, "d", IngestSpec(label_column="label"))
    assert st.samples("d")["split"].to_list() == frame["split"].to_list()


def test_splits_are_stratified_and_seeded(tmp_path):
    from stores import assign_splits

    labels = pl.Series(["a"] * 100 + ["b"] * 50 + ["c"] * 1)
    s = assign_splits(151, labels, 0.1, 0.2, seed=0)
    assert (s[:100] == "val").sum() == 10 and (s[:100] == "test").sum() == 20
    assert (s[100:150] == "val").sum() == 5 and (s[100:150] == "test").sum() == 10
    assert s[150] == "train"                      # a one-row class keeps its row for training
    assert (assign_splits(151, labels, 0.1, 0.2, seed=0) == s).all()


def test_catalog_reads_do_not_touch_files(synthetic_store):
    before = tree_hash(synthetic_store.root)
    synthetic_store.datasets()
    synthetic_store.samples("blobs")
    synthetic_store.sql("SELECT count(*) FROM blobs")
    synthetic_store.embeddings("blobs")
    assert tree_hash(synthetic_store.root) == before


def test_sql_views_join_selections_to_samples(synthetic_store):
    sel = curate.select(method="random", budget=10, store=synthetic_store, seed=0)
    df = synthetic_store.sql(
        "SELECT s.label, count(*) AS n FROM selection_rows r JOIN blobs s USING (row_idx) "
        f"WHERE r.selection_id = '{sel.id}' GROUP BY 1")
    assert df["n"].sum() == 10
    lazy = synthetic_store.dataset("blobs").join(sel.to_frame().lazy(), on="row_idx")
    assert lazy.collect().height == 10


def test_selection_is_immutable_and_idempotent(synthetic_store):
    a = curate.select(method="random", budget=10, store=synthetic_store, seed=0)
    b = curate.select(method="random", budget=10, store=synthetic_store, seed=0)
    c = curate.select(method="random", budget=10, store=synthetic_store, seed=1)
    assert a.id == b.id != c.id
    assert len(synthetic_store.selections()) == 2
    with pytest.raises(AlreadyExistsError):
        synthetic_store.write_selection(a.id, a.to_frame(), a.provenance.to_json(), a.run)


def test_same_seed_gives_identical_files_in_two_stores(tmp_path, synthetic_store_template):
    from tests.conftest import build_synthetic_store

    paths = []
    for name in ("one", "two"):
        st = build_synthetic_store(tmp_path / name, n=200)
        sel = curate.select(method="cld", budget=0.2, store=st, seed=4)
        paths.append(sel.path)
    a, b = paths
    assert (a / "selection.parquet").read_bytes() == (b / "selection.parquet").read_bytes()
    ja, jb = (curate.load_selection(p.parent.parent, p.name) for p in paths)
    assert ja.provenance == jb.provenance and ja.id == jb.id


def test_failed_rename_leaves_store_consistent(synthetic_store, monkeypatch):
    before = tree_hash(synthetic_store.root)
    real_rename = os.rename

    def broken(src, dst, *a, **k):
        if "selections" in str(dst):
            raise OSError("disk pulled out mid-write")
        return real_rename(src, dst, *a, **k)

    monkeypatch.setattr(os, "rename", broken)
    with pytest.raises(OSError, match="disk pulled"):
        curate.select(method="random", budget=5, store=synthetic_store, seed=0)
    monkeypatch.undo()
    assert tree_hash(synthetic_store.root) == before
    assert synthetic_store.selections().height == 0
    assert not any(p.name.startswith(".tmp-") for p in synthetic_store.root.rglob("*"))
    # and the store still works afterwards
    assert len(curate.select(method="random", budget=5, store=synthetic_store, seed=0)) == 5


def test_failed_catalog_write_removes_files(synthetic_store, monkeypatch):
    from stores.catalog import Catalog

    before = tree_hash(synthetic_store.root)

    def broken(self, con, table, row, replace=False):
        raise RuntimeError("catalog down")

    monkeypatch.setattr(Catalog, "insert", broken)
    with pytest.raises(RuntimeError):
        curate.select(method="random", budget=5, store=synthetic_store, seed=0)
    monkeypatch.undo()
    assert tree_hash(synthetic_store.root) == before


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    from stores import files

    target = tmp_path / "x.json"
    files.write_json(target, {"v": 1})

    def explode(p):
        p.write_text("half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        files.atomic_write(target, explode)
    assert files.read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_signals_replace_atomically(synthetic_store):
    from curate.signals import train_signals

    old = synthetic_store.signals("blobs")
    train_signals(synthetic_store, "blobs", epochs=4, seed=1)
    new = synthetic_store.signals("blobs")
    assert old.n_checkpoints == 5 and new.n_checkpoints == 4
    folders = list((synthetic_store.root / "datasets/blobs/signals").iterdir())
    assert len(folders) == 1                      # the replaced version is gone


def test_unknown_dataset_lists_known(synthetic_store):
    with pytest.raises(NotFoundError, match="'nope' not found.*datasets: blobs"):
        synthetic_store.dataset_info("nope")


def test_reserved_and_bad_names(tmp_path):
    st = Store.create(tmp_path / "s")
    for bad in ("selections", "1abc", "a b", ""):
        with pytest.raises(Exception, match="name"):
            st.add_dataset(_frame(), bad, IngestSpec())


@pytest.mark.parametrize("role", ["label_column", "text_column", "split_column"])
def test_a_reserved_column_can_only_be_the_id(tmp_path, role):
    """Found by the ingest property test: ``row_idx`` as the id column *and* the label
    column was dropped with the id, then looked up for the split (a KeyError traceback)."""
    frame = pl.DataFrame({"row_idx": ["a", "b", "c"], "x": [1, 2, 3]})
    frame.write_parquet(tmp_path / "r.parquet")
    st = Store.create(tmp_path / "s")
    before = tree_hash(st.root)
    with pytest.raises(SchemaError, match="can be the id column only") as err:
        st.ingest(tmp_path / "r.parquet", "r", IngestSpec(id_column="row_idx",
                                                          **{role: "row_idx"}))
    assert len(str(err.value).splitlines()) == 1 and tree_hash(st.root) == before


def test_vectors_with_nan_refused(tmp_path):
    frame = blobs(20)
    vec = frame["vec"].to_list()
    vec[3][2] = float("nan")
    frame = frame.with_columns(vec=pl.Series(vec))
    frame.write_parquet(tmp_path / "v.parquet")
    st = Store.create(tmp_path / "s")
    with pytest.raises(SchemaError, match="NaN"):
        st.ingest(tmp_path / "v.parquet", "v", IngestSpec(vector_column="vec"))
    assert st.datasets().height == 0


def test_embeddings_memory_mapped_and_aligned(synthetic_store):
    X, meta = synthetic_store.embeddings("blobs")
    assert isinstance(X, np.memmap) and X.shape == (400, 16) and meta.model == "ingested"


def _batches(X: np.ndarray, sizes: list[int]):
    at = 0
    for n in sizes:
        yield X[at:at + n]
        at += n


def test_embeddings_stream_from_batches_byte_identical_to_one_array(synthetic_store):
    """A stream of uneven row batches (an empty one included) is stored exactly as the
    same rows in one array would be; the store never needed the whole array."""
    X = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    synthetic_store.write_embeddings("blobs", "whole", X, normalized=False)
    synthetic_store.write_embeddings("blobs", "streamed", _batches(X, [1, 150, 0, 249]),
                                     normalized=False, dim=8)
    a, _ = synthetic_store.embeddings("blobs", "whole")
    b, meta = synthetic_store.embeddings("blobs", "streamed")
    assert isinstance(b, np.memmap) and meta.n_rows == 400 and meta.dim == 8
    assert np.array_equal(a, X) and np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_a_list_of_rows_is_one_array_and_a_ragged_one_is_refused(synthetic_store):
    X = np.random.default_rng(1).normal(size=(400, 4)).astype(np.float32)
    synthetic_store.write_embeddings("blobs", "rows", X.tolist(), normalized=False)
    assert np.asarray(synthetic_store.embeddings("blobs", "rows")[0]).tobytes() == X.tobytes()
    before = tree_hash(synthetic_store.root)
    with pytest.raises(SchemaError, match="all of one length") as err:
        synthetic_store.write_embeddings("blobs", "ragged", [[1.0, 2.0]] * 399 + [[1.0]],
                                         normalized=False)
    assert len(str(err.value).splitlines()) == 1 and tree_hash(synthetic_store.root) == before


def _dies_after_one_batch(X):
    yield X[:200]
    raise RuntimeError("encoder died")


@pytest.mark.parametrize("case", ["crash", "nan", "short", "long", "width", "no-dim"])
def test_a_failed_embedding_stream_leaves_the_store_as_it_was(synthetic_store, case):
    """Whatever goes wrong mid-stream — the producer dies, a later batch has a NaN, the rows
    do not come to N, a batch has other columns — the error is one line naming the row,
    and not a byte of the store changed (the partial file was in the staged folder)."""
    X = np.ones((400, 8), np.float32)
    bad = X.copy()
    bad[333, 5] = np.nan
    streams = {"crash": (_dies_after_one_batch(X), RuntimeError, "encoder died"),
               "nan": (_batches(bad, [200, 200]), SchemaError, "first at row 333"),
               "short": (_batches(X, [200, 199]), SchemaError, "must have 400 rows"),
               "long": (_batches(np.ones((401, 8), np.float32), [401]), SchemaError,
                        "must have 400 rows"),
               "width": (iter([X[:200], np.ones((200, 7), np.float32)]), SchemaError,
                         "at row 200"),
               "no-dim": (iter([X]), Exception, "dim=")}
    stream, kind, message = streams[case]
    before = tree_hash(synthetic_store.root)
    with pytest.raises(kind, match=message) as err:
        synthetic_store.write_embeddings("blobs", "ingested", stream, normalized=False,
                                         **({} if case == "no-dim" else {"dim": 8}))
    assert len(str(err.value).splitlines()) == 1
    assert tree_hash(synthetic_store.root) == before
