"""The contract every registered retriever must pass (parametrised over the registry), and
small hand-computed golden cases for the pieces they share (grounding, refilling, DPP)."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
import torch

from core.errors import CurateError, InvalidParameterError, UnknownMethodError
from retrieval import build_index, load_index
from retrieval.index import ground, normalise
from retrieval.retriever import (
    RETRIEVERS,
    FanoutResult,
    Retriever,
    complete,
    make_retriever,
    retriever_class,
)
from stores import IngestSpec, Store

K = 12          # larger than mmr/dpp's pool below and than a sub-query's hits (per=20 − taken)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 400-row clustered vector store with a Flat index, an untrained teacher (k = K) and
    an untrained diffusion model (k = K): the contract is about shapes and guarantees."""
    from retrieval.diffusion import DiffusionConfig, SetDiffusion
    from retrieval.teacher import Teacher

    root = tmp_path_factory.mktemp("retr")
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(8, 16))[rng.integers(0, 8, 400)]
         + 0.05 * rng.normal(size=(400, 16))).astype(np.float32)
    pl.DataFrame({"vec": X.tolist()}).write_parquet(root / "d.parquet")
    st = Store.create(root / "s")
    st.ingest(root / "d.parquet", "d", IngestSpec(vector_column="vec"))
    build_index(st, "d", factory="Flat", name="flat")
    index = load_index(st, "flat")
    Xn = normalise(X)
    models = {"teacher": Teacher(index, Xn, k=K, seed=0),
              "diffusion": SetDiffusion(DiffusionConfig(dim=16, k=K, sigma_data=0.3, width=16,
                                                        layers=1),
                                        torch.Generator().manual_seed(0))}
    Q = normalise(X[rng.choice(400, 6, replace=False)] + 0.05 * rng.normal(size=(6, 16)))
    return index, Xn, models, Q


def build(name, world, **params) -> Retriever:
    index, Xn, models, _ = world
    if name in ("mmr", "dpp"):
        params.setdefault("pool", 3)           # fewer candidates than k: the base refills
    return make_retriever(name, index, Xn, model=models.get(name), **params)


@pytest.mark.parametrize("name", list(RETRIEVERS))
def test_k_distinct_valid_rows_for_every_query(name, world):
    index, Xn, _, Q = world
    exclude = np.array([0, 5, -1, 7, 9, 11])
    res = build(name, world).retrieve(Q, K, seed=1, exclude=exclude)
    assert isinstance(res, FanoutResult) and res.row_idx.shape == (len(Q), K)
    assert res.row_idx.dtype == np.int64 and not res.row_idx.flags.writeable
    assert ((res.row_idx >= 0) & (res.row_idx < len(Xn))).all()
    assert all(len(set(r)) == K for r in res.row_idx.tolist())
    assert not (res.row_idx == exclude[:, None]).any()
    assert np.allclose(res.scores, np.einsum("bkd,bd->bk", Xn[res.row_idx], Q), atol=1e-5)
    assert ((res.source >= -1) & (res.source < K)).all()


@pytest.mark.parametrize("name", list(RETRIEVERS))
def test_same_seed_same_set_and_views_accepted(name, world):
    _, _, models, Q = world
    r = build(name, world)
    a = r.retrieve(Q, K, seed=3).row_idx
    assert np.array_equal(a, r.retrieve(Q, K, seed=3).row_idx)
    views = np.repeat(Q[:, None, :], r.n_views or 1, axis=1)         # (B, V, d) works too
    assert np.array_equal(a, r.retrieve(views, K, seed=3).row_idx)


@pytest.mark.parametrize("name,params", [(n, {}) for n in RETRIEVERS]
                         + [("diffusion", {"best_of": 3}), ("diffusion", {"refine": 1})])
def test_shared_call_stages_give_the_unseeded_answer_per_query(name, params, world):
    """The service's two stages (one ``batch_stage`` call on the stacked views, then each
    query's ``finish_stage`` on its own row) answer what ``retrieve`` answers the batch."""
    _, _, _, Q = world
    r = build(name, world, **params)
    V = np.repeat(Q[:, None, :], r.n_views or 1, axis=1)
    want = r.retrieve(V, K)
    part = r.batch_stage(V, K)
    assert len(part) == len(Q)
    for i in range(len(Q)):
        got = r.finish_stage(V[i:i + 1], part[i:i + 1], K)
        assert np.array_equal(got.row_idx, want.row_idx[i:i + 1])
        assert np.array_equal(got.source, want.source[i:i + 1])
        assert np.allclose(got.scores, want.scores[i:i + 1], atol=1e-6)


