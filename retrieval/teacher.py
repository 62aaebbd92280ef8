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

``sigma`` is the per-dimension noise; the default 0.3/√d makes a sampled sub-query move ≈ 0.3
(cosine ≈ 0.95) away from its mean, whatever d is. ``exclude`` (B,) drops one row per query
from grounding (the benchmark's hypernym itself). The mean fan-out (ε = 0) is always one of the
best-of-N candidates, so N = 1 is the deterministic policy.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from curate.models import init_linear_layers
from retrieval.index import VectorIndex, ground, normalise
from retrieval.objectives import set_objectives


class FanoutPolicy(nn.Module):
    def __init__(self, dim: int, k: int, hidden: int = 256, scale: float = 0.1):
        super().__init__()
        self.k, self.dim, self.scale = k, dim, scale
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, k * dim))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """μ(q): (B, k, d) offsets."""
        return self.scale * self.net(q).view(-1, self.k, self.dim)


class Teacher:
    """Fan-out policy + grounding + reward; ``train`` (GRPO) and ``best_of_n``."""

    def __init__(self, index: VectorIndex, vectors: np.ndarray, k: int = 10, *,
                 sigma: float | None = None, beta: float = 0.01, pool: int = 100,
                 weights: dict[str, float] | None = None, seed: int = 0):
        self.index, self.vectors, self.k = index, normalise(vectors), k
        self.sigma = 0.3 / np.sqrt(index.dim) if sigma is None else float(sigma)
        self.beta, self.pool, self.weights = beta, pool, weights
        self.gen = torch.Generator().manual_seed(seed)
        self.policy = init_linear_layers(FanoutPolicy(index.dim, k), self.gen)
        with torch.no_grad():                 # μ ≡ 0 at the start: the mean fan-out is top-k
            self.policy.net[-1].weight.zero_()
            self.policy.net[-1].bias.zero_()
        self.initial = copy.deepcopy(self.policy).requires_grad_(False)

    def _sample(self, q: np.ndarray, n: int, exclude: np.ndarray | None = None,
                with_mean: bool = False, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """μ (B, k, d), actions (B, n, k, d) and grounded rows (B, n, k); with ``with_mean``
        the first of the n fan-outs is the mean (ε = 0)."""
        qt = torch.as_tensor(q)
        mu = self.policy(qt)                                            # (B, k, d)
        eps = torch.randn((len(q), n, self.k, q.shape[1]), generator=generator or self.gen)
        if with_mean:
            eps[:, 0] = 0.0
        actions = mu.detach().unsqueeze(1) + self.sigma * eps          # (B, n, k, d)
        sub = normalise((qt[:, None, None, :] + actions).reshape(-1, q.shape[1]).numpy())
        ex = None if exclude is None else np.repeat(np.asarray(exclude), n)
        rows = ground(self.index, sub.reshape(-1, self.k, q.shape[1]), exclude=ex)
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
              batch: int = 16, lr: float = 3e-3, reward_fn=None,
              exclude: np.ndarray | None = None, progress: bool = False) -> list[float]:
        """GRPO on ``queries`` (m, d); ``reward_fn(query_index, rows)`` for weak supervision
        (indices refer to the rows of ``queries``); ``exclude`` (m,) rows never returned.
        Returns the mean reward per step."""
        from curate.progress import bar

        Q = normalise(queries)
        opt = torch.optim.Adam(self.policy.parameters(), lr=lr)
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,),
                                                      generator=self.gen)))
        history = []
        with bar("GRPO steps", total=steps, enabled=progress) as b:
            for _ in range(steps):
                history.append(self._step(Q, rng, opt, group, batch, reward_fn, exclude))
                b.advance(1)
        return history

    def _step(self, Q, rng, opt, group, batch, reward_fn, exclude) -> float:
        """One GRPO update on a random batch of queries; returns its mean reward."""
        pick = rng.choice(len(Q), size=min(batch, len(Q)), replace=False)
        q = Q[pick]
        mu, actions, rows = self._sample(q, group, None if exclude is None
                                         else np.asarray(exclude)[pick])
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
        return float(r.mean())

    @torch.no_grad()
    def best_of_n(self, queries: np.ndarray, n: int = 8, reward_fn=None,
                  exclude: np.ndarray | None = None, seed: int | None = None,
                  subqueries: bool = False) -> tuple[np.ndarray, ...]:
        """(B, k) best item sets by reward among n fan-outs (the mean one and n − 1 sampled),
        their rewards (B,) and, with ``subqueries``, the chosen fan-outs' normalised
        sub-query vectors (B, k, d). ``seed`` draws the samples from a fresh generator."""
        q = normalise(queries)
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        _, actions, rows = self._sample(q, n, exclude, with_mean=True, generator=gen)
        r = self.rewards(q, rows, reward_fn)
        pick = (np.arange(len(q)), r.argmax(1))
        if not subqueries:
            return rows[pick], r[pick]
        sub = normalise((q[:, None, :] + actions.numpy()[pick]).reshape(-1, q.shape[1]))
        return rows[pick], r[pick], sub.reshape(len(q), self.k, -1)


# -- persistence and training on a stored dataset -------------------------------------------

