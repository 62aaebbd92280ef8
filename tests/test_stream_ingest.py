"""Streaming ingest (stores.stream): shards and batches give exactly what an in-memory ingest
gives; bad input at any shard is refused in one line and leaves the store unchanged."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import SchemaError, UsageError
from stores import IngestSpec, Store, files
from stores.vectors import NpyWriter, _read_shape
from tests.conftest import blobs, tree_hash

SPEC = IngestSpec(text_column="text", label_column="label", id_column="uid",
                  vector_column="vec")


def _shards(frame: pl.DataFrame, folder, sizes=(40, 35, 25)):
    folder.mkdir()
    start = 0
    for i, m in enumerate(sizes):
        frame.slice(start, m).write_parquet(folder / f"part-{i:03d}.parquet")
        start += m
    return folder


def test_sharded_batched_ingest_equals_the_in_memory_one(tmp_path):
    frame = blobs(100)
    st = Store.create(tmp_path / "s")
    st.add_dataset(frame.drop("vec"), "mem", replace(SPEC, vector_column=None),
                   vectors=np.asarray(frame["vec"].to_list(), np.float32))
    st.ingest(_shards(frame, tmp_path / "shards"), "streamed", SPEC, batch_rows=7)
    a, b = st.samples("mem"), st.samples("streamed")
    assert a.columns == b.columns
    assert a.equals(b)
    assert np.array_equal(st.embeddings("mem")[0], st.embeddings("streamed")[0])
    assert isinstance(st.embeddings("streamed")[0], np.memmap)


def test_fixed_size_list_and_double_vectors(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 8))
    fsl = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel()), 8)
    pq.write_table(pa.table({"v": fsl, "y": pa.array(["a", "b", "c"] * 10)}),
                   tmp_path / "fsl.parquet")
    pq.write_table(pa.table({"v": pa.array(x.tolist()), "y": pa.array(["a"] * 30)}),
                   tmp_path / "dbl.parquet")
    st = Store.create(tmp_path / "s")
    for name in ("fsl", "dbl"):
        st.ingest(tmp_path / f"{name}.parquet", name,
                  IngestSpec(label_column="y", vector_column="v"), batch_rows=4)
        assert np.allclose(st.embeddings(name)[0], x.astype(np.float32))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_csv_and_jsonl_stream(tmp_path, fmt):
    frame = blobs(50).drop("vec")
    path = tmp_path / f"d.{fmt}"
    (frame.write_csv if fmt == "csv" else frame.write_ndjson)(path)
    st = Store.create(tmp_path / "s")
    st.ingest(path, "d", IngestSpec(text_column="text", label_column="label", id_column="uid"))
    assert st.samples("d")["sample_id"].to_list() == frame["uid"].to_list()


def _bad(frame: pl.DataFrame, case: str) -> pl.DataFrame:
    """``frame`` with one defect in row 80 (the third shard) or shard 2."""
    vec = frame["vec"].to_list()
    if case == "nan":
        vec[80] = [float("nan")] * len(vec[80])
        return frame.with_columns(vec=pl.Series(vec))
    if case == "ragged":
        vec[80] = vec[80][:3]
        return frame.with_columns(vec=pl.Series(vec))
    if case == "null-vector":
        vec[80] = None
        return frame.with_columns(vec=pl.Series(vec))
    if case == "duplicate-id":
        return frame.with_columns(uid=pl.Series([*frame["uid"][:80], frame["uid"][3],
                                                 *frame["uid"][81:]]))
    if case == "null-label":
        return frame.with_columns(label=pl.Series([*frame["label"][:80], None,
                                                   *frame["label"][81:]]))
    if case == "null-text":
        return frame.with_columns(text=pl.Series([*frame["text"][:80], None,
                                                  *frame["text"][81:]]))
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["nan", "ragged", "null-vector", "duplicate-id",
                                  "null-label", "null-text", "missing-column",
                                  "other-dimension"])
def test_bad_input_in_a_later_shard_is_refused_and_changes_nothing(tmp_path, case):
    st = Store.create(tmp_path / "s")
    frame = blobs(100)
    if case == "missing-column":
        folder = _shards(frame, tmp_path / "shards")
        frame.slice(75, 25).drop("label").write_parquet(folder / "part-002.parquet")
    elif case == "other-dimension":
        folder = _shards(frame, tmp_path / "shards")
        frame.slice(75, 25).with_columns(vec=pl.Series([[0.5] * 4] * 25)) \
            .write_parquet(folder / "part-002.parquet")
    else:
        folder = _shards(_bad(frame, case), tmp_path / "shards")
    before = tree_hash(st.root)
    with pytest.raises(UsageError) as err:
        st.ingest(folder, "d", SPEC, batch_rows=10)
    assert len(str(err.value).splitlines()) == 1
    assert tree_hash(st.root) == before
    assert not list(st.root.rglob(f"{files.TMP_PREFIX}*"))
    assert not st.has_dataset("d")


def test_npy_writer_streams_a_valid_file(tmp_path):
    x = np.random.default_rng(1).normal(size=(25, 3)).astype(np.float32)
    w = NpyWriter(tmp_path / "v.npy")
    for i in range(0, 25, 6):
        w.append(x[i:i + 6])
    assert w.close() == 25
    assert _read_shape(tmp_path / "v.npy") == (25, 3)
    assert np.array_equal(np.load(tmp_path / "v.npy", mmap_mode="r"), x)
    w = NpyWriter(tmp_path / "w.npy", dim=3)
    with pytest.raises(SchemaError, match="columns"):
        w.append(np.zeros((2, 4), np.float32))
    w.abort()
