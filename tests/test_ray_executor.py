"""``--executor ray`` against a real local Ray (2 CPUs): the same request gives the same bytes
as ``local``; a killed worker is retried with the same result; a failed job leaves the store
as it was; the streaming ingest on Ray refuses bad input at a shard other than the first."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ray = pytest.importorskip("ray")

import curate  # noqa: E402
import curate.methods.knn as knn  # noqa: E402
import curate.score_selector as score_selector  # noqa: E402
from core.encoders import DEFAULT_BACKEND  # noqa: E402
from core.errors import UsageError  # noqa: E402
from curate.cli import main  # noqa: E402
from stores import IngestSpec, Store  # noqa: E402
from stores.executor import KILL_ENV, LocalExecutor, RayExecutor, get_executor  # noqa: E402
from tests.conftest import blobs, build_synthetic_store, tree_hash  # noqa: E402
from tests.test_stream_ingest import _bad  # noqa: E402
from tests.test_stream_ingest import _shards as _stream_shards  # noqa: E402

SPEC = IngestSpec(text_column="text", label_column="label", id_column="uid",
                  vector_column="vec")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    kill_dir = tmp_path_factory.mktemp("kill")
    if not ray.is_initialized():
        ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, include_dashboard=False,
                 log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {KILL_ENV: str(kill_dir), "HF_HUB_OFFLINE": "1"}})
    yield kill_dir
    ray.shutdown()


@pytest.fixture(scope="module")
def stores(tmp_path_factory, ray_cluster):
    """Two copies of one synthetic store (1,200 rows, 4 classes, 5-epoch signals)."""
    base = tmp_path_factory.mktemp("ray") / "a"
    build_synthetic_store(base, n=1200)
    other = base.parent / "b"
    shutil.copytree(base, other)
    return base, other


def test_a_killed_encoder_actor_is_restarted_and_the_vectors_are_unchanged(
        tmp_path, wordnet_home, ray_cluster):
    """Embedding as a Ray Data ``map_batches`` over encoder actors, with the actor's process
    killed (``os._exit``) on its first batch: Ray Data restarts the actor and retries the
    batch, and the stored vectors are the local ones; the sidecar says how they were made.
    First in this module on purpose: run after the module's other Ray pipelines it once hung
    (Ray Data waited for the restarted actor); run first it has not."""
    from curate.embedding import embed_dataset

    root = tmp_path / "wn"
    shutil.copytree(wordnet_home, root)
    st = Store.open(root)
    local = np.array(st.embeddings("wordnet")[0])
    armed = ray_cluster / "armed"
    armed.write_text("kill the encoder actor on its next batch")
    try:
        out = embed_dataset(st, "wordnet", executor="ray", actors=1)
        assert not armed.exists()                     # the actor really died
    finally:
        armed.unlink(missing_ok=True)                 # never left for a later test's worker
    assert out["executor"] == "ray"
    far, meta = st.embeddings("wordnet")
    assert far.shape == local.shape
    # same rows, same vectors to float rounding (Ray Data batches pad differently)
    assert (np.asarray(far) * local).sum(axis=1).min() > 0.9999
    assert meta.backend["backend"] == DEFAULT_BACKEND and meta.backend["executor"] == "ray"


def test_ingest_on_ray_is_byte_identical(tmp_path, ray_cluster):
    shards = _stream_shards(blobs(1200), tmp_path / "shards", sizes=(500, 400, 300))
    st = Store.create(tmp_path / "s")
    st.ingest(shards, "loc", SPEC, batch_rows=128)
    st.ingest(shards, "ray", SPEC, batch_rows=128, executor="ray")
    assert st.samples("loc").equals(st.samples("ray"))
    a, b = st.embeddings("loc")[0], st.embeddings("ray")[0]
    assert isinstance(b, np.memmap) and np.array_equal(a, b)
    emb = Path(st.dataset_info("ray").path) / "embeddings"
    loc = Path(st.dataset_info("loc").path) / "embeddings"
    assert (next(emb.iterdir()) / "vectors.npy").read_bytes() == \
        (next(loc.iterdir()) / "vectors.npy").read_bytes()


@pytest.mark.parametrize("case", ["nan", "ragged", "null-vector", "duplicate-id",
                                  "null-label", "null-text", "missing-column",
                                  "other-dimension"])
def test_ray_ingest_refuses_bad_input_in_a_later_shard(tmp_path, ray_cluster, case):
    """The foundation issue's bad inputs, each in the third shard, on Ray: one line, and the
    store unchanged (the workers wrote only into the staged folder)."""
    st = Store.create(tmp_path / "s")
    frame = blobs(100)
    folder = _stream_shards(frame, tmp_path / "shards")
    if case == "missing-column":
        frame.slice(75, 25).drop("label").write_parquet(folder / "part-002.parquet")
    elif case == "other-dimension":
        frame.slice(75, 25).with_columns(vec=pl.Series([[0.5] * 4] * 25)) \
            .write_parquet(folder / "part-002.parquet")
    else:
        shutil.rmtree(folder)
        folder = _stream_shards(_bad(frame, case), tmp_path / "shards")
    before = tree_hash(st.root)
    with pytest.raises(UsageError) as err:
        st.ingest(folder, "d", SPEC, batch_rows=10, executor="ray")
    assert len(str(err.value).splitlines()) == 1
    assert tree_hash(st.root) == before
    assert not st.has_dataset("d")


def test_a_failed_embed_job_writes_nothing(tmp_path, wordnet_home, ray_cluster):
    """An encoder call that raises fails the job, and the store is byte-identical."""
    from curate.embedding import embed_dataset

    root = tmp_path / "wn"
    shutil.copytree(wordnet_home, root)
    st = Store.open(root)
    local = np.array(st.embeddings("wordnet")[0])
    before = tree_hash(root)
    (ray_cluster / "fail").write_text("the next encoder call raises")
    with pytest.raises(Exception, match="injected failure"):
        embed_dataset(st, "wordnet", executor="ray", actors=1)
    assert tree_hash(root) == before                  # no partial embedding, no new version
    assert np.array_equal(np.asarray(st.embeddings("wordnet")[0]), local)


SCORE_CASES = [("cld", {}), ("cld", {"policy": "ccs"}), ("el2n", {}), ("el2n", {"epoch": 2}),
               ("forgetting", {}), ("uncertainty", {"measure": "margin"})]
GREEDY_CASES = [("facility_location", {"partition": "cells", "part_size": 150}),
                ("facility_location", {"partition": "none"}),
                ("facility_location", {"partition": "none", "graph": "exact"}),
                ("kcenter", {"partition": "cells", "part_size": 200}),
                ("herding", {"partition": "cells", "part_size": 100, "per_class": False})]


@pytest.mark.parametrize(("method", "params"), SCORE_CASES + GREEDY_CASES)
def test_local_and_ray_give_the_same_selection_bytes(stores, method, params, monkeypatch):
    monkeypatch.setattr(score_selector, "CHUNK", 97)   # many chunks → many Ray tasks
    monkeypatch.setattr(knn, "SHARD_ROWS", 70)         # many kNN shards
    a, b = stores
    loc = curate.select(method=method, budget=0.1, store=a, params=params, seed=3,
                        executor="local")
    far = curate.select(method=method, budget=0.1, store=b, params=params, seed=3,
                        executor="ray")
    assert loc.id == far.id
    assert Path(loc.path).joinpath("selection.parquet").read_bytes() == \
        Path(far.path).joinpath("selection.parquet").read_bytes()
    if params.get("partition") == "cells":
        assert loc.provenance.info["parts"] > 2


def test_scores_do_not_depend_on_the_chunking(stores, monkeypatch):
    a, _ = stores
    whole = curate.select(method="cld", budget=0.2, store=a, save=False)
    monkeypatch.setattr(score_selector, "CHUNK", 13)
    chunked = curate.select(method="cld", budget=0.2, store=a, save=False, executor="ray")
    assert np.array_equal(whole.indices, chunked.indices)
    assert np.array_equal(whole.scores, chunked.scores)


def test_a_killed_worker_is_retried_and_the_result_is_unchanged(stores, ray_cluster,
                                                                monkeypatch, tmp_path):
    monkeypatch.setattr(score_selector, "CHUNK", 200)
    a, _ = stores
    want = curate.select(method="el2n", budget=0.1, store=a, save=False, executor="local")
    (ray_cluster / "armed").write_text("kill the next task")
    got = curate.select(method="el2n", budget=0.1, store=a, save=False,
                        executor=RayExecutor(max_retries=3))
    assert not (ray_cluster / "armed").exists()        # a worker really died
    assert np.array_equal(want.indices, got.indices)


def test_a_failed_job_leaves_the_store_unchanged(tmp_path, stores, ray_cluster, monkeypatch):
    monkeypatch.setattr(score_selector, "CHUNK", 200)
    root = tmp_path / "c"
    shutil.copytree(stores[0], root)
    before = tree_hash(root)
    (ray_cluster / "armed").write_text("kill the next task")
    with pytest.raises(ray.exceptions.RayError):
        curate.select(method="forgetting", budget=0.1, store=root,
                      executor=RayExecutor(max_retries=0))
    assert tree_hash(root) == before


def test_executor_choice_env_and_errors(monkeypatch):
    monkeypatch.setenv("CURATE_EXECUTOR", "local")
    assert isinstance(get_executor(), LocalExecutor)
    monkeypatch.setenv("CURATE_EXECUTOR", "spark")
    with pytest.raises(curate.CurateError, match="executor must be one of local, ray"):
        get_executor()
    monkeypatch.delenv("CURATE_EXECUTOR")
    with pytest.raises(curate.CurateError, match="--ray-address needs --executor ray"):
        get_executor("local", address="ray://x:1")


def test_dedup_on_ray_gives_the_same_selection_bytes(stores):
    a, b = stores
    params = {"cell_size": 150, "eps": 0.3}          # 1,200 rows: 8 cells, 8 Ray tasks
    loc = curate.select(method="dedup", budget=1.0, store=a, params=params, seed=3,
                        executor="local")
    far = curate.select(method="dedup", budget=1.0, store=b, params=params, seed=3,
                        executor="ray")
    assert loc.provenance.info["n_removed"] > 0
    assert Path(loc.path).joinpath("selection.parquet").read_bytes() == \
        Path(far.path).joinpath("selection.parquet").read_bytes()
    assert loc.provenance.info["groups"] == far.provenance.info["groups"]


def test_cli_select_and_ingest_on_ray(tmp_path, stores, capsys):
    import json

    shards = _stream_shards(blobs(600), tmp_path / "shards", sizes=(250, 200, 150))
    root = tmp_path / "d"
    shutil.copytree(stores[0], root)
    assert main(["--store", str(root), "ingest", str(shards), "--name", "sharded",
                 "--text-column", "text", "--label-column", "label", "--id-column", "uid",
                 "--vector-column", "vec", "--executor", "ray", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_rows"] == 600
    assert np.array_equal(Store.open(root).embeddings("sharded")[0],
                          np.asarray(blobs(600)["vec"].to_list(), np.float32))
    assert main(["--store", str(root), "select", "--method", "kcenter", "--budget", "0.05",
                 "-p", "partition=cells", "-p", "part_size=300", "--executor", "ray",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_selected"] == 42 and out["info"]["parts"] >= 3
    assert main(["--store", str(root), "select", "--method", "kcenter", "--budget", "0.05",
                 "--executor", "dask", "--json"]) == 2
    assert "executor must be one of" in capsys.readouterr().err
