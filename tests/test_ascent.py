"""retrieval/ascent.py: reward-guided grounding (coordinate ascent of the composite) and the
``ascent`` retriever; objectives from Gram matrices (``objectives.composite_parts``)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from retrieval import build_index, load_index
from retrieval.ascent import refine_grounding
from retrieval.index import assign_nearest, normalise, sub_query_hits
from retrieval.objectives import (
    check_weights,
    composite_parts,
    neighbourhood,
    score_sets,
    vendi,
    vendi2_gram,
)
from retrieval.retriever import make_retriever
from stores import IngestSpec, Store

WEIGHTS = [None, {"alignment": 1.0}, {"diversity": 1.0},
           {"coverage": 0.5, "groundedness": 0.2, "diversity": 0.3},
           {"complementarity": 1.0, "coherence": 0.5, "alignment": 0.1}]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ascent")
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(10, 12))[rng.integers(0, 10, 500)]
         + 0.3 * rng.normal(size=(500, 12))).astype(np.float32)
    pl.DataFrame({"vec": X.tolist()}).write_parquet(root / "d.parquet")
    st = Store.create(root / "s")
    st.ingest(root / "d.parquet", "d", IngestSpec(vector_column="vec"))
    build_index(st, "d", factory="Flat", name="flat")
    Q = normalise(X[rng.choice(500, 7, replace=False)] + 0.3 * rng.normal(size=(7, 12)))
    return load_index(st, "flat"), normalise(X), Q


# -- objectives from Gram matrices -----------------------------------------------------------

@pytest.mark.parametrize("weights", WEIGHTS)
def test_composite_parts_equals_score_sets(world, weights):
    index, Xn, Q = world
    rng = np.random.default_rng(3)
    rows = np.stack([np.stack([rng.choice(len(Xn), 6, replace=False) for _ in range(4)])
                     for _ in range(len(Q))])                             # (B, 4, 6)
    pool = neighbourhood(index, Xn, Q)
    want = score_sets(index, Xn, Q, rows, weights, pool)["composite"]
    S = Xn[rows]                                                          # (B, 4, 6, d)
    G = S @ S.transpose(0, 1, 3, 2)
    a = np.einsum("bnkd,bd->bnk", S, Q)
    tau = np.einsum("bd,bd->b", Q, pool[:, -1])[:, None]
    cover = (pool[:, None] @ S.transpose(0, 1, 3, 2)).max(3).mean(2)     # (B, 4)
    got = composite_parts(G, a, weights, tau, cover)
    assert np.allclose(got, want, atol=1e-5)


def test_gram_objectives_golden():
    """Two orthogonal unit items: complementarity 1, coherence cos(e_i, (e1 + e2)/√2) = 1/√2;
    two copies: complementarity 0, coherence 1."""
    from retrieval.objectives import coherence_gram, complementarity_gram

    ortho, copies = np.eye(2)[None], np.ones((1, 2, 2))
    assert np.allclose(complementarity_gram(ortho), 1.0)
    assert np.allclose(coherence_gram(ortho), 1 / np.sqrt(2))
    assert np.allclose(complementarity_gram(copies), 0.0)
    assert np.allclose(coherence_gram(copies), 1.0)


def test_refinement_refuses_rows_that_are_not_a_valid_set(world):
    index, Xn, Q = world
    hits = index.search(Q[:1], 10)[1][:, None, :]
    for bad in ([[-1, 2, 3]], [[2, 2, 3]], [[2, 3, len(Xn)]]):
        with pytest.raises(ValueError, match="valid, distinct"):
            refine_grounding(Xn, Q[:1], hits, np.array(bad))


def test_order2_vendi_golden():
    """k copies → 1, k orthogonal items → k, and never above the Vendi score."""
    e = np.eye(4, dtype=np.float64)
    copies = np.repeat(e[:1], 4, axis=0)
    assert np.isclose(vendi2_gram((copies @ copies.T)[None])[0], 1.0)
    assert np.isclose(vendi2_gram((e @ e.T)[None])[0], 4.0)
    rng = np.random.default_rng(0)
    S = normalise(rng.normal(size=(20, 5)).astype(np.float32)).reshape(4, 5, 5)
    assert (vendi2_gram(S @ S.transpose(0, 2, 1)) <= vendi(S) + 1e-5).all()


# -- refine_grounding: hand-computed cases -----------------------------------------------------

def test_alignment_only_swaps_to_the_most_aligned_free_hit():
    """q = (1, 0); cosines to q: A 0.5, B 0.9, C 0.8. Slot 0's hits [A, C], slot 1's
    [B, A]: nearest grounding gives [A, B]; under pure alignment slot 0 swaps A for C (0.8 >
    0.5), slot 1 keeps B (0.9 > A's 0.5) — [C, B]."""
    def unit(c):
        return [c, np.sqrt(1 - c * c)]

    X = np.array([unit(0.5), unit(0.9), unit(0.8)], dtype=np.float32)    # A, B, C
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    hits = np.array([[[0, 2], [1, 0]]])
    rows = assign_nearest(hits)
    assert rows.tolist() == [[0, 1]]
    out = refine_grounding(X, q, hits, rows, {"alignment": 1.0}, shortlist=0)
    assert out.tolist() == [[2, 1]]
    # the excluded row is never taken: excluding C keeps [A, B]
    out = refine_grounding(X, q, hits, rows, {"alignment": 1.0}, exclude=np.array([2]))
    assert out.tolist() == [[0, 1]]


def test_diversity_only_swaps_a_near_copy_for_an_orthogonal_item():
    """Items e1, e1' (cos 0.99 to e1) and e2. Set [e1, e1'] (Vendi ≈ 1.0); slot 0's hits
    [e1, e1'] (e1' is slot 1's, so it keeps e1), slot 1's [e1', e2, e1]: under pure diversity
    slot 1 takes e2 (Vendi 2, orthogonal), whatever the shortlist."""
    X = normalise(np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]], dtype=np.float32))
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    hits = np.array([[[0, 1, 1], [1, 2, 0]]])
    for shortlist in (0, 1):
        out = refine_grounding(X, q, hits, np.array([[0, 1]]), {"diversity": 1.0},
                               shortlist=shortlist)
        assert out.tolist() == [[0, 2]]


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("shared", [False, True])
def test_refinement_never_lowers_the_composite(world, weights, shared):
    index, Xn, Q = world
    rng = np.random.default_rng(7)
    k = 6
    sub = normalise((Q[:, None] + 0.4 * rng.normal(size=(len(Q), k, 12))).reshape(-1, 12)
                    ).reshape(len(Q), k, 12)
    hits = sub_query_hits(index, sub, 15)
    if shared:
        hits = index.search(Q, 40)[1][:, None, :]
    exclude = index.search(Q, 1)[1][:, 0]
    rows = assign_nearest(np.repeat(hits, k, axis=1) if shared else hits, exclude)
    pool = neighbourhood(index, Xn, Q)
    before = score_sets(index, Xn, Q, rows, weights, pool)["composite"]
    last = before
    for sweeps in (1, 2):
        out = refine_grounding(Xn, Q, hits, rows, weights, sweeps=sweeps, exclude=exclude,
                               pool=pool)
        assert all(len(set(r)) == k for r in out.tolist())
        assert not (out == exclude[:, None]).any()
        for b in range(len(Q)):                           # each query's own hits
            assert np.isin(out[b], hits[b]).all()
        after = score_sets(index, Xn, Q, out, weights, pool)["composite"]
        assert (after >= last - 1e-6).all()
        last = after
    if not (shared and weights == {"alignment": 1.0}):    # top-k is already that optimum
        assert (last > before + 1e-4).any()