@pytest.mark.parametrize("name", list(RETRIEVERS))
def test_bad_parameters_are_one_curate_error(name, world):
    cls = retriever_class(name)
    assert cls.name == name and cls.summary
    with pytest.raises(InvalidParameterError, match="unknown parameter"):
        build(name, world, colour="blue")
    for p in cls.param_names():
        default = getattr(cls, p)
        if isinstance(default, (bool, int, float)) and not isinstance(default, bool):
            with pytest.raises(CurateError) as err:
                build(name, world, **{p: "5"})                      # a string is not a number
            assert len(str(err.value).splitlines()) == 1
    r = build(name, world)
    for bad in ({"k": 0}, {"k": 10_000}, {"k": 2.5}, {"seed": -1}, {"weights": {"x": 1}}):
        kwargs = {"k": K, **bad}
        with pytest.raises(CurateError) as err:
            r.retrieve(world[3], kwargs.pop("k"), **kwargs)
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(InvalidParameterError, match="queries must be"):
        r.retrieve(np.zeros((2, 5)), K)


def test_topk_is_brute_force(world):
    index, Xn, _, Q = world
    res = build("topk", world).retrieve(Q, K)
    brute = np.argsort(-(Q @ Xn.T), axis=1, kind="stable")[:, :K + 1]
    assert np.array_equal(np.sort(res.row_idx, 1), np.sort(brute[:, :K], 1))
    ex = build("topk", world).retrieve(Q, K, exclude=brute[:, 0])
    assert np.array_equal(np.sort(ex.row_idx, 1), np.sort(brute[:, 1:], 1))


def test_model_methods_need_their_model_and_an_unknown_name_suggests(world):
    index, Xn, _, _ = world
    for name in ("teacher", "diffusion"):
        with pytest.raises(InvalidParameterError, match="needs a"):
            make_retriever(name, index, Xn)
    with pytest.raises(UnknownMethodError, match="did you mean 'mmr'"):
        make_retriever("mrr", index, Xn)


def test_weights_drive_the_teacher_search(world):
    """Best-of-N ranks by the request's weights: pure alignment returns a set at least as
    aligned as the default's, pure diversity one at least as diverse."""
    from retrieval.objectives import score_sets

    index, Xn, _, Q = world
    r = build("teacher", world, best_of=16)
    align = r.retrieve(Q, K, seed=0, weights={"alignment": 1.0}).row_idx
    div = r.retrieve(Q, K, seed=0, weights={"diversity": 1.0}).row_idx
    sa, sd = (score_sets(index, Xn, Q, rows) for rows in (align, div))
    assert (sa["alignment"] >= sd["alignment"] - 1e-6).all()
    assert (sd["diversity"] >= sa["diversity"] - 1e-6).all()
    assert (sd["diversity"] > sa["diversity"] + 1e-3).any()


def test_cem_rounds_never_lower_the_best_reward(world):
    index, Xn, models, Q = world
    teacher = models["teacher"]
    _, r0, _ = teacher.search(Q, 8, rounds=0, seed=4)
    _, r3, _ = teacher.search(Q, 8, rounds=3, seed=4)
    assert (r3 >= r0 - 1e-9).all() and (r3 > r0 + 1e-6).any()


# -- golden cases ----------------------------------------------------------------------------

def test_ground_gives_distinct_rows_even_when_all_subqueries_agree(world):
    index, Xn, _, _ = world
    q = Xn[3]
    sub = np.repeat(q[None, None, :], K, axis=1)                       # K identical slots
    rows = ground(index, sub, per=1)
    top = np.argsort(-(Xn @ q), kind="stable")[:K]
    assert rows.tolist() == [top.tolist()]                             # the top-K, in order
    rows = ground(index, sub, exclude=np.array([top[0]]))
    assert rows[0].tolist() == np.argsort(-(Xn @ q), kind="stable")[1:K + 1].tolist()


