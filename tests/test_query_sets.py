"""A user's own items and query table through the whole fan-out pipeline (CLI and Python),
and the query-set checks: one line per bad table, nothing stored."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from curate.cli import main
from curate.errors import CurateError
from retrieval.queries import load_queries, recall_at_k, recall_reward, register_queries
from retrieval.service import create_app
from stores import IngestSpec, Store


@pytest.fixture
def user_data(tmp_path):
    """300 items in 10 clusters (vectors only: a user's own embeddings) and 40 queries, each
    answered by 5 items of one cluster; the query vector sits off the cluster centre."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 12))
    labels = np.arange(300) % 10
    X = (centres[labels] + 0.3 * rng.normal(size=(300, 12))).astype(np.float32)
    ids = [f"doc{i:03d}" for i in range(300)]
    pl.DataFrame({"doc_id": ids, "emb": X.tolist()}).write_parquet(tmp_path / "items.parquet")
    q_cluster = np.arange(40) % 10
    refs = [[ids[j] for j in np.flatnonzero(labels == c)[i % 5 * 5:(i % 5) * 5 + 5]]
            for i, c in enumerate(q_cluster)]
    Q = centres[q_cluster] + 0.5 * rng.normal(size=(40, 12))
    pl.DataFrame({"qid": [f"q{i}" for i in range(40)], "qvec": Q.tolist(),
                  "answers": refs}).write_parquet(tmp_path / "queries.parquet")
    st = Store.create(tmp_path / "store")
    st.ingest(tmp_path / "items.parquet", "docs", IngestSpec(id_column="doc_id",
                                                             vector_column="emb"))
    return st, tmp_path


def test_own_items_and_queries_through_the_cli_and_the_service(user_data, capsys):
    st, tmp = user_data
    base = ["--store", str(st.root)]

    def cli(*args):
        assert main(base + list(args) + ["--json"]) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    cli("index", "build", "docs", "--name", "docs-flat")
    qs = cli("fanout", "queries", str(tmp / "queries.parquet"), "--index", "docs-flat",
             "--id-column", "qid", "--vector-column", "qvec", "--references-column",
             "answers", "--seed", "3")
    assert qs["query_set"].startswith("queries-") and qs["splits"] == {"train": 28, "val": 4,
                                                                       "test": 8}
    again = cli("fanout", "queries", str(tmp / "queries.parquet"), "--index", "docs-flat",
                "--id-column", "qid", "--vector-column", "qvec", "--references-column",
                "answers", "--seed", "3")
    assert again["query_set"] == qs["query_set"]                    # content-addressed
    teacher = cli("fanout", "train-teacher", "--index", "docs-flat", "--queries",
                  qs["query_set"], "--k", "5", "--regime", "weak", "--steps", "8",
                  "--batch", "8")
    assert teacher["queries"] == qs["query_set"] and teacher["n_train_queries"] == 28
    synth = cli("fanout", "synthesize", "--teacher", teacher["model_id"], "--n", "4",
                "--rounds", "1", "--warm-start", "--keep", "1.0")
    assert synth["n_kept"] == 28 and synth["queries"] == qs["query_set"]
    diff = cli("fanout", "train-diffusion", "--synthesis", synth["synthesis_id"],
               "--epochs", "2", "--width", "16", "--layers", "1")
    test = load_queries(st, qs["query_set"], "test")
    assert len(test) == 8 and test.views.shape == (8, 1, 12)
    # the CLI queries a vector-only index by --vector (a JSON array or a .npy file)
    np.save(tmp / "q.npy", test.views[0, 0])
    by_json = cli("fanout", "query", "--index", "docs-flat", "--vector",
                  json.dumps(test.views[0, 0].tolist()), "--method", "diffusion", "--model",
                  diff["model_id"], "--k", "5", "--seed", "1")
    by_npy = cli("fanout", "query", "--index", "docs-flat", "--vector", str(tmp / "q.npy"),
                 "--method", "diffusion", "--model", diff["model_id"], "--k", "5",
                 "--seed", "1")
    assert [i["row_idx"] for i in by_json["items"]] == [i["row_idx"] for i in by_npy["items"]]
    assert len({i["row_idx"] for i in by_json["items"]}) == 5
    for bad, fragment in ((["--vector", "[1, 2]"], "dimension"),
                          (["--vector", "not json"], "JSON array"),
                          ([], "exactly one of")):
        assert main(base + ["fanout", "query", "--index", "docs-flat", *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and "\n" not in err and "Traceback" not in err
    client = TestClient(create_app(st.root, "docs-flat"))
    for method, model in (("topk", None), ("dpp", None), ("teacher", teacher["model_id"]),
                          ("diffusion", diff["model_id"])):
        body = {"vector": test.views[0, 0].tolist(), "k": 5, "method": method,
                **({"model": model} if model else {})}
        r = client.post("/v1/fanout", json=body)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert len({i["row_idx"] for i in items}) == 5
        assert r.json()["objectives"]["composite"] > 0
        quiet = client.post("/v1/fanout", json={**body, "objectives": False})
        assert quiet.status_code == 200 and quiet.json()["objectives"] is None
        assert quiet.json()["timings"]["objectives_s"] is None
    relevance = cli("fanout", "train-relevance", "--index", "docs-flat", "--queries",
                    qs["query_set"], "--k", "5", "--pool", "30", "--hidden", "16",
                    "--steps", "20", "--batch", "128")
    assert relevance["model_id"].startswith("relevance-") and relevance["n_val_queries"] == 4
    for method, extra in (("mmr", {}), ("diffusion", {"model": diff["model_id"], "refine": 1})):
        body = {"vector": test.views[0, 0].tolist(), "k": 5, "method": method,
                "relevance": relevance["model_id"], **extra}
        r = client.post("/v1/fanout", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["relevance_model"] == relevance["model_id"]
        assert len({i["row_idx"] for i in r.json()["items"]}) == 5
    refused = client.post("/v1/fanout", json={"vector": test.views[0, 0].tolist(), "k": 5,
                                              "relevance": relevance["model_id"]})
    assert refused.status_code == 400 and "does not re-rank" in refused.json()["detail"]
    wrong = client.post("/v1/fanout", json={"vector": test.views[0, 0].tolist(), "k": 5,
                                            "method": "mmr", "relevance": teacher["model_id"]})
    assert wrong.status_code == 400 and "is a 'teacher' model" in wrong.json()["detail"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"Objectives", "Timings", "FanoutResponse"} <= set(schema)
    assert "diversity" in schema["Objectives"]["properties"]


def test_bad_query_tables_are_one_line_and_store_nothing(user_data):
    st, tmp = user_data
    from retrieval import build_index

    build_index(st, "docs", name="flat")
    good = pl.read_parquet(tmp / "queries.parquet")
    n_models = st.models().height
    cases = [(good.with_columns(pl.lit("q1").alias("qid")), "appears more than once"),
             (good.with_columns(pl.col("answers").list.concat(pl.lit(["nope"]))),
              "not sample ids"),
             (good.drop("qvec"), "no vector column"),
             (good.with_columns(pl.col("qvec").list.head(5)), "dimension 5"),
             (good.head(0), "no rows")]
    for frame, message in cases:
        with pytest.raises(CurateError, match=message) as err:
            register_queries(st, "flat", frame, id_column="qid", text_column=None,
                             vector_column="qvec", references_column="answers")
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(CurateError, match="text queries need"):
        register_queries(st, "flat", good, id_column="qid", text_column="qvec")
    assert st.models().height == n_models


def test_recall_helpers_golden():
    refs = np.array([[1, 2, 3, -1], [7, -1, -1, -1]])
    rows = np.array([[3, 9, 1], [8, 9, 10]])
    assert np.allclose(recall_at_k(rows, refs), [2 / 3, 0.0])
    assert np.allclose(recall_at_k(rows, refs, cap=2), [1.0, 0.0])
    fn = recall_reward(refs)
    got = fn(np.array([0, 1]), np.stack([rows, rows[::-1]], 1))       # (2, 2, 3)
    assert np.allclose(got, [[2 / 3, 0.0], [0.0, 0.0]])


def test_engine_batches_per_k_and_refuses_the_wrong_k_before_batching(user_data, capsys):
    """Review finding: a first request with the wrong k used to bind the shared batcher to
    that k, so every later valid request failed."""
    from retrieval import build_index
    from retrieval.fanout import FanoutEngine
    from retrieval.teacher import Teacher
    from stores import files

    st, _ = user_data
    build_index(st, "docs", name="flat")
    index_meta = files.read_json(st.index_path("flat") / "index.json")
    X = np.asarray(st.embeddings("docs", index_meta["embedding"])[0])
    engine = FanoutEngine(st, "flat", micro_batch=True)
    engine.models["t"] = Teacher(engine.index, X, k=5, seed=0)       # a 5-item teacher
    engine._model = lambda kind, model_id: engine.models[model_id]
    q = X[0].tolist()
    with pytest.raises(CurateError, match="returns k=5"):
        engine.query(vector=q, k=3, method="teacher", model="t")
    for _ in range(2):
        out = engine.query(vector=q, k=5, method="teacher", model="t")
        assert len({i["row_idx"] for i in out["items"]}) == 5
        assert {i["sub_query"] for i in out["items"]} <= set(range(-1, 5))


def test_query_set_content_address_is_a_canonical_form_not_polars_hash():
    """The digest is sha256 over the column names and the rows as NDJSON — written out by hand
    here — so it does not move with Polars' (version-unstable) ``Series.hash``."""
    import hashlib

    from retrieval.queries import content_digest

    frame = pl.DataFrame({"query_id": ["q1", "q2"], "text": ["cats", "dogs"],
                          "references": [["a", "b"], []]})
    by_hand = hashlib.sha256(b'["query_id", "text", "references"]')
    by_hand.update(b'{"query_id":"q1","text":"cats","references":["a","b"]}\n'
                   b'{"query_id":"q2","text":"dogs","references":[]}\n')
    assert content_digest(frame) == by_hand.hexdigest()
    assert content_digest(frame, rows=1) == content_digest(frame)  # slicing does not matter
    assert content_digest(frame.with_columns(pl.lit("x").alias("text"))) != by_hand.hexdigest()


def test_what_queries_resolves_to(user_data):
    """``resolve_query_set``: a stored id is itself, a file is registered with the default
    column names, nothing is the caller's bundled set (given the index's meta) or refused."""
    from curate.errors import MissingInputError, NotFoundError
    from retrieval import build_index
    from retrieval.queries import resolve_query_set

    st, tmp = user_data
    build_index(st, "docs", name="flat")
    table = pl.read_parquet(tmp / "queries.parquet").rename(
        {"qid": "query_id", "answers": "references"})
    stored = register_queries(st, "flat", table, text_column=None, vector_column="qvec",
                              references_column="references")["query_set"]
    assert resolve_query_set(st, "flat", stored) == stored
    with pytest.raises(NotFoundError, match="neither a stored query set nor a file"):
        resolve_query_set(st, "flat", str(tmp / "missing.parquet"))
    with pytest.raises(MissingInputError, match="give a query set"):
        resolve_query_set(st, "flat", None)
    seen = []

    def bundled(store, meta):
        seen.append(meta["dataset"])
        return table, {"text_column": None, "vector_column": "qvec",
                       "references_column": "references"}

    assert resolve_query_set(st, "flat", None, bundled=bundled) == stored   # same content
    assert seen == ["docs"]
    # a file with the default names: text-less, so it needs an item or vector column named
    table.select("query_id", "references").write_parquet(tmp / "plain.parquet")
    with pytest.raises(CurateError, match="text column, a vector column, or an item"):
        resolve_query_set(st, "flat", str(tmp / "plain.parquet"))


def test_the_weak_regime_needs_references(user_data):
    from curate.errors import MissingInputError
    from retrieval import build_index
    from retrieval.teacher import train_teacher

    st, tmp = user_data
    build_index(st, "docs", name="flat")
    table = pl.read_parquet(tmp / "queries.parquet").drop("answers")
    qs = register_queries(st, "flat", table, id_column="qid", text_column=None,
                          vector_column="qvec")["query_set"]
    before = sorted(st.models()["id"].to_list())
    with pytest.raises(MissingInputError, match="regime 'weak'.*has none"):
        train_teacher(st, "flat", qs, k=5, regime="weak", steps=2, batch=4)
    assert sorted(st.models()["id"].to_list()) == before          # nothing written
