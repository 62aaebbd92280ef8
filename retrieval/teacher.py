"""The R4T teacher (stage 1): an RL-trained fan-out policy over query views.

Input: the query's views V (B, 3, d) (``retrieval.views``: full text, head, body; a bare vector
is three copies). For each of k slots the policy proposes a sub-query
    z_j = normalise(e_full + Σ_{v≥1} δ_jv·(e_v − e_full) + a_j),
mixing weights δ_j (V − 1) and an offset a_j (d). Both are Gaussian actions,
δ_j ~ N(μδ_j, τ²), a_j ~ N(μa_j, σ²), with means from a small MLP on the concatenated views.
Each sub-query is grounded by a FAISS search and takes its best not-yet-taken item, so the k
items are distinct. Reward: the weighted composite of ``retrieval.objectives`` w.r.t. the full
query (open-ended) or the recall of a reference set (weakly supervised).

Training (group-relative policy gradient, GRPO-style): per query sample G fan-outs, reward
each, advantage A_g = (r_g − mean_G r) / (std_G r + 1e-6), and minimise
    −mean(A_g · log π(δ_g, a_g | V)) + β · KL(π ‖ π_init),
log π = −‖δ − μδ‖² / (2τ²) − ‖a − μa‖² / (2σ²) + const; for equal-variance Gaussians
KL = ‖μδ − μδ_init‖² / (2τ²) + ‖μa − μa_init‖² / (2σ²). Inference: best-of-N sampled fan-outs
by reward (the paper's expensive, high-quality path).

The policy starts at μ ≡ 0: every sub-query is the full query and the mean fan-out is exactly
top-k. ``sigma`` defaults to 0.3/√d (a sampled offset moves a sub-query ≈ 0.3 away), ``tau`` to
0.3. ``exclude`` (B,) drops one row per query from grounding (the benchmark's hypernym itself).
The mean fan-out is always one of the best-of-N candidates, so N = 1 is the deterministic
policy. Simplification: the policy acts in embedding space only (DESIGN §4: "policy-gradient
RL in embedding space"); the only text it sees is the query's own views — it writes no new
sub-query text.
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
from retrieval.objectives import reference_recall, set_objectives
from retrieval.views import VIEWS, as_views


class FanoutPolicy(nn.Module):
    """(B, V, d) views → μδ (B, k, V − 1) mixing weights and μa (B, k, d) offsets."""

    def __init__(self, dim: int, k: int, views: int = len(VIEWS), hidden: int = 256,
                 scale: float = 0.1):
        super().__init__()
        self.k, self.dim, self.views, self.scale = k, dim, views, scale
        self.net = nn.Sequential(nn.Linear(views * dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, k * (views - 1) + k * dim))

    def forward(self, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(V.flatten(1))
        n_mix = self.k * (self.views - 1)
        return (out[:, :n_mix].view(-1, self.k, self.views - 1),
                self.scale * out[:, n_mix:].view(-1, self.k, self.dim))


def subqueries(V: np.ndarray, mix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """z = normalise(e_full + Σ_v δ_v (e_v − e_full) + a): V (B, V, d), mix (B, n, k, V − 1),
    offset (B, n, k, d) → (B, n, k, d)."""
    base = V[:, None, None, 0, :] + np.einsum("bnkv,bvd->bnkd", mix, V[:, 1:] - V[:, :1])
    Z = base + offset
    return normalise(Z.reshape(-1, Z.shape[-1])).reshape(Z.shape)


class Teacher:
    """Fan-out policy + grounding + reward; ``train`` (GRPO) and ``best_of_n``. Queries are
    (B, d) vectors or (B, V, d) views."""

    def __init__(self, index: VectorIndex, vectors: np.ndarray, k: int = 10, *,
                 sigma: float | None = None, tau: float = 0.3, beta: float = 0.01,
                 pool: int = 100, weights: dict[str, float] | None = None, seed: int = 0):
        self.index, self.vectors, self.k = index, normalise(vectors), k
        self.sigma = 0.3 / np.sqrt(index.dim) if sigma is None else float(sigma)
        self.tau, self.beta, self.pool, self.weights = float(tau), beta, pool, weights
        self.gen = torch.Generator().manual_seed(seed)
        self.policy = init_linear_layers(FanoutPolicy(index.dim, k), self.gen)
        with torch.no_grad():                 # μ ≡ 0 at the start: the mean fan-out is top-k
            self.policy.net[-1].weight.zero_()
            self.policy.net[-1].bias.zero_()
        self.initial = copy.deepcopy(self.policy).requires_grad_(False)

    def _sample(self, V: np.ndarray, n: int, exclude: np.ndarray | None = None,
                with_mean: bool = False, generator: torch.Generator | None = None):
        """Means (μδ, μa), actions (δ (B, n, k, V−1), a (B, n, k, d)), sub-queries
        (B, n, k, d) and grounded rows (B, n, k); with ``with_mean`` fan-out 0 is the mean."""
        gen = generator or self.gen
        mu_mix, mu_off = self.policy(torch.as_tensor(V))
        B, k, d = mu_off.shape
        e_mix = torch.randn((B, n, k, mu_mix.shape[2]), generator=gen)
        e_off = torch.randn((B, n, k, d), generator=gen)
        if with_mean:
            e_mix[:, 0], e_off[:, 0] = 0.0, 0.0
        mix = mu_mix.detach().unsqueeze(1) + self.tau * e_mix
        off = mu_off.detach().unsqueeze(1) + self.sigma * e_off
        sub = subqueries(V, mix.numpy(), off.numpy())
        ex = None if exclude is None else np.repeat(np.asarray(exclude), n)
        rows = ground(self.index, sub.reshape(B * n, k, d), exclude=ex).reshape(B, n, k)
        return (mu_mix, mu_off), (mix, off), sub, rows

    def rewards(self, q: np.ndarray, rows: np.ndarray,
                reward_fn: Callable[[int, np.ndarray], float] | None = None) -> np.ndarray:
        """(B, n) rewards of (B, n, k) item sets for full queries q (B, d): the composite
        objective, or ``reward_fn``."""
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
        """GRPO on ``queries`` (m, d) or views (m, V, d); ``reward_fn(query_index, rows)``
        for weak supervision (indices refer to the rows of ``queries``); ``exclude`` (m,)
        rows never returned. Returns the mean reward per step."""
        from curate.progress import bar

        Vq = as_views(queries)
        opt = torch.optim.Adam(self.policy.parameters(), lr=lr)
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,),
                                                      generator=self.gen)))
        history = []
        with bar("GRPO steps", total=steps, enabled=progress) as b:
            for _ in range(steps):
                history.append(self._step(Vq, rng, opt, group, batch, reward_fn, exclude))
                b.advance(1)
        return history

    def _step(self, Vq, rng, opt, group, batch, reward_fn, exclude) -> float:
        """One GRPO update on a random batch of queries; returns its mean reward."""
        pick = rng.choice(len(Vq), size=min(batch, len(Vq)), replace=False)
        V = Vq[pick]
        (mu_mix, mu_off), (mix, off), _, rows = self._sample(
            V, group, None if exclude is None else np.asarray(exclude)[pick])
        fn = None if reward_fn is None else (
            lambda b, r, pick=pick: reward_fn(int(pick[b]), r))
        r = torch.as_tensor(self.rewards(V[:, 0], rows, fn), dtype=torch.float32)
        adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)
        logp = (-((mix - mu_mix.unsqueeze(1)) ** 2).sum((2, 3)) / (2 * self.tau ** 2)
                - ((off - mu_off.unsqueeze(1)) ** 2).sum((2, 3)) / (2 * self.sigma ** 2))
        mix0, off0 = self.initial(torch.as_tensor(V))
        kl = (((mu_mix - mix0) ** 2).sum((1, 2)) / (2 * self.tau ** 2)
              + ((mu_off - off0) ** 2).sum((1, 2)) / (2 * self.sigma ** 2))
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
        their rewards (B,) and, with ``subqueries``, the chosen fan-outs' sub-query vectors
        (B, k, d). Queries are (B, d) or views (B, V, d). ``seed`` draws the samples from a
        fresh generator."""
        V = as_views(queries)
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        _, _, sub, rows = self._sample(V, n, exclude, with_mean=True, generator=gen)
        r = self.rewards(V[:, 0], rows, reward_fn)
        pick = (np.arange(len(V)), r.argmax(1))
        if not subqueries:
            return rows[pick], r[pick]
        return rows[pick], r[pick], sub[pick]


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


