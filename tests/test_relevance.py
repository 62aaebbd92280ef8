"""The learned relevance model (``retrieval.relevance``): it learns what cosine cannot see,
it is seeded, stored and loaded, and every method that takes one selects by it."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from core.errors import InvalidParameterError, MissingInputError
from retrieval import build_index, load_index
from retrieval.ascent import refine_grounding
from retrieval.index import distinct_rows, normalise
from retrieval.relevance import load_relevance, top_by, train_relevance
from retrieval.retriever import RETRIEVERS, make_retriever, retriever_class
from stores import IngestSpec, Store

K = 10


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """12 clusters of 50 items in 16-d; coordinate 0 is a ±0.6 tag, the rest the cluster's
    direction plus noise. A query is a noisy cluster direction with tag 0, so cosine ranks
    both tags alike; its references are the cluster's items with tag +. 200 vector queries."""
    root = tmp_path_factory.mktemp("rel")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 15))
    cluster = np.repeat(np.arange(12), 50)
    tag = np.where(rng.random(600) < 0.5, 0.6, -0.6)
    X = np.concatenate([tag[:, None], centres[cluster] + 0.3 * rng.normal(size=(600, 15))], 1)
    ids = [f"s{i}" for i in range(600)]
    pl.DataFrame({"id": ids, "vec": X.astype(np.float32).tolist()}).write_parquet(
        root / "d.parquet")
    st = Store.create(root / "s")
    st.ingest(root / "d.parquet", "d", IngestSpec(vector_column="vec", id_column="id"))
    build_index(st, "d", factory="Flat", name="flat")
    qc = rng.integers(0, 12, 200)
    Q = np.concatenate([np.zeros((200, 1)), centres[qc] + 0.3 * rng.normal(size=(200, 15))], 1)
    refs = [[ids[i] for i in np.flatnonzero((cluster == c) & (tag > 0))] for c in qc]
    table = pl.DataFrame({"query_id": [f"q{i}" for i in range(200)],
                          "qvec": Q.astype(np.float32).tolist(), "references": refs})
    from retrieval.queries import register_queries

    qs = register_queries(st, "flat", table, text_column=None, vector_column="qvec",
                          references_column="references")["query_set"]
    return st, qs, normalise(X.astype(np.float32))


def fit(tagged, seed=0):
    st, qs, _ = tagged
    return train_relevance(st, "flat", qs, pool=60, hidden=32, steps=300, batch=256, lr=3e-3,
                           seed=seed)


def test_it_learns_what_cosine_cannot_see_and_is_seeded(tagged):
    st, qs, Xn = tagged
    info = fit(tagged)
    # top-10 by cosine holds both tags alike (~5 of the 25 references); the model learns "+"
    assert info["val_recall_cosine"] < 0.3 and info["val_recall_model"] > 0.36
    assert info["n_pairs"] > 0 and 0 < info["positive_share"] < 1
    # the kept state is the best measured, the cosine start (step 0) included
    assert info["best_step"] > 0 and info["val_loss_start"] > min(info["history"]["val_loss"])
    again, other = fit(tagged), fit(tagged, seed=1)
    a, b, c = (load_relevance(st, i["model_id"]) for i in (info, again, other))
    same = [torch.equal(pa, pb) for pa, pb in zip(a.net.state_dict().values(),
                                                  b.net.state_dict().values(), strict=True)]
    differ = [torch.equal(pa, pc) for pa, pc in zip(a.net.state_dict().values(),
                                                    c.net.state_dict().values(), strict=True)]
    assert all(same) and not all(differ)                  # same seed, same model; not seed 1
    V = normalise(np.zeros((2, 16), np.float32) + np.eye(16, dtype=np.float32)[:2])[:, None]
    s = a.score(V, np.array([[0, 5, -1], [-1, -1, -1]]), Xn)
    assert s.shape == (2, 3) and np.isinf(s[0, 2]) and np.isinf(s[1]).all()
    assert ((s[0, :2] > 0) & (s[0, :2] < 1)).all()


def test_mmr_by_learned_relevance_keeps_the_tagged_items(tagged):
    st, qs, Xn = tagged
    rel = load_relevance(st, fit(tagged)["model_id"])
    index = load_index(st, "flat")
    from retrieval.queries import load_queries

    te = load_queries(st, qs, "test")
    plain = make_retriever("mmr", index, Xn, lam=1.0, pool=60).retrieve(te.views, K)
    learned = make_retriever("mmr", index, Xn, relevance=rel, lam=1.0, pool=60).retrieve(
        te.views, K)
    assert (Xn[learned.row_idx][:, :, 0] > 0).mean() > 0.9 > 0.7 > \
        (Xn[plain.row_idx][:, :, 0] > 0).mean()


