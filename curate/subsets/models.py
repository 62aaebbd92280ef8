"""Neural set functions trained by differentiable mean-field variational inference.

EquiVSet (Ou et al., NeurIPS 2022): F(S) = ρ(Σ_{s∈S} φ(s)).
INSET (Xie et al., ICLR 2024): F(S; V) = ρ₁(Σ_{s∈S} φ(s)) + ρ₂(Σ_{s∈V∖S} φ'(s)) — the
superset enters through V∖S, so it changes with S (a term of V alone would cancel in the
marginal gains below and teach nothing).

Mean-field update with an amortised start (both models)::

    ψ⁰_i = σ(g([x_i, mean_V x]))                           (amortised initial ψ)
    ψ^{t+1}_i = σ( E_{S ~ Bernoulli(ψ^t)} [F(S ∪ {i}) − F(S ∖ {i})] ),   t < K

estimated with M Monte-Carlo masks per step. In training the masks are relaxed Bernoulli
(binary concrete, temperature τ = 0.1) so the gradient reaches every step and the amortised
start; at inference they are hard 0/1 draws. Shapes:
x (B, n, d), mask m (B, M, n); F is evaluated for all i at once on (B, M, n, h) sums.
"""

from __future__ import annotations

import torch
from torch import nn

MODELS = ("equivset", "inset")


def mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


class SetFunction(nn.Module):
    def __init__(self, dim: int, hidden: int = 128, superset: bool = False):
        super().__init__()
        self.superset = superset
        self.phi = mlp(dim, hidden, hidden)
        self.rho = mlp(hidden, hidden, 1)
        if superset:
            self.phi_out = mlp(dim, hidden, hidden)
            self.rho_out = mlp(hidden, hidden, 1)
        self.init = mlp(2 * dim, hidden, 1)

    def gains(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """E over masks of F(S ∪ i) − F(S ∖ i): (B, n). masks (B, M, n) in {0, 1}."""
        phi = self.phi(x)                                         # (B, n, h)
        inner = torch.einsum("bmn,bnh->bmh", masks, phi)          # Σ_S φ
        without = inner.unsqueeze(2) - masks.unsqueeze(-1) * phi.unsqueeze(1)  # (B,M,n,h)
        with_i = without + phi.unsqueeze(1)
        g = self.rho(with_i).squeeze(-1) - self.rho(without).squeeze(-1)      # (B, M, n)
        if self.superset:
            po = self.phi_out(x)
            outer = torch.einsum("bmn,bnh->bmh", 1 - masks, po)    # Σ_{V∖S} φ'
            out_without_i = outer.unsqueeze(2) + masks.unsqueeze(-1) * po.unsqueeze(1)
            out_with_i = out_without_i - po.unsqueeze(1)           # i moved into S
            g = g + self.rho_out(out_with_i).squeeze(-1) - self.rho_out(out_without_i).squeeze(-1)
        return g.mean(1)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator, steps: int = 3,
                samples: int = 5) -> torch.Tensor:
        """ψ (B, n) after ``steps`` mean-field updates from the amortised start. The Monte
        Carlo masks draw from ``generator`` (required: there is no fallback to torch's global
        RNG, so the same generator state gives the same ψ whatever else ran before)."""
        ctx = x.mean(1, keepdim=True).expand_as(x)
        psi = torch.sigmoid(self.init(torch.cat([x, ctx], -1)).squeeze(-1))
        for _ in range(steps):
            u = torch.rand((x.shape[0], samples, x.shape[1]), generator=generator)
            u = u.clamp(1e-6, 1 - 1e-6)
            p = psi.unsqueeze(1).clamp(1e-6, 1 - 1e-6)
            if self.training:   # binary concrete: differentiable in ψ
                logits = torch.log(p) - torch.log1p(-p) + torch.log(u) - torch.log1p(-u)
                masks = torch.sigmoid(logits / 0.1)
            else:
                masks = (u < p).float()
            psi = torch.sigmoid(self.gains(x, masks))
        return psi


def make_set_model(kind: str, dim: int, hidden: int = 128) -> SetFunction:
    from curate.errors import InvalidParameterError

    if kind not in MODELS:
        raise InvalidParameterError(f"model must be one of {', '.join(MODELS)}; got {kind!r}")
    return SetFunction(dim, hidden, superset=(kind == "inset"))
