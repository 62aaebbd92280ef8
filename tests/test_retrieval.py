"""retrieval/: index oracle tests, objective golden cases, baselines, CLI."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from curate.cli import main
from curate.errors import InvalidParameterError, SchemaError
from retrieval import build_index, load_index
from retrieval.baselines import MMRRetriever, TopKRetriever, mmr_select
from retrieval.index import normalise
from retrieval.objectives import complementarity, coverage, set_objectives, vendi
from retrieval.queries import recall_at_k, recall_reward
from stores import IngestSpec, Store


@pytest.fixture(scope="module")
def vec_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ret")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    X = (centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 16))).astype(
        np.float32)
    pl.DataFrame({"vec": X.tolist(), "text": [f"item {i}" for i in range(3000)]}) \
        .write_parquet(root / "d.parquet")
    st = Store.create(root / "s")
    st.ingest(root / "d.parquet", "d", IngestSpec(vector_column="vec", text_column="text"))
    st.set_default("d")
    return st, X


def brute_force(X, Q, k):
    Xn, Qn = normalise(X), normalise(Q)
    sims = Qn @ Xn.T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k], np.sort(sims, axis=1)[:, ::-1][:, :k]


def test_flat_index_equals_brute_force(vec_store):
    st, X = vec_store
    build_index(st, "d", factory="Flat", name="flat")
    Q = X[:50] + 0.1
    scores, rows = load_index(st, "flat").search(Q, 10)
    exp_rows, exp_scores = brute_force(X, Q, 10)
    assert np.allclose(scores, exp_scores, atol=1e-5)
    assert (rows == exp_rows).mean() > 0.99          # only exact ties may swap places


@pytest.mark.parametrize("factory,params,bound", [("IVF32,Flat", {"nprobe": 8}, 0.9),
                                                  ("HNSW16", {"efSearch": 64}, 0.9)])
def test_approximate_indices_recall(vec_store, factory, params, bound):
    st, X = vec_store
    name = factory.replace(",", "-").lower()
    build_index(st, "d", factory=factory, name=name, seed=0)
    Q = X[100:200]
    _, rows = load_index(st, name).search(Q, 10, params)
    exact, _ = brute_force(X, Q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, exact, strict=True)])
    assert recall >= bound


def test_index_bad_input(vec_store):
    st, X = vec_store
    with pytest.raises(InvalidParameterError, match="factory"):
        build_index(st, "d", factory="NotAnIndex", name="bad")
    build_index(st, "d", factory="Flat", name="flat2")
    idx = load_index(st, "flat2")
    with pytest.raises(SchemaError, match="dimension"):
        idx.search(np.ones((1, 5)), 3)
    with pytest.raises(SchemaError, match="NaN"):
        idx.search(np.full((1, 16), np.nan), 3)
    with pytest.raises(InvalidParameterError, match="k must be"):
        idx.search(X[:1], 0)


def test_objectives_golden():
    e = np.eye(4)[None]                                  # 4 orthogonal items
    same = np.repeat(np.eye(4)[:1], 4, axis=0)[None]     # 4 copies of one item
    assert vendi(e)[0] == pytest.approx(4.0) and vendi(same)[0] == pytest.approx(1.0)
    assert complementarity(e)[0] == pytest.approx(1.0)
    assert complementarity(same)[0] == pytest.approx(0.0)
    pool = np.eye(4)[None]
    assert coverage(e, pool)[0] == pytest.approx(1.0)
    assert coverage(same, pool)[0] == pytest.approx(0.25)
    q = np.eye(4)[:1]
    out = set_objectives(q, same, pool)
    assert out["alignment"][0] == pytest.approx(1.0)
    assert out["composite"][0] == pytest.approx(0.5 * 0.25 + 0.5 * 1.0)   # Vendi 1 of k = 4
    with pytest.raises(InvalidParameterError, match="unknown objective"):
        set_objectives(q, same, pool, {"beauty": 1.0})


def test_mmr_trades_relevance_for_diversity(vec_store):
    st, X = vec_store
    build_index(st, "d", factory="Flat", name="flat3")
    idx = load_index(st, "flat3")
    q = X[:5]
    Xn = normalise(X)
    top = TopKRetriever(idx, Xn).retrieve(q, 10)
    mmr = MMRRetriever(idx, Xn, lam=0.3, pool=200).retrieve(q, 10)
    v_top, v_mmr = vendi(Xn[top.row_idx]), vendi(Xn[mmr.row_idx])
    assert (v_mmr >= v_top - 1e-9).all() and v_mmr.mean() > v_top.mean()
    pure = MMRRetriever(idx, Xn, lam=1.0, pool=50).retrieve(q, 10)
    assert (pure.row_idx == top.row_idx).mean() > 0.95      # λ = 1 is plain top-k


def test_mmr_select_golden():
    """Hand-computed: relevance (0.9, 0.8, 0.5, −inf), items 0 and 1 near copies (sim 0.9),
    item 2 apart (sim 0.1). λ = 0.5: pick 0 (most relevant); then 1 scores 0.5·0.8 − 0.5·0.9
    = −0.05 and 2 scores 0.5·0.5 − 0.5·0.1 = 0.2, so 2; then 1. Item 3 is never picked: a
    4th pick is −1. λ = 1 is the relevance order."""
    rel = np.array([[0.9, 0.8, 0.5, -np.inf]])
    sim = np.array([[[1.0, 0.9, 0.1, 0.0], [0.9, 1.0, 0.1, 0.0], [0.1, 0.1, 1.0, 0.0],
                     [0.0, 0.0, 0.0, 1.0]]])
    assert mmr_select(rel, sim, 4, 0.5).tolist() == [[0, 2, 1, -1]]
    assert mmr_select(rel, sim, 3, 1.0).tolist() == [[0, 1, 2]]


def test_text_query_on_a_non_text_index_is_refused(vec_store):
    from retrieval import fanout_query

    st, X = vec_store
    build_index(st, "d", factory="Flat", name="flat4")
    with pytest.raises(InvalidParameterError, match="pass a query vector"):
        fanout_query(st, "flat4", text="hello")
    res = fanout_query(st, "flat4", vector=X[3], k=4)
    assert res["items"][0]["row_idx"] == 3 and len(res["items"]) == 4


def test_index_and_fanout_from_the_cli(wordnet_home, capsys):
    base = ["--store", str(wordnet_home)]
    assert main(base + ["index", "build", "--factory", "Flat", "--name", "cli-flat",
                        "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 600
    assert main(base + ["fanout", "query", "a large and densely populated urban area",
                        "--index", "cli-flat", "--k", "5", "--method", "mmr", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["items"]) == 5 and set(res["objectives"]) >= {"composite", "diversity"}
    assert all(item["text"] for item in res["items"])
    assert main(base + ["fanout", "query", "x", "--index", "cli-flat", "--k", "0"]) == 2
    assert "k must be" in capsys.readouterr().err
    assert main(base + ["fanout", "query", "x", "--index", "nope"]) == 2
    assert "index 'nope' not found" in capsys.readouterr().err
    assert main(base + ["fanout", "query", "x", "--index", "cli-flat", "--method",
                        "rerank"]) == 2
    assert "method must be one of" in capsys.readouterr().err
    for method in ("teacher", "diffusion"):
        assert main(base + ["fanout", "query", "x", "--index", "cli-flat", "--method",
                            method]) == 2
        assert f"method '{method}' needs a model id" in capsys.readouterr().err
    # a (small, untrained) diffusion checkpoint for this index answers text queries by CLI
    import torch

    from retrieval.diffusion import DiffusionConfig, SetDiffusion, save_diffusion

    st = Store.open(wordnet_home)
    model = SetDiffusion(DiffusionConfig(dim=384, k=5, sigma_data=0.05, width=16, layers=1),
                         torch.Generator().manual_seed(0))
    mid = save_diffusion(st, model, {"index": "cli-flat", "k": 5})
    query = ["fanout", "query", "a large and densely populated urban area", "--index",
             "cli-flat", "--k", "5", "--method", "diffusion", "--model", mid]
    assert main(base + query + ["--steps", "2", "--guidance", "1.5", "--seed", "0",
                                "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len({i["row_idx"] for i in res["items"]}) == 5 and res["model_version"] == mid
    assert main(base + query + ["--steps", "0"]) == 2
    assert "steps must be" in capsys.readouterr().err


def test_teacher_grpo_improves_weakly_supervised_recall(vec_store):
    from retrieval.teacher import Teacher, ground

    st, X = vec_store
    build_index(st, "d", factory="Flat", name="teach")
    idx = load_index(st, "teach")
    Xn = normalise(X)
    sub = np.stack([Xn[:3], Xn[3:6]])                      # 2 queries × 3 sub-queries
    rows = ground(idx, sub)
    assert rows.shape == (2, 3) and all(len(set(r)) == 3 for r in rows.tolist())
    # weak supervision: the reference sets lie in one fixed direction away from each query,
    # so a policy that learns that offset wins; plain top-k around the query does not
    rng = np.random.default_rng(0)
    queries = Xn[rng.choice(3000, 24, replace=False)]
    direction = normalise(rng.normal(size=(1, 16)))[0]
    _, refs = idx.search(normalise(queries + 0.6 * direction), 10)
    recall = recall_reward(refs)
    teacher = Teacher(idx, X, k=5, sigma=0.2, beta=0.0, seed=0)
    hist = teacher.train(queries, steps=60, group=8, batch=12, lr=1e-2, reward_fn=recall)
    assert np.mean(hist[-5:]) > np.mean(hist[:5])            # GRPO raises the reward
    top = TopKRetriever(idx, Xn).retrieve(queries, 5).row_idx
    base = recall_at_k(top, refs).mean()
    sets, r = teacher.best_of_n(queries, n=8, reward_fn=recall)
    assert sets.shape == (24, 5) and r.mean() >= base


def test_untrained_teacher_mean_fanout_is_topk(vec_store):
    """The policy starts at μ ≡ 0: every sub-query is the query, and distinct grounding then
    returns exactly the top-k — RL starts from the baseline, not from noise."""
    from retrieval.teacher import Teacher

    st, X = vec_store
    build_index(st, "d", factory="Flat", name="teach0")
    idx = load_index(st, "teach0")
    Q = normalise(X[:7] + 0.1)
    sets, _ = Teacher(idx, X, k=6, seed=0).best_of_n(Q, n=1)
    assert np.array_equal(sets, TopKRetriever(idx, normalise(X)).retrieve(Q, 6).row_idx)


def test_r4t_pipeline_from_the_cli(tmp_path, capsys):
    """train-teacher → synthesize → train-diffusion → query with each method (CLI, Python,
    service) on a small store holding 30 bundled hyponym sets as random vectors."""
    from fastapi.testclient import TestClient

    from curate.defaults import hyponym_sets_path
    from retrieval import fanout_query
    from retrieval.service import create_app

    sets = pl.read_parquet(hyponym_sets_path()).filter(pl.col("size").is_between(5, 8)).head(30)
    ids = sorted(set(sets["set_id"]) | set(sets["members"].explode().to_list()))
    rng = np.random.default_rng(0)
    pl.DataFrame({"sid": ids, "vec": rng.normal(size=(len(ids), 16)).astype(np.float32)
                  .tolist()}).write_parquet(tmp_path / "w.parquet")
    st = Store.create(tmp_path / "s")
    st.ingest(tmp_path / "w.parquet", "w", IngestSpec(id_column="sid", vector_column="vec"))
    st.set_default("w")
    base = ["--store", str(st.root)]

    def cli(*args):
        assert main(base + list(args) + ["--json"]) == 0
        return json.loads(capsys.readouterr().out)

    cli("index", "build", "--name", "w-flat")
    teacher = cli("fanout", "train-teacher", "--index", "w-flat", "--k", "5", "--regime",
                  "weak", "--steps", "5", "--batch", "8")
    assert teacher["model_id"].startswith("teacher-") and teacher["n_train_queries"] >= 4
    assert len(teacher["reward_history"]) == 5
    synth = cli("fanout", "synthesize", "--teacher", teacher["model_id"], "--n", "4",
                "--keep", "1.0")
    assert synth["n_kept"] == synth["n_queries"] == teacher["n_train_queries"]
    from retrieval.synthesis import load_synthesis

    Qs, Zs, _ = load_synthesis(st, synth["synthesis_id"])
    _, Ts, _ = load_synthesis(st, synth["synthesis_id"], "items")
    assert Zs.shape == Ts.shape == (synth["n_kept"], 5, 16)
    assert Qs.shape == (synth["n_kept"], 1, 16)              # one view: the item's vector
    assert np.allclose(np.linalg.norm(Zs, axis=2), 1, atol=1e-5)
    with pytest.raises(InvalidParameterError, match="target must be one of"):
        load_synthesis(st, synth["synthesis_id"], "vectors")
    diff = cli("fanout", "train-diffusion", "--synthesis", synth["synthesis_id"], "--epochs",
               "2", "--width", "16", "--layers", "1")
    assert diff["model_id"].startswith("diffusion-") and diff["sigma_data"] > 0
    kinds = {m["kind"] for m in cli("list")["models"]}
    assert {"teacher", "synthesis", "diffusion"} <= kinds
    q = rng.normal(size=16)
    for method, model in (("teacher", teacher["model_id"]), ("diffusion", diff["model_id"])):
        res = fanout_query(st, "w-flat", vector=q, k=5, method=method, model=model, seed=3)
        assert len({i["row_idx"] for i in res["items"]}) == 5 and res["model_version"] == model
        again = fanout_query(st, "w-flat", vector=q, k=5, method=method, model=model, seed=3)
        assert [i["row_idx"] for i in again["items"]] == [i["row_idx"] for i in res["items"]]
        with pytest.raises(InvalidParameterError, match="returns k=5"):
            fanout_query(st, "w-flat", vector=q, k=3, method=method, model=model)
    with pytest.raises(InvalidParameterError, match="best_of must be"):
        fanout_query(st, "w-flat", vector=q, k=5, method="teacher", model=teacher["model_id"],
                     best_of=0)
    with pytest.raises(InvalidParameterError, match="guidance must be"):
        fanout_query(st, "w-flat", vector=q, k=5, method="diffusion", model=diff["model_id"],
                     guidance=float("nan"))
    with pytest.raises(InvalidParameterError, match="is a 'teacher' model"):
        fanout_query(st, "w-flat", vector=q, k=5, method="diffusion", model=teacher["model_id"])
    # wrong artefacts are one-line errors, exit 2, and nothing new is stored
    n_models = st.models().height
    assert main(base + ["fanout", "train-diffusion", "--synthesis", teacher["model_id"]]) == 2
    assert "not a synthesis" in capsys.readouterr().err
    assert main(base + ["fanout", "synthesize", "--teacher", teacher["model_id"], "--keep",
                        "0"]) == 2
    assert "keep must be" in capsys.readouterr().err
    assert Store.open(st.root).models().height == n_models
    cli("index", "build", "--name", "w-hnsw", "--factory", "HNSW8")
    with pytest.raises(InvalidParameterError, match="trained on index 'w-flat'"):
        fanout_query(st, "w-hnsw", vector=q, k=5, method="diffusion", model=diff["model_id"])
    client = TestClient(create_app(st.root, "w-flat"))
    r = client.post("/v1/fanout", json={"vector": q.tolist(), "k": 5, "method": "diffusion",
                                        "model": diff["model_id"]})
    assert r.status_code == 200 and r.json()["model_version"] == diff["model_id"]
    assert {i["sub_query"] for i in r.json()["items"]} == set(range(5))
    # reward-guided grounding through the service: never a lower composite than without it
    got = {}
    for refine in (0, 2):
        r = client.post("/v1/fanout", json={"vector": q.tolist(), "k": 5, "seed": 1,
                                            "method": "diffusion", "model": diff["model_id"],
                                            "refine": refine})
        assert r.status_code == 200 and len({i["row_idx"] for i in r.json()["items"]}) == 5
        got[refine] = r.json()["objectives"]["composite"]
    assert got[2] >= got[0] - 1e-6
    r = client.post("/v1/fanout", json={"vector": q.tolist(), "k": 5, "method": "ascent",
                                        "refine": 0})
    assert r.status_code == 400 and "refine" in r.json()["detail"]
    with pytest.raises(InvalidParameterError, match="refine must be"):
        fanout_query(st, "w-flat", vector=q, k=5, method="teacher", model=teacher["model_id"],
                     refine=11)


def test_query_views_golden():
    from retrieval.views import as_views, split_query

    assert split_query("city, metropolis: a large urban area") == ("city, metropolis",
                                                                   "a large urban area")
    assert split_query("no colon here") == ("no colon here", "no colon here")
    assert split_query(": body only") == (": body only", ": body only")
    V = as_views(np.array([[3.0, 4.0]]))
    assert V.shape == (1, 3, 2) and np.allclose(V, [[0.6, 0.8]] * 3)


def test_teacher_learns_to_mix_query_views(vec_store):
    """The reference sets sit around each query's 'head' view; GRPO on recall moves the
    mixing weights towards it, so the deterministic (mean) fan-out beats top-k of the full
    view — the mechanism behind the WordNet result."""
    from retrieval.teacher import Teacher

    st, X = vec_store
    build_index(st, "d", factory="Flat", name="teachv")
    idx = load_index(st, "teachv")
    rng = np.random.default_rng(3)
    full = normalise(X[rng.choice(3000, 40, replace=False)])
    head = normalise(X[rng.choice(3000, 40, replace=False)])
    views = np.stack([full, head, full], axis=1)
    _, refs = idx.search(normalise(full + head), 8)
    recall = recall_reward(refs)

    teacher = Teacher(idx, X, k=8, tau=0.3, beta=0.0, seed=0)
    base, _ = teacher.best_of_n(views, n=1, reward_fn=recall)
    teacher.train(views, steps=40, group=8, batch=16, lr=1e-2, reward_fn=recall)
    after, _ = teacher.best_of_n(views, n=1, reward_fn=recall)
    r0, r1 = recall_at_k(base, refs).mean(), recall_at_k(after, refs).mean()
    assert r1 > r0 + 0.2


def test_reference_recall_golden():
    from retrieval.objectives import reference_recall

    assert reference_recall([1, 2, 3], {2, 3, 4, 5}) == 0.5
    assert reference_recall(np.array([1, 2, 3]), {2, 3, 4, 5}, cap=2) == 1.0
    assert reference_recall([9], range(20), cap=10) == 0.1
    assert np.isnan(reference_recall([1], []))


def test_query_set_view_rule_decides_how_a_text_query_gets_its_views(wordnet_home, capsys):
    """A teacher trained on a query set's own view columns is never served views guessed by
    splitting the text at a colon: the query must bring them (engine, CLI and service)."""
    from fastapi.testclient import TestClient

    from retrieval.fanout import FanoutEngine
    from retrieval.queries import query_set_meta, register_queries
    from retrieval.service import create_app
    from retrieval.teacher import train_teacher

    st = Store.open(wordnet_home)
    build_index(st, factory="Flat", name="views-flat")
    rows = st.samples("wordnet", ["sample_id", "lemmas", "gloss"]).head(30)
    head = rows["lemmas"].list.join(", ").str.replace_all("_", " ")
    table = pl.DataFrame({"query_id": rows["sample_id"], "text": head + ": " + rows["gloss"],
                          "head": head, "body": rows["gloss"], "item": rows["sample_id"]})
    colon = register_queries(st, "views-flat", table, view_columns=["head", "body"],
                             item_column="item")
    own = table.with_columns(("about " + pl.col("head")).alias("title"))
    cols = register_queries(st, "views-flat", own, view_columns=["title", "body"],
                            item_column="item")
    single = register_queries(st, "views-flat", table, item_column="item")
    assert [query_set_meta(st, q["query_set"])["view_rule"] for q in (colon, cols, single)] \
        == ["colon", "columns", "single"]
    kw = dict(k=5, steps=2, group=2, batch=4)
    t_colon = train_teacher(st, "views-flat", colon["query_set"], **kw)["model_id"]
    t_cols = train_teacher(st, "views-flat", cols["query_set"], **kw)["model_id"]
    engine = FanoutEngine(st, "views-flat")
    q = "city, metropolis: a large and densely populated urban area"
    assert len(engine.query(text=q, k=5, method="teacher", model=t_colon)["items"]) == 5
    with pytest.raises(InvalidParameterError, match=r"views: \[title, body\]") as err:
        engine.query(text=q, k=5, method="teacher", model=t_cols)
    assert "\n" not in str(err.value)
    res = engine.query(text=q, k=5, method="teacher", model=t_cols,
                       views=["about city", "a large and densely populated urban area"])
    assert len({i["row_idx"] for i in res["items"]}) == 5
    with pytest.raises(InvalidParameterError, match="takes 2"):
        engine.query(text=q, k=5, method="teacher", model=t_cols, views=["one"])
    with pytest.raises(InvalidParameterError, match="reads one view"):
        engine.query(text=q, k=5, method="topk", views=["one"])
    vec = np.asarray(st.embeddings("wordnet")[0][0]).tolist()
    with pytest.raises(InvalidParameterError, match="needs a text query with its views"):
        engine.query(vector=vec, k=5, method="teacher", model=t_cols)
    from stores import files

    meta = files.read_json(st.model_path(t_cols) / "model.json")   # recorded at training
    assert meta["view_rule"] == "columns" and meta["view_names"] == ["text", "title", "body"]
    base = ["--store", str(wordnet_home), "fanout", "query", q, "--index", "views-flat",
            "--k", "5", "--method", "teacher", "--model", t_cols]
    assert main(base) == 2 and "give the other view" in capsys.readouterr().err
    assert main(base + ["--view", "about city", "--view", "a large urban area",
                        "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["items"]) == 5
    client = TestClient(create_app(wordnet_home, "views-flat"))
    body = {"query": q, "k": 5, "method": "teacher", "model": t_cols}
    r = client.post("/v1/fanout", json=body)
    assert r.status_code == 400 and "give the other view" in r.json()["detail"]
    r = client.post("/v1/fanout", json={**body, "views": ["about city", "a large area"]})
    assert r.status_code == 200, r.text


def test_normalise_golden_and_the_same_alone_or_in_a_batch(monkeypatch):
    import retrieval.index as ix

    X = np.array([[3.0, 4.0], [0.0, 0.0], [1e30, 1e30], [-2.0, 0.0]])
    got = ix.normalise(X)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.allclose(got, [[0.6, 0.8], [0, 0], [2 ** -0.5, 2 ** -0.5], [-1, 0]])
    assert X[0, 0] == 3.0                                  # a copy; the input is untouched
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(300, 384)).astype(np.float32)
    monkeypatch.setattr(ix, "NORMALISE_CHUNK", 7)          # chunk edges change nothing
    batch = ix.normalise(Q)
    assert all(np.array_equal(batch[i:i + 1], ix.normalise(Q[i:i + 1])) for i in (0, 6, 7, 299))
    for bad in ([[np.nan, 1.0]], [[1.0, np.inf]]):
        with pytest.raises(SchemaError, match="NaN or inf"):
            ix.normalise(np.array(bad))
    with pytest.raises(SchemaError, match="2-D"):
        ix.normalise(np.ones(3))
    assert ix.normalise(np.zeros((0, 4))).shape == (0, 4)
