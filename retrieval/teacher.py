"""The R4T teacher (stage 1): an RL-trained fan-out policy in embedding space.

Policy: for a query q (d,), a small MLP outputs k offsets μ(q) (k, d); a fan-out samples
a = μ + σ·ε (ε ~ N(0, I)) and uses the sub-queries z_j = normalise(q + a_j). Each sub-query is
grounded by a FAISS search; sub-queries take their best not-yet-taken item, so the k items
are distinct. Reward: the weighted composite of ``retrieval.objectives`` (open-ended) or the
recall of a reference set (weakly supervised).

Training (group-relative policy gradient, GRPO-style): per query sample G fan-outs, reward
each, advantage A_g = (r_g − mean_G r) / (std_G r + 1e-6), and minimise
    −mean(A_g · log π(a_g | q)) + β · KL(π ‖ π_init),
with log π(a | q) = −‖a − μ(q)‖² / (2σ²) + const and, for equal-σ Gaussians,
KL = ‖μ(q) − μ_init(q)‖² / (2σ²). Inference: best-of-N sampled fan-outs by reward (the
paper's expensive, high-quality path).

Not built yet: training on WordNet queries from the CLI, checkpoints in the store, synthesis
of (query, k×d target) pairs for the diffusion retriever.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from curate.models import init_linear_layers
from retrieval.index import VectorIndex, normalise
from retrieval.objectives import set_objectives


class FanoutPolicy(nn.Module):
    def __init__(self, dim: int, k: int, hidden: int = 256, scale: float = 0.1):
        super().__init__()
        self.k, self.dim, self.scale = k, dim, scale
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, k * dim))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """μ(q): (B, k, d) offsets."""
        return self.scale * self.net(q).view(-1, self.k, self.dim)


def ground(index: VectorIndex, sub: np.ndarray, per: int = 20) -> np.ndarray:
    """(B, k, d) sub-queries → (B, k) distinct row_idx: each takes its best unused hit."""
    B, k, d = sub.shape
    _, rows = index.search(sub.reshape(B * k, d), per)
    rows = rows.reshape(B, k, per)
    out = np.full((B, k), -1, dtype=np.int64)
    for b in range(B):
        used: set[int] = set()
        for j in range(k):
            for r in rows[b, j]:
                if r >= 0 and int(r) not in used:
                    out[b, j] = r
                    used.add(int(r))
                    break
    return out


class Teacher:
    """Fan-out policy + grounding + reward; ``train`` (GRPO) and ``best_of_n``."""

    def __init__(self, index: VectorIndex, vectors: np.ndarray, k: int = 10, *,
                 sigma: float = 0.05, beta: float = 0.05, pool: int = 100,
                 weights: dict[str, float] | None = None, seed: int = 0):
        self.index, self.vectors, self.k = index, normalise(vectors), k
        self.sigma, self.beta, self.pool, self.weights = sigma, beta, pool, weights
        self.gen = torch.Generator().manual_seed(seed)
        self.policy = init_linear_layers(FanoutPolicy(index.dim, k), self.gen)
        self.initial = copy.deepcopy(self.policy).requires_grad_(False)

    def _sample(self, q: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        qt = torch.as_tensor(q)
        mu = self.policy(qt)                                            # (B, k, d)
        eps = torch.randn((len(q), n, self.k, q.shape[1]), generator=self.gen)
        actions = mu.detach().unsqueeze(1) + self.sigma * eps          # (B, n, k, d)
        sub = normalise((qt[:, None, None, :] + actions).reshape(-1, q.shape[1]).numpy())
        rows = ground(self.index, sub.reshape(-1, self.k, q.shape[1]))
        return mu, actions, rows.reshape(len(q), n, self.k)

    def rewards(self, q: np.ndarray, rows: np.ndarray,
                reward_fn: Callable[[int, np.ndarray], float] | None = None) -> np.ndarray:
        """(B, n) rewards of (B, n, k) item sets: composite objective, or ``reward_fn``."""
        B, n, k = rows.shape
        if reward_fn is not None:
            return np.array([[reward_fn(b, rows[b, g]) for g in range(n)] for b in range(B)])
        _, pool = self.index.search(q, self.pool)
        S = self.vectors[np.clip(rows, 0, None)].reshape(B * n, k, -1)
        qq = np.repeat(q, n, axis=0)
        P = np.repeat(self.vectors[np.clip(pool, 0, None)], n, axis=0)
        return set_objectives(qq, S, P, self.weights)["composite"].reshape(B, n)

    def train(self, queries: np.ndarray, *, steps: int = 50, group: int = 8,
              batch: int = 16, lr: float = 1e-3, reward_fn=None) -> list[float]:
        """GRPO on ``queries`` (m, d); ``reward_fn(query_index, rows)`` for weak supervision
        (indices refer to the rows of ``queries``). Returns the mean reward per step."""
        Q = normalise(queries)
        opt = torch.optim.Adam(self.policy.parameters(), lr=lr)
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,),
                                                      generator=self.gen)))
        history = []
        for _ in range(steps):
            pick = rng.choice(len(Q), size=min(batch, len(Q)), replace=False)
            q = Q[pick]
            mu, actions, rows = self._sample(q, group)
            fn = None if reward_fn is None else (
                lambda b, r, pick=pick: reward_fn(int(pick[b]), r))
            r = torch.as_tensor(self.rewards(q, rows, fn), dtype=torch.float32)
            adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)
            logp = -((actions - mu.unsqueeze(1)) ** 2).sum((2, 3)) / (2 * self.sigma ** 2)
            kl = ((mu - self.initial(torch.as_tensor(q))) ** 2).sum((1, 2)) / (2 * self.sigma ** 2)
            loss = -(adv * logp).mean() + self.beta * kl.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(float(r.mean()))
        return history

    @torch.no_grad()
    def best_of_n(self, queries: np.ndarray, n: int = 8, reward_fn=None) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
        """(B, k) best item sets by reward among n sampled fan-outs, and their rewards."""
        q = normalise(queries)
        _, _, rows = self._sample(q, n)
        r = self.rewards(q, rows, reward_fn)
        best = r.argmax(1)
        return rows[np.arange(len(q)), best], r[np.arange(len(q)), best]