class Scores:
    """A relevance model given by a table of per-item scores (a test double of
    ``retrieval.relevance.Relevance``: same attributes, any query gets the same scores)."""

    def __init__(self, table: np.ndarray, dim: int, views: int = 1):
        self.table, self.dim, self.views = table, dim, views

    def score(self, V, rows, vectors):
        return np.where(rows >= 0, self.table[np.clip(rows, 0, None)], -np.inf)

    def scorer(self, V, vectors):
        return lambda rows: self.score(V, rows, vectors)


def test_every_relevance_method_selects_by_it(tagged):
    """Relevance = 1 on a chosen 10 items far down the query's list, 0 elsewhere: mmr (λ = 1),
    dpp (θ → 1) and ascent under alignment only return exactly those items."""
    st, _, Xn = tagged
    index = load_index(st, "flat")
    q = Xn[:1]
    order = np.argsort(-(q @ Xn.T)[0])
    chosen = np.sort(order[30:40])
    table = np.zeros(len(Xn))
    table[chosen] = 1.0
    rel = Scores(table, 16)
    for name, params in (("mmr", {"lam": 1.0, "pool": 60}), ("dpp", {"theta": 0.999, "pool": 60}),
                         ("ascent", {"pool": 60, "sweeps": 2})):
        r = make_retriever(name, index, Xn, relevance=rel, **params)
        got = r.retrieve(q, K, weights={"alignment": 1.0})
        assert np.array_equal(np.sort(got.row_idx[0]), chosen), name


def test_refinement_swaps_to_the_most_relevant_free_hit():
    """Golden case: 4 items, k = 1, alignment only; hits [0, 1, 2]; relevance 0.1, 0.9, 0.5:
    the slot moves from item 0 to item 1 (cosine would keep the nearest, item 0)."""
    X = normalise(np.array([[1, 0.0], [0.6, 0.8], [0.8, 0.6], [0, 1]], np.float32))
    q = X[:1]
    hits = np.array([[[0, 1, 2]]])
    table = np.array([0.1, 0.9, 0.5, 0.0])
    by_cos = refine_grounding(X, q, hits, np.array([[0]]), {"alignment": 1.0})
    by_rel = refine_grounding(X, q, hits, np.array([[0]]), {"alignment": 1.0},
                              relevance=lambda rows: table[rows])
    assert by_cos.tolist() == [[0]] and by_rel.tolist() == [[1]]
    with pytest.raises(InvalidParameterError, match="groundedness"):
        refine_grounding(X, q, hits, np.array([[0]]), {"groundedness": 1.0},
                         pool=X[None, :2], relevance=lambda rows: table[rows])


def test_relevance_is_refused_where_it_cannot_act(tagged):
    st, qs, Xn = tagged
    index = load_index(st, "flat")
    rel = Scores(np.zeros(len(Xn)), 16)
    users = [n for n in RETRIEVERS if retriever_class(n).uses_relevance]
    assert set(users) == {"mmr", "dpp", "ascent", "teacher", "diffusion"}
    with pytest.raises(InvalidParameterError, match="does not re-rank by relevance"):
        make_retriever("topk", index, Xn, relevance=rel)
    from retrieval.teacher import Teacher

    teacher = Teacher(index, Xn, k=K, views=1, seed=0)
    with pytest.raises(InvalidParameterError, match="refine"):
        make_retriever("teacher", index, Xn, model=teacher, relevance=rel)
    with pytest.raises(InvalidParameterError, match="3 query views"):
        make_retriever("teacher", index, Xn, model=teacher,
                       relevance=Scores(np.zeros(len(Xn)), 16, views=3), refine=1)
    r = make_retriever("teacher", index, Xn, model=teacher, relevance=rel, refine=1)
    with pytest.raises(InvalidParameterError, match="groundedness"):
        r.retrieve(Xn[:3], K, seed=0, weights={"groundedness": 1.0})


def test_the_model_methods_ground_by_it(tagged):
    """The teacher's and the diffusion retriever's ``refine`` swap each slot for the hit of
    its sub-query the relevance model prefers: relevance 1 on the tag-+ items, 0 on the
    others, under alignment only, lifts the share of tag-+ items well above cosine's (one
    sweep over a shortlist of each slot's hits: a lift, not a full swap)."""
    from retrieval.diffusion import DiffusionConfig, SetDiffusion
    from retrieval.teacher import Teacher

    st, _, Xn = tagged
    index = load_index(st, "flat")
    rel = Scores((Xn[:, 0] > 0).astype(float), 16)
    models = {"teacher": Teacher(index, Xn, k=K, views=1, seed=0),
              "diffusion": SetDiffusion(DiffusionConfig(dim=16, k=K, sigma_data=0.3, width=16,
                                                        layers=1, views=1),
                                        torch.Generator().manual_seed(0))}
    q = Xn[::60]                                                # one query a cluster
    for name, model in models.items():
        share = {}
        for with_rel in (False, True):
            r = make_retriever(name, index, Xn, model=model, refine=1,
                               relevance=rel if with_rel else None)
            got = r.retrieve(q, K, seed=0, weights={"alignment": 1.0}).row_idx
            share[with_rel] = float((Xn[got][:, :, 0] > 0).mean())
        assert share[True] > share[False] + 0.15, (name, share)


