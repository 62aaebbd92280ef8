"""retrieval/diffusion.py: EDM golden values, the sampler's schedule, learning a conditional
set distribution, and snapping to distinct index rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from curate.errors import InvalidParameterError
from retrieval import build_index, load_index
from retrieval.diffusion import DiffusionConfig, DiffusionRetriever, SetDiffusion, train_diffusion
from retrieval.index import normalise
from stores import IngestSpec, Store


def test_edm_preconditioning_golden():
    """F is zero at initialisation, so D(x; σ) = c_skip(σ)·x = σ_d²/(σ² + σ_d²)·x."""
    cfg = DiffusionConfig(dim=8, k=3, sigma_data=0.5, width=16, layers=1)
    model = SetDiffusion(cfg, torch.Generator().manual_seed(0))
    x = torch.ones(2, 3, 8)
    q = torch.zeros(2, 8)
    for sigma, c_skip in ((0.5, 0.5), (1.5, 0.1), (0.0005, 0.25 / (0.25 + 0.00000025))):
        D = model.denoise(x, torch.full((2,), sigma), q)
        assert torch.allclose(D, torch.full_like(x, c_skip), atol=1e-6)


def test_karras_schedule():
    cfg = DiffusionConfig(dim=4, k=2, sigma_data=0.05)
    t = SetDiffusion(cfg, torch.Generator().manual_seed(0)).sigmas(6)
    assert t.shape == (7,) and t[-1] == 0
    assert t[0] == pytest.approx(80 * 0.1) and t[5] == pytest.approx(0.002 * 0.1, rel=1e-4)
    assert bool((t[1:] < t[:-1]).all())


def random_model(views: int = 3) -> SetDiffusion:
    """A denoiser with every weight random (the zero-initialised output layers too)."""
    cfg = DiffusionConfig(dim=12, k=4, sigma_data=0.3, width=16, layers=2, views=views)
    model = SetDiffusion(cfg, torch.Generator().manual_seed(0)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(0.3 * torch.randn(prm.shape, generator=g))
    return model


@pytest.mark.parametrize("drop", [False, True])
def test_fast_forward_equals_the_module_forward(drop):
    """The inference path (views prepared once, attention spelled out) is the same function as
    the nn.TransformerDecoder forward the model is trained with."""
    model, g = random_model(), torch.Generator().manual_seed(2)
    x, views = torch.randn(5, 4, 12, generator=g), torch.randn(5, 3, 12, generator=g)
    with torch.no_grad():
        for c_noise in (-1.3, 0.0, 0.9):
            ref = model.net(x, torch.full((5,), c_noise), views, torch.full((5,), drop))
            fast = model.net.fast(x, c_noise, model.net.prepare(views, drop=drop))
            assert torch.allclose(fast, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_sampler_equals_heun_over_denoise(guidance):
    """``sample`` = EDM's Heun sampler written over ``denoise`` (the training-time function)."""
    model = random_model()
    views = torch.randn(3, 3, 12, generator=torch.Generator().manual_seed(3))
    got = model.sample(views, steps=4, guidance=guidance,
                       generator=torch.Generator().manual_seed(4))
    t = model.sigmas(4)
    x = t[0] * torch.randn((3, 4, 12), generator=torch.Generator().manual_seed(4))

    def D(x_, s):
        sig = torch.full((3,), float(s))
        with torch.no_grad():
            cond = model.denoise(x_, sig, views)
            uncond = model.denoise(x_, sig, views, torch.ones(3, dtype=torch.bool))
        return uncond + guidance * (cond - uncond)

    for i in range(4):
        d = (x - D(x, t[i])) / t[i]
        nxt = x + (t[i + 1] - t[i]) * d
        if t[i + 1] > 0:
            nxt = x + (t[i + 1] - t[i]) * (d + (nxt - D(nxt, t[i + 1])) / t[i + 1]) / 2
        x = nxt
    assert torch.allclose(got, x, atol=1e-4, rtol=1e-4)


def test_diffusion_learns_a_query_conditioned_set():
    """Targets: q + one of k fixed offsets (shuffled per row). After training, every sampled
    token lies near one true token and every true token is covered — far above random."""
    rng = np.random.default_rng(0)
    d, k, m = 8, 3, 400
    Q = normalise(rng.normal(size=(m, d))).astype(np.float32)
    offsets = 0.6 * rng.normal(size=(k, d))
    T = np.stack([normalise(q + offsets[rng.permutation(k)]) for q in Q]).astype(np.float32)
    model, hist = train_diffusion(Q, T, epochs=25, batch=64, lr=2e-3, width=32, layers=2,
                                  seed=0)
    assert hist["val_loss"][-1] < 0.5 * hist["val_loss"][0]
    Qt = normalise(rng.normal(size=(40, d))).astype(np.float32)
    y = model.sample(torch.as_tensor(Qt), steps=8, generator=torch.Generator().manual_seed(0))
    S = normalise((Qt[:, None] + y.numpy()).reshape(-1, d)).reshape(40, k, d)
    truth = np.stack([normalise(q + offsets) for q in Qt])
    cos = np.einsum("bid,bjd->bij", S, truth)
    assert cos.max(2).mean() > 0.85 and cos.max(1).mean() > 0.85
    guided = model.sample(torch.as_tensor(Qt), steps=8, guidance=2.0,
                          generator=torch.Generator().manual_seed(0))
    assert guided.shape == y.shape and torch.isfinite(guided).all()


