"""The R4T diffusion retriever (stage 3): an EDM set denoiser distilled from teacher sets.

Paper: "Efficient, Property-Aligned Fan-Out Retrieval via RL-Compiled Diffusion" (arXiv
2603.06397) with the EDM formulation of Karras et al., "Elucidating the Design Space of
Diffusion-Based Generative Models" (NeurIPS 2022).

Data: pairs (V (3, d), Z (k, d)) from ``retrieval.synthesis`` — a query's views
(``retrieval.views``: full text, head, body; view 0 = the full query q) and, for a high-reward
teacher set, either the teacher's k sub-queries (default: the diffusion model compiles the
fan-out itself and grounds it like the teacher) or the k items' vectors (the literal reading of
the paper). The model generates residuals y = Z − q (k, d): smaller than Z and similar in scale
across queries, so one σ_data fits all. σ_data = RMS of the training residuals (measured).

Denoiser (x0-prediction with EDM preconditioning):
    D(x; σ, q) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ), q)
    c_skip = σ_d² / (σ² + σ_d²), c_out = σ·σ_d / √(σ² + σ_d²), c_in = 1 / √(σ² + σ_d²),
    c_noise = ln(σ) / 4.
F is a small pre-norm transformer over the k set tokens (self-attention, no positional
embedding: permutation-equivariant) with the query injected by cross-attention to one token per
view (a shared projection plus a learned view embedding); the noise level enters as a Fourier
embedding added to every token. Each output token is a projection back to d plus a mixture of
the view differences, Σ_v c_v(h)·(e_v − e_full)/σ_d — so the model can express the teacher's
view-mixing sub-queries exactly through its narrow width. With probability ``cfg_dropout`` the
view tokens are replaced by a learned null and the view differences by zero (classifier-free
guidance).
Training loss: λ(σ)·‖D(y + σn; σ, q) − y‖² (mean over entries), λ = (σ² + σ_d²)/(σ·σ_d)²,
ln σ ~ N(P_mean, P_std²).

Sampling: EDM's deterministic Heun sampler (Karras Alg. 1) with ``steps`` levels
σ_i = (σ_max^(1/ρ) + i/(N−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ, ρ = 7, then σ_N = 0 (2N − 1
network evaluations); σ_min/σ_max are EDM's 0.002/80 rescaled by σ_d / 0.5 (EDM's image σ_d).
Guidance w: D = D_uncond + w·(D_cond − D_uncond) (w = 1: conditional only, one pass).
Snapping: sub-queries z_j = normalise(q + ŷ_j) are grounded with ``retrieval.index.ground``
(each takes its best not-yet-taken item), so the k items are distinct.

Shapes: query views (B, V, d) (or vectors (B, d): V copies), residuals/tokens (B, k, d), σ (B,).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.deadline import checkpoint
from core.errors import DeadlineExceededError
from retrieval.index import normalise
from retrieval.retriever import MAX_BEST_OF, MAX_REFINE, MAX_STEPS, Retriever

# Default size: on the WordNet benchmark a 64-wide, 2-layer denoiser matched a 128-wide,
# 3-layer one in recall and composite at half the latency (README, "Fan-out retrieval").
WIDTH, LAYERS = 64, 2


@dataclass(frozen=True)
class DiffusionConfig:
    dim: int
    k: int
    sigma_data: float
    width: int = WIDTH
    layers: int = LAYERS
    heads: int = 4
    views: int = 3
    cfg_dropout: float = 0.1
    p_mean: float = -1.2
    p_std: float = 1.2


def init_params(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every matrix from ``generator`` (U(±1/√fan_in)), zero every bias, leave
    LayerNorms at 1/0 — so the model depends on the seed only, never on the global RNG."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                continue
            if p.dim() >= 2:
                bound = 1.0 / math.sqrt(p.shape[-1])
                p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
            else:
                p.zero_()
    return module


class SetDenoiser(nn.Module):
    """F(x (B, k, d), c_noise (B,), views (B, V, d), drop (B,) bool) → (B, k, d)."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        w = cfg.width
        self.cfg = cfg
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(1000.0), 16)))
        self.noise_mlp = nn.Sequential(nn.Linear(32, w), nn.SiLU(), nn.Linear(w, w))
        self.tokens_in = nn.Linear(cfg.dim, w)
        self.view_in = nn.Linear(cfg.dim, w)
        self.view_embed = nn.Parameter(torch.zeros(cfg.views, w))
        self.null_views = nn.Parameter(torch.zeros(cfg.views, w))
        layer = nn.TransformerDecoderLayer(w, cfg.heads, 2 * w, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerDecoder(layer, cfg.layers)
        self.norm_out = nn.LayerNorm(w)
        self.tokens_out = nn.Linear(w, cfg.dim)
        self.mix_out = nn.Linear(w, cfg.views - 1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, views: torch.Tensor,
                drop: torch.Tensor) -> torch.Tensor:
        phase = c_noise[:, None] * self.freqs[None]
        emb = self.noise_mlp(torch.cat([phase.sin(), phase.cos()], dim=1))       # (B, w)
        h = self.tokens_in(x) + emb[:, None]
        mem = self.view_in(views) + self.view_embed[None]
        mem = torch.where(drop[:, None, None], self.null_views[None].expand_as(mem), mem)
        h = self.norm_out(self.blocks(h, mem + emb[:, None]))
        diffs = (views[:, 1:] - views[:, :1]) * (~drop)[:, None, None]            # (B, V−1, d)
        return torch.baddbmm(self.tokens_out(h), self.mix_out(h), diffs,
                             alpha=1.0 / self.cfg.sigma_data)

    # -- inference: the same function, with the per-query work done once per sample ----------
    #
    # F(x) = h̃(x) W̃_b: h̃ = [norm_out(h), 1] (B, k, w + 1) and, per query b, the output map
    # W̃_b = [W_out^T + W_mix^T Δ_b ; b_out + b_mix Δ_b] (w + 1, d), Δ_b the scaled view
    # differences (V − 1, d) — tokens_out and the view mixture folded into one matrix, made
    # once per sampling run. The sampler then needs one batched matmul per evaluation for
    # everything d-dimensional (preconditioning included, as its α and β).

    def prepare(self, views: torch.Tensor, drop: bool) -> dict[str, Any]:
        """What ``forward`` computes from the views alone, once per sampling run (the sampler
        evaluates the network 2N − 1 times on the same views): each layer's cross-attention
        keys and values of the view tokens (B, V, 2w) — all rows conditional, or all
        unconditional (``drop``); K(m + e) = K(m) + W_K e is linear, so the noise embedding
        e is added per step as one (1, 2w) row — and the output map W̃ (B, w + 1, d)."""
        B, w = views.shape[0], self.cfg.width      # shape, not len(): traced as a value
        mem = (self.null_views[None].expand(B, -1, -1) if drop
               else self.view_in(views) + self.view_embed[None])
        kv = []
        for layer in self.blocks.layers:
            attn = layer.multihead_attn
            Wkv, bkv = attn.in_proj_weight[w:], attn.in_proj_bias[w:]
            kv.append((torch.nn.functional.linear(mem, Wkv, bkv), Wkv.T))    # (B, V, 2w)
        W = torch.cat([self.tokens_out.weight.T, self.tokens_out.bias[None]])   # (w + 1, d)
        if drop:
            W = W[None].expand(B, -1, -1)
        else:
            diffs = (views[:, 1:] - views[:, :1]) / self.cfg.sigma_data         # (B, V−1, d)
            M = torch.cat([self.mix_out.weight.T, self.mix_out.bias[None]])    # (w + 1, V−1)
            W = W[None] + M[None] @ diffs
        return {"kv": kv, "W": W.contiguous()}

    def hidden(self, x: torch.Tensor, c_in: float, c_noise: float,
               pre: dict[str, Any]) -> torch.Tensor:
        """h̃ (B, k, w + 1) of ``forward(c_in·x, c_noise, views, drop)`` for one noise level
        shared by the batch and the views ``prepare`` took. Spelled out with
        ``scaled_dot_product_attention`` instead of ``nn.TransformerDecoder``'s general
        path: far fewer operator calls, which is what a small network's latency is made of
        on a CPU."""
        F = torch.nn.functional
        B, k, d = x.shape
        w, H = self.cfg.width, self.cfg.heads
        dh = w // H
        phase = c_noise * self.freqs[None]
        emb = self.noise_mlp(torch.cat([phase.sin(), phase.cos()], dim=1))       # (1, w)
        h = torch.addmm(self.tokens_in.bias + emb, x.reshape(B * k, d), self.tokens_in.weight.T,
                        alpha=c_in).view(B, k, w)

        def heads(t: torch.Tensor) -> torch.Tensor:                  # (B, n, w) → (B, H, n, dh)
            return t.view(B, -1, H, dh).transpose(1, 2)

        for layer, (kv_mem, WkvT) in zip(self.blocks.layers, pre["kv"], strict=True):
            sa, ca = layer.self_attn, layer.multihead_attn
            q, kk, v = F.linear(layer.norm1(h), sa.in_proj_weight, sa.in_proj_bias).chunk(3, -1)
            a = F.scaled_dot_product_attention(heads(q), heads(kk), heads(v))
            h = h + sa.out_proj(a.transpose(1, 2).reshape(B, k, w))
            q = F.linear(layer.norm2(h), ca.in_proj_weight[:w], ca.in_proj_bias[:w])
            mk, mv = (kv_mem + emb @ WkvT).chunk(2, -1)                  # (B, V, w) each
            a = F.scaled_dot_product_attention(heads(q), heads(mk), heads(mv))
            h = h + ca.out_proj(a.transpose(1, 2).reshape(B, k, w))
            h = h + layer.linear2(layer.activation(layer.linear1(layer.norm3(h))))
        return F.pad(self.norm_out(h), (0, 1), value=1.0)

    def fast(self, x: torch.Tensor, c_noise: float, pre: dict[str, Any]) -> torch.Tensor:
        """``forward(x, c_noise, views, drop)`` (B, k, d) through ``hidden`` and W̃, equal to
        it up to float rounding (tests/test_diffusion.py)."""
        return torch.bmm(self.hidden(x, 1.0, c_noise, pre), pre["W"])


class SetDiffusion(nn.Module):
    """EDM wrapper: preconditioning, training loss, Heun sampler (see the module docstring)."""

    def __init__(self, cfg: DiffusionConfig, generator: torch.Generator):
        super().__init__()
        self.cfg = cfg
        self.net = init_params(SetDenoiser(cfg), generator)
        with torch.no_grad():                       # F ≡ 0 at the start: D is c_skip·x
            self.net.tokens_out.weight.zero_()
            self.net.mix_out.weight.zero_()

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, q: torch.Tensor,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        sd = self.cfg.sigma_data
        s = sigma.view(-1, 1, 1)
        c_skip = sd ** 2 / (s ** 2 + sd ** 2)
        c_out = s * sd / torch.sqrt(s ** 2 + sd ** 2)
        c_in = 1.0 / torch.sqrt(s ** 2 + sd ** 2)
        if drop is None:
            drop = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        if q.dim() == 2:                                   # a bare vector: V copies
            q = q[:, None].expand(-1, self.cfg.views, -1)
        return c_skip * x + c_out * self.net(c_in * x, torch.log(sigma) / 4, q, drop)

    def loss(self, y: torch.Tensor, q: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg, dev = self.cfg, y.device
        sigma = torch.exp(cfg.p_mean + cfg.p_std * torch.randn(len(y), generator=generator)
                          ).to(dev)
        noise = torch.randn(y.shape, generator=generator).to(dev)
        drop = (torch.rand(len(y), generator=generator) < cfg.cfg_dropout).to(dev)
        D = self.denoise(y + sigma.view(-1, 1, 1) * noise, sigma, q, drop)
        weight = (sigma ** 2 + cfg.sigma_data ** 2) / (sigma * cfg.sigma_data) ** 2
        return (weight.view(-1, 1, 1) * (D - y) ** 2).mean()

    def sigmas(self, steps: int) -> torch.Tensor:
        """The N Karras levels, then 0: (N + 1,)."""
        scale, rho = self.cfg.sigma_data / 0.5, 7.0
        lo, hi = 0.002 * scale, 80.0 * scale
        i = torch.arange(steps, dtype=torch.float64)
        t = (hi ** (1 / rho) + i / max(steps - 1, 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
        return torch.cat([t, torch.zeros(1, dtype=torch.float64)]).float()

    @torch.inference_mode()
    def sample(self, q: torch.Tensor, *, steps: int = 6, guidance: float = 1.0,
               generator: torch.Generator, compiled: bool = True) -> torch.Tensor:
        """Residuals ŷ (B, k, d) by Heun's method (``heun``) from x_0 = σ_max·n, n drawn
        from ``generator``. ``compiled`` (and the model in eval mode): through the traced
        sampler of ``compiled_sampler`` when one was built for these settings (``warm_up``)
        — the same operations, equal to eager up to float rounding (tests/test_diffusion.py);
        otherwise, or False: eager. Sampling never traces by itself: settings come from
        requests, and a trace per new (steps, guidance) would be an unbounded cache."""
        if q.dim() == 2:                                   # a bare vector: V copies
            q = q[:, None].expand(-1, self.cfg.views, -1)
        noise = torch.randn((q.shape[0], self.cfg.k, self.cfg.dim), generator=generator
                            ).to(q.device)
        run = (self.__dict__.get("_compiled", {}).get(self._trace_key(steps, guidance,
                                                                      q.device))
               if compiled and not self.training else None)
        if run is None:
            return self.heun(q, noise, steps, float(guidance))
        checkpoint("before the traced sampler")     # its steps run in C++: one step here
        return run(q, noise)

    def heun(self, q: torch.Tensor, noise: torch.Tensor, steps: int,
             guidance: float) -> torch.Tensor:
        """EDM's deterministic Heun sampler from x_0 = σ_max·noise for views q (B, V, d). The
        network runs through ``SetDenoiser.hidden`` with the views prepared once. Each
        evaluation's slope (x − D(x; σ))/σ, with D = c_skip·x + c_out·F and F = h̃ W̃
        (guided: F_u + w·(F_c − F_u)), is one or two ``baddbmm`` calls: β = (1 − c_skip)/σ,
        α = −c_out/σ. The σ schedule and the guidance are Python constants, so a trace of
        this function is the whole sampler."""
        sd = self.cfg.sigma_data
        t = [float(v) for v in self.sigmas(steps)]
        x = t[0] * noise
        parts = [(self.net.prepare(q, drop=False), guidance)]
        if guidance != 1.0:
            parts.append((self.net.prepare(q, drop=True), 1.0 - guidance))

        def slope(x_, s):
            n = math.sqrt(s ** 2 + sd ** 2)
            c_skip, c_out, c_in, c_noise = sd ** 2 / n ** 2, s * sd / n, 1.0 / n, math.log(s) / 4
            out, beta = x_, (1.0 - c_skip) / s
            for pre, share in parts:
                out = torch.baddbmm(out, self.net.hidden(x_, c_in, c_noise, pre), pre["W"],
                                    beta=beta, alpha=-c_out / s * share)
                beta = 1.0
            return out

        for i in range(steps):
            checkpoint("a diffusion sampler step")      # (not recorded by a trace)
            h = t[i + 1] - t[i]
            d = slope(x, t[i])
            if t[i + 1] > 0:
                d2 = slope(torch.add(x, d, alpha=h), t[i + 1])
                x = torch.add(x, d.add_(d2), alpha=h / 2)
            else:
                x = torch.add(x, d, alpha=h)
        return x

    def compiled_sampler(self, steps: int, guidance: float, device: torch.device | str):
        """``heun`` for this (steps, guidance, device), traced once (TorchScript) and cached;
        None where tracing fails. Why: a traced call runs all 2N − 1 network evaluations
        (~450 operators at N = 6) in C++ with the GIL released once, where eager releases
        and re-takes it around every operator. In the service the sampler's thread shares
        the GIL with the request threads, and re-taking it hundreds of times a call made each
        batched call wait ~5 ms (the switch interval) per turn: a batch of 8 took ~60 ms
        instead of ~15 (benchmarks/results/service_load-diffusion.md). Alone the trace is
        also ~2× faster at batch 1 (less Python per operator). The trace holds the module's
        parameters by reference (not frozen), so it follows in-place weight updates;
        ``train()``, ``_apply`` (``to()``, ``float()``, …) and pickling drop the cache (the
        key also holds the device and dtype). ``torch.jit.trace`` is deprecated upstream in
        favour of ``torch.compile``/``torch.export``, which need a C++ toolchain at run time
        or still run under the GIL; the README installs torch 2.13.0, and a failure falls
        back to eager."""
        key = self._trace_key(steps, guidance, device)
        cache = self.__dict__.setdefault("_compiled", {})
        if key not in cache:
            with _TRACE_LOCK:
                if key not in cache:
                    cache[key] = _trace_heun(self, *key)
        return cache[key]

    def _trace_key(self, steps: int, guidance: float, device) -> tuple:
        return (int(steps), float(guidance), torch.device(device),
                next(self.parameters()).dtype)

    def warm_up(self, steps: int, guidance: float = 1.0) -> None:
        """Trace the sampler for (steps, guidance) now and run it twice on a dummy batch
        (TorchScript's executor profiles a function's first calls), so no request pays."""
        q = torch.zeros(2, self.cfg.views, self.cfg.dim, device=next(self.parameters()).device)
        self.compiled_sampler(steps, guidance, q.device)
        for _ in range(2):
            self.sample(q, steps=steps, guidance=guidance,
                        generator=torch.Generator().manual_seed(0))

    def train(self, mode: bool = True):
        if mode:                 # training samples eagerly; eval() keeps the traces
            self.__dict__.pop("_compiled", None)
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        # a conversion may give the parameters new storage; only a real one drops the traces
        before = [(p.device, p.dtype, p.data_ptr()) for p in self.parameters()]
        out = super()._apply(fn, *args, **kwargs)
        if [(p.device, p.dtype, p.data_ptr()) for p in self.parameters()] != before:
            self.__dict__.pop("_compiled", None)
        return out

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        return {k: v for k, v in state.items() if k != "_compiled"}



_TRACE_LOCK = threading.Lock()


class _Heun(nn.Module):
    """``SetDiffusion.heun`` with its constants bound: forward(q (B, V, d), noise (B, k, d))."""

    def __init__(self, model: SetDiffusion, steps: int, guidance: float):
        super().__init__()
        self.model, self.steps, self.guidance = model, steps, guidance

    def forward(self, q: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.model.heun(q, noise, self.steps, self.guidance)


def _trace_heun(model: SetDiffusion, steps: int, guidance: float, device: torch.device,
                dtype: torch.dtype):
    """The traced ``_Heun`` (example batch 2: the batch size stays a traced value), or None.
    Warnings are silenced: the deprecation notice, and the tracer's notes on the σ schedule
    and guidance becoming constants, which is the intent."""
    import warnings

    cfg = model.cfg
    example = (torch.zeros(2, cfg.views, cfg.dim, device=device, dtype=dtype),
               torch.zeros(2, cfg.k, cfg.dim, device=device, dtype=dtype))
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.trace(_Heun(model, steps, guidance), example,
                                   check_trace=False)
    except DeadlineExceededError:       # a cut-off request, not a tracing failure: not cached
        raise
    except Exception:   # noqa: BLE001 — any tracing failure: the eager sampler is exact
        return None


def train_diffusion(queries: np.ndarray, targets: np.ndarray, *, epochs: int = 30,
                    batch: int = 128, lr: float = 1e-3, width: int = WIDTH, layers: int = LAYERS,
                    val_fraction: float = 0.1, seed: int = 0, device: str = "cpu",
                    progress: bool = False) -> tuple[SetDiffusion, dict]:
    """Fit the denoiser on (queries (m, d), targets (m, k, d) unit rows: sub-queries or
    items); AdamW, the EDM loss, a seeded validation split (its loss is reported per epoch).
    Returns the model and a history dict."""
    from core.errors import InvalidParameterError
    from core.progress import bar
    from retrieval.views import as_views

    Q = as_views(queries)                                            # (m, V, d)
    T = np.asarray(targets, dtype=np.float32)
    if T.ndim != 3 or T.shape[0] != Q.shape[0] or T.shape[2] != Q.shape[2]:
        raise InvalidParameterError(f"targets must be (m, k, d) matching queries (m, [V,] d); "
                                    f"got {T.shape} and {np.shape(queries)}")
    if len(Q) < 4:
        raise InvalidParameterError(f"need at least 4 synthetic sets to train; got {len(Q)}")
    Y = T - Q[:, :1, :]
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(Q), generator=gen).numpy()
    n_val = max(1, int(val_fraction * len(Q)))
    val, tr = order[:n_val], order[n_val:]
    sigma_data = float(np.sqrt(np.mean(Y[tr] ** 2)))
    cfg = DiffusionConfig(dim=Q.shape[2], k=T.shape[1], sigma_data=sigma_data, width=width,
                          layers=layers, views=Q.shape[1])
    model = SetDiffusion(cfg, gen).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    Yt, Qt = torch.as_tensor(Y).to(device), torch.as_tensor(Q).to(device)
    history: dict = {"train_loss": [], "val_loss": []}
    t0 = time.perf_counter()
    with bar("diffusion epochs", total=epochs, enabled=progress) as b:
        for _ in range(epochs):
            model.train()
            perm = tr[torch.randperm(len(tr), generator=gen).numpy()]
            losses = []
            for s in range(0, len(perm), batch):
                idx = torch.as_tensor(perm[s:s + batch]).to(device)
                loss = model.loss(Yt[idx], Qt[idx], gen)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            model.eval()
            with torch.no_grad():
                vgen = torch.Generator().manual_seed(seed + 1)    # same noise every epoch
                vidx = torch.as_tensor(val).to(device)
                history["val_loss"].append(float(model.loss(Yt[vidx], Qt[vidx], vgen)))
            history["train_loss"].append(float(np.mean(losses)))
            b.advance(1)
    history["train_s"] = time.perf_counter() - t0
    history["n_train"], history["n_val"] = int(len(tr)), int(n_val)
    return model, history


class DiffusionRetriever(Retriever):
    """``diffusion``: the distilled set denoiser — sample the k sub-query residuals with
    ``steps`` Heun steps and classifier-free guidance ``guidance``, add them to the query,
    ground each to its best unused item. ``refine`` > 0 then runs that many sweeps of
    reward-guided grounding (``retrieval.ascent``: each slot may swap its item for another of
    its sub-query's max(20, k + 2) nearest, by the composite under the request's weights;
    never lowers it). With ``best_of`` > 1, that many sets are sampled and the best by the
    composite under the request's weights is returned (a cheap reward-guided search; 1: one
    sampling pass, the default)."""

    name = "diffusion"
    summary = ("distilled EDM set denoiser: one sampling pass (refine > 0: reward-guided "
               "grounding; best_of > 1: rank by weights)")
    model_kind = "diffusion"
    fans_out = seeded = weighted = batched = uses_relevance = True
    steps: int = 6
    guidance: float = 1.0
    best_of: int = 1
    refine: int = 0
    device: str = "cpu"

    def _check_params(self) -> None:
        from core.checks import check_int, check_number

        check_int(self.name, "steps", self.steps, 1, MAX_STEPS)
        check_number(self.name, "guidance", self.guidance, 0.0)
        check_int(self.name, "best_of", self.best_of, 1, MAX_BEST_OF)
        check_int(self.name, "refine", self.refine, 0, MAX_REFINE)
        if self.relevance is not None and not self.refine:
            from core.errors import InvalidParameterError

            raise InvalidParameterError("diffusion: a relevance model acts through the "
                                        "reward-guided grounding; give refine ≥ 1")
        want, have = torch.device(self.device), self.model.net.freqs.device
        if (self.model.training or have.type != want.type
                or want.index not in (None, have.index)):
            # skipped when already so ("cuda" matches cuda:N): both walk every submodule
            self.model = self.model.eval().to(self.device)

    @property
    def k_fixed(self) -> int:
        return int(self.model.cfg.k)

    @property
    def n_views(self) -> int:
        return int(self.model.cfg.views)

    def _sub_queries(self, V: np.ndarray, seed: int | None) -> np.ndarray:
        """(B·n, k, d) unit sub-queries: ``best_of`` = n sampled residual sets per query of
        V (B, V, d), each added to its query and normalised."""
        n = self.best_of
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        Vn = np.repeat(V, n, axis=0)                        # (B·n, V, d): n samples each
        y = self.model.sample(torch.as_tensor(Vn).to(self.device), steps=self.steps,
                              guidance=float(self.guidance), generator=gen).cpu().numpy()
        Qn = Vn[:, 0]
        return normalise((Qn[:, None, :] + y).reshape(-1, Qn.shape[1])).reshape(y.shape)

    def _ground(self, Q: np.ndarray, sub: np.ndarray, exclude: np.ndarray | None,
                weights: dict[str, float], pool: np.ndarray | None = None,
                V: np.ndarray | None = None) -> np.ndarray:
        """(B, k) rows of sub-queries sub (B, k, d) for queries Q (B, d): each slot's nearest
        unused item, then ``refine`` sweeps of reward-guided grounding under ``weights``
        (``pool``: the queries' neighbourhood when the weights need it; None: searched;
        V (B, v, d): the queries' views, read by a relevance model)."""
        from retrieval.index import assign_nearest, sub_query_hits

        hits = sub_query_hits(self.index, sub)
        rows = assign_nearest(hits, exclude)
        if not self.refine:
            return rows
        from retrieval.ascent import refine_fanout

        rel = None if self.relevance is None else self.relevance.scorer(V, self.vectors)
        return refine_fanout(self.index, self.vectors, Q, hits, rows, weights,
                             sweeps=self.refine, exclude=exclude, pool=pool, relevance=rel)

    def batch_stage(self, V, k):
        """One sampling pass (``best_of`` 1): the batch shares the sampler call and each
        request grounds its own (1, k, d) sub-queries (FAISS releases the GIL, so the
        sampler's next batch overlaps them). ``best_of`` > 1 ranks inside the call."""
        if self.best_of > 1:
            return super().batch_stage(V, k)
        from retrieval.views import as_views

        return self._sub_queries(as_views(V, self.n_views), None)

    def finish_stage(self, V, part, k):
        if self.best_of > 1:
            return super().finish_stage(V, part, k)
        from retrieval.objectives import DEFAULT_WEIGHTS

        q = normalise(V[:, 0])
        from retrieval.views import as_views

        rows = self._ground(q, np.asarray(part, dtype=np.float32), None, dict(DEFAULT_WEIGHTS),
                            V=as_views(V, self.n_views))
        return self._result(V[:, 0], rows, np.tile(np.arange(k), (len(V), 1)))

    def _retrieve(self, V, k, weights, seed, exclude):
        from retrieval.objectives import needs_pool, neighbourhood, score_sets

        B, n, Q = len(V), self.best_of, V[:, 0]
        sub = self._sub_queries(V, seed)
        checkpoint("the diffusion sampler")
        ex = None if exclude is None else np.repeat(exclude, n)
        # the queries' neighbourhood, searched once, when the grounding or the ranking uses it
        pool = (neighbourhood(self.index, self.vectors, Q)
                if (self.refine and needs_pool(weights)) or n > 1 else None)
        rows = self._ground(np.repeat(Q, n, axis=0), sub, ex, weights,
                            None if pool is None else np.repeat(pool, n, axis=0),
                            np.repeat(V, n, axis=0)).reshape(B, n, k)
        if n > 1:
            r = score_sets(self.index, self.vectors, Q, np.clip(rows, 0, None),
                           weights, pool)["composite"]
            rows = rows[np.arange(B), r.argmax(1)]
        else:
            rows = rows[:, 0]
        return rows, np.tile(np.arange(k), (B, 1))


# -- persistence -------------------------------------------------------------------------------

def save_diffusion(store, model: SetDiffusion, meta: dict) -> str:
    """Store a checkpoint as ``models/diffusion-<hex>/`` (weights + config); return its id.
    Every training run is a new immutable version; ``meta`` names its synthesis and teacher."""
    from stores import files

    def write(folder):
        files.atomic_write(folder / "model.pt", lambda p: torch.save(model.state_dict(), p))

    return store.write_model("diffusion", write, {"config": asdict(model.cfg), **meta})


def load_diffusion(store, model_id: str, device: str = "cpu") -> tuple[SetDiffusion, dict]:
    from core.errors import MODEL_LOAD_ERRORS, SchemaError, unreadable_model
    from stores import files

    path = store.model_path(model_id)
    meta = files.read_json(path / "model.json")
    if meta.get("kind") != "diffusion":
        raise SchemaError(f"model {model_id!r} is a {meta.get('kind')!r} model, not a "
                          "diffusion retriever")
    try:
        cfg = DiffusionConfig(**meta["config"])
        model = SetDiffusion(cfg, torch.Generator().manual_seed(0))
        model.load_state_dict(torch.load(path / "model.pt", weights_only=True,
                                         map_location="cpu"))
    except MODEL_LOAD_ERRORS as e:
        raise unreadable_model("diffusion", model_id, e) from e
    return model.to(device).eval(), meta