def test_refinement_needs_the_pool_for_coverage(world):
    index, Xn, Q = world
    hits = index.search(Q, 20)[1][:, None, :]
    rows = hits[:, 0, :4]
    with pytest.raises(ValueError, match="pool"):
        refine_grounding(Xn, Q, hits, rows, {"coverage": 1.0})


# -- the retrievers ----------------------------------------------------------------------------

def test_ascent_is_topk_under_pure_alignment_and_beats_it_otherwise(world):
    index, Xn, Q = world
    k = 8
    top = make_retriever("topk", index, Xn).retrieve(Q, k).row_idx
    asc = make_retriever("ascent", index, Xn, pool=60)
    aligned = asc.retrieve(Q, k, weights={"alignment": 1.0}).row_idx
    assert np.array_equal(np.sort(aligned, 1), np.sort(top, 1))
    got = score_sets(index, Xn, Q, asc.retrieve(Q, k).row_idx)["composite"]
    base = score_sets(index, Xn, Q, top)["composite"]
    assert (got >= base - 1e-6).all() and (got > base + 1e-3).any()


def test_model_methods_refine_under_the_request_weights(world):
    """refine = 1 never scores below refine = 0 for the same seed, under the request's
    weights (the teacher's and the diffusion retriever's grounding)."""
    from retrieval.diffusion import DiffusionConfig, SetDiffusion
    from retrieval.teacher import Teacher

    index, Xn, Q = world
    k = 6
    models = {"teacher": Teacher(index, Xn, k=k, seed=0),
              "diffusion": SetDiffusion(DiffusionConfig(dim=12, k=k, sigma_data=0.3, width=16,
                                                        layers=1),
                                        torch.Generator().manual_seed(0))}
    for name, model in models.items():
        for weights in (None, {"diversity": 1.0, "coverage": 0.5}):
            plain = make_retriever(name, index, Xn, model=model).retrieve(
                Q, k, seed=2, weights=weights).row_idx
            refined = make_retriever(name, index, Xn, model=model, refine=1).retrieve(
                Q, k, seed=2, weights=weights).row_idx
            a, b = (score_sets(index, Xn, Q, r, weights)["composite"] for r in (plain, refined))
            assert (b >= a - 1e-6).all(), name
            assert (b > a + 1e-4).any(), name