def test_complete_refills_holes_repeats_and_excluded_rows(world):
    index, Xn, _, _ = world
    q = Xn[10:11]
    near = np.argsort(-(Xn @ q[0]), kind="stable")
    rows = np.array([[near[4], -1, near[4], near[0], 999]])            # hole, repeat, exclude, bad
    fixed, source = complete(index, Xn, q, rows, np.array([[2, 3, 4, 5, 6]]),
                             exclude=np.array([near[0]]))
    # kept: near[4] in slot 0; the rest take the nearest unused in order: near[1], [2], [3]
    assert fixed.tolist() == [[near[4], near[1], near[2], near[3], near[5]]]
    assert source.tolist() == [[2, -1, -1, -1, -1]]


def test_dpp_golden_three_items():
    """x1, x2 almost the same and most relevant, x3 orthogonal and less relevant: the DPP's
    second pick is x3 (x2 adds almost no volume); with θ → 1 relevance wins and it is x2."""
    from retrieval.dpp import greedy_dpp

    X = normalise(np.array([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0]]))
    S = X @ X.T
    for theta, second in ((0.5, 2), (0.99, 1)):
        alpha = theta / (2 * (1 - theta))
        qual = np.exp(alpha * np.array([0.9, 0.89, 0.5]))
        L = (qual[:, None] * S * qual[None, :])[None]
        assert greedy_dpp(L, 2, np.ones((1, 3), bool), np.zeros((1, 3))).tolist() == \
            [[0, second]]


def test_dpp_greedy_equals_naive_log_det_greedy():
    from retrieval.dpp import greedy_dpp

    rng = np.random.default_rng(5)
    A = rng.normal(size=(9, 6))
    L = A @ A.T + 1e-3 * np.eye(9)
    chosen: list[int] = []
    for _ in range(5):
        gains = {i: np.linalg.slogdet(L[np.ix_(chosen + [i], chosen + [i])])[1]
                 for i in range(9) if i not in chosen}
        chosen.append(max(gains, key=gains.get))
    fast = greedy_dpp(L[None], 5, np.ones((1, 9), bool), np.zeros((1, 9)))[0].tolist()
    assert fast == chosen
    assert len(set(itertools.chain(fast))) == 5


def test_mmr_golden():
    """q = x1 = (1, 0); x2 = (0.995, 0.0998), x3 = (0.8, 0.6): rel = sim to x1 = (1, 0.995,
    0.8). First pick x1; then value_i = λ·rel_i − (1 − λ)·rel_i = (2λ − 1)·rel_i: λ = 0.7
    gives x2 (0.398 > 0.32), λ = 0.3 gives x3 (−0.32 > −0.398)."""
    from retrieval.baselines import MMRRetriever

    X = normalise(np.array([[1.0, 0.0], [0.995, 0.0998], [0.8, 0.6]]))

    class FakeIndex:
        dim, meta = 2, {"n": 3}

        def search(self, q, k, params=None):
            rel = q @ X.T
            order = np.argsort(-rel, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(rel, order, 1), order

    q = np.array([[[1.0, 0.0]]], dtype=np.float32)
    for lam, second in ((0.7, 1), (0.3, 2)):
        r = MMRRetriever(FakeIndex(), X, lam=lam, pool=3)
        assert r._retrieve(q, 2, {}, None, None)[0].tolist() == [[0, second]]


def test_score_sets_equals_set_objectives_per_set(world):
    """The batched scorer (n candidate sets per query, one shared neighbourhood) gives what
    ``set_objectives`` gives for each set on its own."""
    from retrieval.objectives import neighbourhood, score_sets, set_objectives

    index, Xn, _, Q = world
    rng = np.random.default_rng(2)
    rows = np.stack([np.stack([rng.choice(len(Xn), 5, replace=False) for _ in range(3)])
                     for _ in range(len(Q))])                             # (B, 3, 5)
    batched = score_sets(index, Xn, Q, rows, {"coverage": 1.0, "diversity": 0.5})
    pool = neighbourhood(index, Xn, Q)
    for j in range(3):
        one = set_objectives(Q, Xn[rows[:, j]], pool, {"coverage": 1.0, "diversity": 0.5})
        for name, value in one.items():
            assert np.allclose(batched[name][:, j], value, atol=1e-5), name