def hypernym_queries(store, dataset: str, seed: int = 0, min_members: int = 5):
    """Train/val/test splits (70/10/20 by hypernym, seeded) of the bundled WordNet hyponym
    sets whose hypernym and members are all in ``dataset``: (query rows, reference row sets)."""
    import polars as pl

    from curate.defaults import hyponym_sets_path

    ids = store.samples(dataset, ["sample_id"])["sample_id"].to_list()
    row_of = {s: i for i, s in enumerate(ids)}
    sets = pl.read_parquet(hyponym_sets_path()).filter(pl.col("size") >= min_members)
    keep = [(row_of[s], {row_of[m] for m in mem}) for s, mem in
            zip(sets["set_id"], sets["members"].to_list(), strict=True)
            if s in row_of and all(m in row_of for m in mem)]
    order = np.random.default_rng(seed).permutation(len(keep))
    n_te, n_va = int(0.2 * len(keep)), int(0.1 * len(keep))
    parts = {"test": order[:n_te], "val": order[n_te:n_te + n_va], "train": order[n_te + n_va:]}
    return {k: ([keep[i][0] for i in v], [keep[i][1] for i in v]) for k, v in parts.items()}


def hypernym_query_vectors(store, dataset: str, embedding: str, rows: list[int],
                           progress: bool = False) -> np.ndarray:
    """Query vectors for hypernym rows: MiniLM embeddings of "lemma, lemma: gloss" (what a user
    would type; the issue's reference top-10 recall was measured this way) when the dataset has
    WordNet's lemmas/gloss columns and is embedded with MiniLM; otherwise the rows' stored
    embeddings (the hypernym's own gloss vector — a harder query)."""
    from curate.embedding import MODEL_NAME, embed_texts

    frame = store.samples(dataset)
    if embedding == MODEL_NAME and {"lemmas", "gloss"} <= set(frame.columns):
        sub = frame[rows]
        texts = [", ".join(lem).replace("_", " ") + ": " + g for lem, g in
                 zip(sub["lemmas"].to_list(), sub["gloss"].to_list(), strict=True)]
        return embed_texts(texts, progress=progress)
    return normalise(np.asarray(store.embeddings(dataset, embedding)[0])[rows])


def train_teacher(store, index_name: str, *, k: int = 10, regime: str = "open",
                  steps: int = 200, group: int = 8, batch: int = 32, lr: float = 3e-3,
                  sigma: float | None = None, beta: float = 0.01, seed: int = 0,
                  progress: bool = False) -> dict:
    """``curate fanout train-teacher``: GRPO on the training hypernyms of the index's dataset;
    ``regime="open"`` rewards the composite objective, ``"weak"`` the recall of the hyponyms.
    The hypernym itself is never returned (it is not one of its hyponyms)."""
    from curate.errors import InvalidParameterError, MissingInputError
    from retrieval.index import load_index
    from stores import files

    if regime not in ("open", "weak"):
        raise InvalidParameterError(f"regime must be 'open' or 'weak'; got {regime!r}")
    index = load_index(store, index_name)
    meta = index.meta
    X = np.asarray(store.embeddings(meta["dataset"], meta["embedding"])[0])
    splits = hypernym_queries(store, meta["dataset"], seed=seed)
    q_rows, refs = splits["train"]
    if len(q_rows) < 4:
        raise MissingInputError(f"only {len(q_rows)} training hypernyms have all their members "
                                f"in {meta['dataset']!r}; index a fuller dataset "
                                "(`curate init --default --full`)")
    teacher = Teacher(index, X, k=k, sigma=sigma, beta=beta, seed=seed)
    Q = hypernym_query_vectors(store, meta["dataset"], meta["embedding"], q_rows, progress)
    reward_fn = None
    if regime == "weak":
        def reward_fn(i, rows):
            return len(refs[i] & set(rows.tolist())) / len(refs[i])
    t0 = time.perf_counter()
    history = teacher.train(Q, steps=steps, group=group, batch=batch, lr=lr,
                            reward_fn=reward_fn, exclude=np.asarray(q_rows), progress=progress)
    info = {"index": index_name, "k": k, "regime": regime, "steps": steps, "group": group,
            "batch": batch, "lr": lr, "sigma": teacher.sigma, "beta": teacher.beta,
            "seed": seed, "train_s": time.perf_counter() - t0,
            "n_train_queries": len(q_rows), "reward_first": history[0],
            "reward_last": float(np.mean(history[-5:])), "reward_history": history}

    def write(folder):
        files.atomic_write(folder / "policy.pt",
                           lambda p: torch.save(teacher.policy.state_dict(), p))

    model_id = store.write_model("teacher", write, info)
    return {"model_id": model_id, **info}


def load_teacher(store, model_id: str, index: VectorIndex, vectors: np.ndarray) -> Teacher:
    from curate.errors import SchemaError
    from stores import files

    path = store.model_path(model_id)
    meta = files.read_json(path / "model.json")
    if meta.get("kind") != "teacher":
        raise SchemaError(f"model {model_id!r} is a {meta.get('kind')!r} model, not a teacher")
    teacher = Teacher(index, vectors, k=int(meta["k"]), sigma=float(meta["sigma"]),
                      beta=float(meta["beta"]), seed=int(meta["seed"]))
    teacher.policy.load_state_dict(torch.load(path / "policy.pt", weights_only=True))
    return teacher