def test_train_diffusion_rejects_mismatched_shapes():
    with pytest.raises(InvalidParameterError, match="targets must be"):
        train_diffusion(np.zeros((10, 4)), np.zeros((10, 3, 5)))
    with pytest.raises(InvalidParameterError, match="at least 4"):
        train_diffusion(np.ones((2, 4)), np.ones((2, 3, 4)))


def test_retriever_snaps_to_distinct_rows_and_is_seeded(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 8)).astype(np.float32)
    pl.DataFrame({"vec": X.tolist()}).write_parquet(tmp_path / "d.parquet")
    st = Store.create(tmp_path / "s")
    st.ingest(tmp_path / "d.parquet", "d", IngestSpec(vector_column="vec"))
    build_index(st, "d", factory="Flat", name="flat")
    cfg = DiffusionConfig(dim=8, k=6, sigma_data=0.3, width=16, layers=1)
    model = SetDiffusion(cfg, torch.Generator().manual_seed(0))
    retr = DiffusionRetriever(load_index(st, "flat"), normalise(X), model=model, steps=4)
    Q = normalise(rng.normal(size=(5, 8)))
    a = retr.retrieve(Q, 6, exclude=np.arange(5), seed=0)
    assert a.row_idx.shape == (5, 6) and all(len(set(r)) == 6 for r in a.row_idx.tolist())
    assert not any(b in a.row_idx[b] for b in range(5))          # excluded rows never appear
    assert np.array_equal(a.row_idx, retr.retrieve(Q, 6, exclude=np.arange(5), seed=0).row_idx)
    assert np.allclose(a.scores, np.einsum("bkd,bd->bk", normalise(X)[a.row_idx], Q),
                       atol=1e-5)
    with pytest.raises(InvalidParameterError, match="returns k=6"):
        retr.retrieve(Q, 5)


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_compiled_sampler_equals_eager_at_any_batch(guidance):
    """The traced sampler (the service's path: one GIL release a call) is the eager one, for
    batch sizes other than the one it was traced with; training mode samples eagerly."""
    model = random_model()
    traced = model.compiled_sampler(4, guidance, "cpu")
    assert traced is not None
    for B in (1, 2, 7):
        views = torch.randn(B, 3, 12, generator=torch.Generator().manual_seed(B))
        got = model.sample(views, steps=4, guidance=guidance,
                           generator=torch.Generator().manual_seed(5))
        ref = model.sample(views, steps=4, guidance=guidance,
                           generator=torch.Generator().manual_seed(5), compiled=False)
        assert got.shape == (B, 4, 12)
        assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5)
    assert model.compiled_sampler(4, guidance, "cpu") is traced     # traced once, kept
    model.eval().to("cpu")         # what every DiffusionRetriever construction does
    assert model.compiled_sampler(4, guidance, "cpu") is traced
    model.double().float()         # new storage: the traces go
    assert "_compiled" not in model.__dict__
    model.compiled_sampler(4, guidance, "cpu")
    model.train()
    assert "_compiled" not in model.__dict__
    model.eval()


def test_sampling_never_traces_by_itself_and_copies_drop_traces():
    """Only ``compiled_sampler``/``warm_up`` build a trace (request settings must not grow the
    cache); a deep copy (pickling) leaves the traces behind and still samples."""
    import copy

    model = random_model()
    views = torch.randn(2, 3, 12, generator=torch.Generator().manual_seed(0))
    model.sample(views, steps=3, guidance=1.5, generator=torch.Generator().manual_seed(1))
    assert not model.__dict__.get("_compiled")
    model.warm_up(3, 1.5)
    assert len(model.__dict__["_compiled"]) == 1
    twin = copy.deepcopy(model)
    assert "_compiled" not in twin.__dict__
    a = twin.sample(views, steps=3, guidance=1.5, generator=torch.Generator().manual_seed(1))
    b = model.sample(views, steps=3, guidance=1.5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, atol=1e-5)


def test_compiled_sampler_follows_weight_updates():
    """The trace holds the parameters by reference: an in-place update changes its output."""
    model = random_model()
    assert model.compiled_sampler(3, 1.0, "cpu") is not None
    views = torch.randn(3, 3, 12, generator=torch.Generator().manual_seed(0))
    before = model.sample(views, steps=3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.net.tokens_out.weight.mul_(2.0)
    after = model.sample(views, steps=3, generator=torch.Generator().manual_seed(1))
    ref = model.sample(views, steps=3, generator=torch.Generator().manual_seed(1),
                       compiled=False)
    assert not torch.allclose(before, after) and torch.allclose(after, ref, atol=1e-5)