@pytest.mark.parametrize("weights", [None, {"coverage": 0.5, "groundedness": 0.2,
                                            "diversity": 0.3, "alignment": 0.4}])
def test_order2_shortcut_equals_the_tries_gram_matrices(world, weights):
    """The O(k)-per-try order-2 score equals ``composite_parts(order2=True)`` on every try's
    full Gram matrix (the shortlist does not depend on which is used)."""
    from retrieval.ascent import _order2_tries, _tries

    index, Xn, Q = world
    B, k, P = len(Q), 5, 9
    rows = index.search(Q, k)[1]
    hits = index.search(Q, k + P)[1][:, k:]                                # (B, P)
    X, Xc = Xn[rows], Xn[hits]
    G, a = X @ X.transpose(0, 2, 1), np.einsum("bkd,bd->bk", X, Q)
    cross, self_sim = Xc @ X.transpose(0, 2, 1), np.einsum("bpd,bpd->bp", Xc, Xc)
    a_hit = np.einsum("bpd,bd->bp", Xc, Q)
    pool = neighbourhood(index, Xn, Q)
    tau = np.einsum("bd,bd->b", Q, pool[:, -1])[:, None]
    cover = np.random.default_rng(0).random((B, P + 1))
    every = np.broadcast_to(np.arange(P + 1), (B, P + 1))
    for j in (0, 3):
        Gt, at = _tries(G, a, cross, self_sim, a_hit, j, every)
        want = composite_parts(Gt, at, weights, tau, cover, order2=True)
        got = _order2_tries(G, a, cross, self_sim, a_hit, j, check_weights(weights), tau,
                            cover)
        assert np.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("weights", [None, {"complementarity": 1.0, "alignment": 0.5}])
def test_the_current_item_takes_no_shortlist_place(weights):
    """A slot's current item among its hits is the set as it stands (try 0, always scored), so
    it must not use one of the ``shortlist`` places: one sweep gives the same sets whether or
    not each slot's list also holds its current item (shortlist 1, 200 random queries)."""
    rng = np.random.default_rng(3)
    X = normalise(rng.normal(size=(300, 16)).astype(np.float32))
    q = normalise(rng.normal(size=(200, 16)).astype(np.float32))
    rows = np.stack([rng.choice(300, 5, replace=False) for _ in range(200)])
    hits = rng.integers(0, 300, size=(200, 5, 8))
    with_current = np.concatenate([rows[:, :, None], hits], axis=2)
    plain = refine_grounding(X, q, hits, rows, weights, shortlist=1)
    assert (plain != rows).any()
    assert np.array_equal(refine_grounding(X, q, with_current, rows, weights, shortlist=1),
                          plain)