def test_a_diverging_fit_is_an_error_and_writes_nothing(tagged, monkeypatch):
    from retrieval.relevance import RelevanceNet

    st, qs, _ = tagged
    before = sorted(p.name for p in (st.root / "models").iterdir())
    monkeypatch.setattr(RelevanceNet, "forward",
                        lambda self, x, V: x.sum(1) * float("nan"))
    with pytest.raises(InvalidParameterError, match="diverged.*lower lr"):
        train_relevance(st, "flat", qs, pool=60, hidden=8, steps=5, batch=64, seed=0)
    assert sorted(p.name for p in (st.root / "models").iterdir()) == before


def test_a_query_set_without_references_cannot_train_one(tagged):
    st, _, Xn = tagged
    from retrieval.queries import register_queries

    table = pl.DataFrame({"query_id": [f"q{i}" for i in range(20)],
                          "qvec": Xn[:20].tolist()})
    qs = register_queries(st, "flat", table, text_column=None, vector_column="qvec")
    with pytest.raises(MissingInputError, match="references"):
        train_relevance(st, "flat", qs["query_set"])


def test_distinct_rows_and_top_by_golden():
    rows = np.array([[5, 3, 5, -1, 2], [7, 7, 7, 1, -1]])
    assert distinct_rows(rows, np.array([2, -1])).tolist() == [[3, 5], [1, 7]]
    assert distinct_rows(rows).tolist() == [[2, 3, 5], [1, 7, -1]]
    s = np.array([[0.1, 0.9, -np.inf], [0.5, -np.inf, -np.inf]])
    assert top_by(s, np.array([[4, 8, 9], [6, 2, 3]]), 2).tolist() == [[8, 4], [6, -1]]


def test_an_untrained_model_ranks_as_cosine():
    """``start_at_cosine``: the MLP's output layer is zero, so r(q, x) = σ(10·(cos − 0.5)) —
    an untrained model keeps the baseline's order instead of noise."""
    from core.nn import init_linear_layers
    from retrieval.relevance import Relevance, RelevanceNet

    rng = np.random.default_rng(1)
    X = normalise(rng.normal(size=(50, 8)).astype(np.float32))
    V = normalise(rng.normal(size=(3, 8)).astype(np.float32))[:, None, :]
    net = init_linear_layers(RelevanceNet(8, 1, 16), torch.Generator().manual_seed(0))
    rows = np.tile(np.arange(50), (3, 1))
    s = Relevance(net.start_at_cosine(), {}).score(V, rows, X)
    assert np.allclose(s, 1 / (1 + np.exp(-10 * (V[:, 0] @ X.T - 0.5))), atol=1e-5)


def test_a_repeated_row_is_scored_once_and_alike():
    """``Relevance.score`` scores each distinct (query, row) once: a table with repeats and
    −1 gives what scoring each column alone gives."""
    from core.nn import init_linear_layers
    from retrieval.relevance import Relevance, RelevanceNet

    rng = np.random.default_rng(2)
    X = normalise(rng.normal(size=(30, 8)).astype(np.float32))
    V = normalise(rng.normal(size=(4, 8)).astype(np.float32)).reshape(2, 2, 8)
    net = init_linear_layers(RelevanceNet(8, 2, 16), torch.Generator().manual_seed(0))
    rel = Relevance(net, {})
    rows = np.array([[3, 5, 3, -1, 5, 7], [-1, 2, 2, 2, 9, -1]])
    got = rel.score(V, rows, X)
    each = np.concatenate([rel.score(V, rows[:, [c]], X) for c in range(rows.shape[1])], 1)
    assert np.array_equal(np.isinf(got), rows < 0)
    assert np.allclose(got, each, atol=1e-6)
    assert got[0, 0] == got[0, 2] and got[1, 1] == got[1, 3]


def test_a_stale_model_is_skipped_at_start_up_but_refused_by_name(tagged, monkeypatch):
    """A stored model this Curate cannot load (e.g. an older layout) must not stop the
    service's default preload; named explicitly, it is the one-line error."""
    from core.errors import SchemaError
    from retrieval.fanout import FanoutEngine
    from retrieval.relevance import RelevanceNet

    st, qs, _ = tagged
    model_id = train_relevance(st, "flat", qs, pool=60, hidden=8, steps=5, batch=64,
                               seed=3)["model_id"]

    def stale(self, state, *args, **kwargs):
        raise RuntimeError('Error(s) in loading state_dict:\n\tMissing key(s): "scale"')

    monkeypatch.setattr(RelevanceNet, "load_state_dict", stale)
    loaded = FanoutEngine(st, "flat").warm_up()
    assert model_id not in loaded["models"]
    assert "\n" not in loaded["skipped"][model_id]
    assert "unreadable" in loaded["skipped"][model_id]
    with pytest.raises(SchemaError, match="train it again"):
        FanoutEngine(st, "flat").warm_up([model_id])