def hypernym_query_views(store, dataset: str, embedding: str, rows: list[int],
                         progress: bool = False) -> np.ndarray:
    """(m, V, d) query views for hypernym rows: the MiniLM views of "lemma, lemma: gloss"
    (full text, lemmas, gloss; what a user would type — the issue's reference top-10 recall was
    measured on the full text) when the dataset has WordNet's lemmas/gloss columns and is
    embedded with MiniLM; otherwise the rows' stored embeddings, repeated (one view)."""
    from curate.embedding import MODEL_NAME
    from retrieval.views import text_views

    frame = store.samples(dataset)
    if embedding == MODEL_NAME and {"lemmas", "gloss"} <= set(frame.columns):
        sub = frame[rows]
        texts = [", ".join(lem).replace("_", " ") + ": " + g for lem, g in
                 zip(sub["lemmas"].to_list(), sub["gloss"].to_list(), strict=True)]
        return text_views(texts, progress=progress)
    return as_views(np.asarray(store.embeddings(dataset, embedding)[0])[rows])


def train_teacher(store, index_name: str, *, k: int = 10, regime: str = "open",
                  steps: int = 200, group: int = 8, batch: int = 32, lr: float = 1e-2,
                  sigma: float | None = None, tau: float = 0.3, beta: float = 0.01,
                  seed: int = 0, progress: bool = False) -> dict:
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
    teacher = Teacher(index, X, k=k, sigma=sigma, tau=tau, beta=beta, seed=seed)
    Q = hypernym_query_views(store, meta["dataset"], meta["embedding"], q_rows, progress)
    reward_fn = None
    if regime == "weak":
        def reward_fn(i, rows):
            return reference_recall(rows, refs[i])
    t0 = time.perf_counter()
    history = teacher.train(Q, steps=steps, group=group, batch=batch, lr=lr,
                            reward_fn=reward_fn, exclude=np.asarray(q_rows), progress=progress)
    info = {"index": index_name, "k": k, "regime": regime, "steps": steps, "group": group,
            "batch": batch, "lr": lr, "sigma": teacher.sigma, "tau": teacher.tau,
            "beta": teacher.beta,
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
                      tau=float(meta.get("tau", 0.3)), beta=float(meta["beta"]),
                      seed=int(meta["seed"]))
    teacher.policy.load_state_dict(torch.load(path / "policy.pt", weights_only=True))
    return teacher
