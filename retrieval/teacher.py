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
KL = ‖μδ − μδ_init‖² / (2τ²) + ‖μa − μa_init‖² / (2σ²). Inference (``Teacher.search``, the
registered ``teacher`` retriever): best-of-N sampled fan-outs by the reward under the
request's weights, optionally at ``spread`` × the policy's noise, warm-started from DPP sets
and refined by cross-entropy-method rounds (the paper's expensive, high-quality path).
Training data: the train split of a stored query set (``retrieval.queries``).

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

from core.deadline import checkpoint
from core.nn import init_linear_layers
from retrieval.index import VectorIndex, ground, normalise
from retrieval.objectives import neighbourhood, score_sets
from retrieval.retriever import MAX_BEST_OF, MAX_REFINE, MAX_ROUNDS, Retriever
from retrieval.views import VIEWS, as_views

#: the DPP trade-offs whose sets seed a warm-started search (``Teacher.search``)
WARM_THETAS = (0.3, 0.5, 0.7, 0.9)

#: a vectorised reward: (query indices (B,), item sets (B, n, k)) → (B, n)
RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


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
        B = out.shape[0]
        return (out[:, :n_mix].reshape(B, self.k, self.views - 1),
                self.scale * out[:, n_mix:].reshape(B, self.k, self.dim))


def subqueries(V: np.ndarray, mix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """z = normalise(e_full + Σ_v δ_v (e_v − e_full) + a): V (B, V, d), mix (B, n, k, V − 1),
    offset (B, n, k, d) → (B, n, k, d)."""
    base = V[:, None, None, 0, :] + np.einsum("bnkv,bvd->bnkd", mix, V[:, 1:] - V[:, :1])
    Z = base + offset
    return normalise(Z.reshape(-1, Z.shape[-1])).reshape(Z.shape)


class Teacher:
    """Fan-out policy + grounding + reward; ``train`` (GRPO), ``search`` (best-of-N with
    optional cross-entropy-method rounds) and ``best_of_n``. Queries are (B, d) vectors or
    (B, V, d) views. The reward is ``retrieval.objectives.score_sets``' composite under
    ``weights`` (None: the defaults) on the same ``POOL``-item neighbourhood the reported
    objectives use, or a ``reward_fn``."""

    def __init__(self, index: VectorIndex, vectors: np.ndarray, k: int = 10, *,
                 sigma: float | None = None, tau: float = 0.3, beta: float = 0.01,
                 weights: dict[str, float] | None = None, views: int = len(VIEWS),
                 seed: int = 0):
        self.index, self.vectors, self.k, self.views = index, normalise(vectors), k, views
        self.sigma = 0.3 / np.sqrt(index.dim) if sigma is None else float(sigma)
        self.tau, self.beta, self.weights = float(tau), beta, weights
        self.gen = torch.Generator().manual_seed(seed)
        self.policy = init_linear_layers(FanoutPolicy(index.dim, k, views=views), self.gen)
        with torch.no_grad():                 # μ ≡ 0 at the start: the mean fan-out is top-k
            self.policy.net[-1].weight.zero_()
            self.policy.net[-1].bias.zero_()
        self.initial = copy.deepcopy(self.policy).requires_grad_(False)

    def _ground(self, V: np.ndarray, mix: np.ndarray, off: np.ndarray,
                exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Sub-queries (B, n, k, d) and grounded rows (B, n, k) of actions mix (B, n, k, V−1),
        off (B, n, k, d)."""
        B, n, k, d = off.shape
        sub = subqueries(V, mix, off)
        ex = None if exclude is None else np.repeat(np.asarray(exclude), n)
        rows = ground(self.index, sub.reshape(B * n, k, d), exclude=ex)
        if (rows < 0).any():    # an approximate index returned too few hits: refill first, so
            from retrieval.retriever import complete  # the reward scores the real set

            rows, _ = complete(self.index, self.vectors, np.repeat(V[:, 0], n, axis=0), rows,
                               np.zeros_like(rows), ex)
        return sub, rows.reshape(B, n, k)

    def _sample(self, V: np.ndarray, n: int, exclude: np.ndarray | None = None,
                with_mean: bool = False, generator: torch.Generator | None = None,
                spread: float = 1.0):
        """Means (μδ, μa), actions (δ (B, n, k, V−1), a (B, n, k, d)), sub-queries
        (B, n, k, d) and grounded rows (B, n, k); with ``with_mean`` fan-out 0 is the mean;
        ``spread`` scales the policy's noise (query-time search only)."""
        gen = generator or self.gen
        mu_mix, mu_off = self.policy(torch.as_tensor(V))
        B, k, d = mu_off.shape
        e_mix = torch.randn((B, n, k, mu_mix.shape[2]), generator=gen)
        e_off = torch.randn((B, n, k, d), generator=gen)
        if with_mean:
            e_mix[:, 0], e_off[:, 0] = 0.0, 0.0
        mix = mu_mix.detach().unsqueeze(1) + spread * self.tau * e_mix
        off = mu_off.detach().unsqueeze(1) + spread * self.sigma * e_off
        sub, rows = self._ground(V, mix.numpy(), off.numpy(), exclude)
        return (mu_mix, mu_off), (mix, off), sub, rows

    def rewards(self, q: np.ndarray, rows: np.ndarray, reward_fn: RewardFn | None = None,
                weights: dict[str, float] | None = None, idx: np.ndarray | None = None,
                pool: np.ndarray | None = None) -> np.ndarray:
        """(B, n) rewards of (B, n, k) item sets for full queries q (B, d): the composite
        objective under ``weights`` (None: the teacher's), or ``reward_fn(idx, rows)``
        (vectorised: ``idx`` (B,) the queries' indices, default 0..B−1; e.g.
        ``retrieval.queries.recall_reward``); ``pool``: the queries' ``neighbourhood``, when
        the caller scores several rounds for the same queries."""
        if reward_fn is not None:
            idx = np.arange(len(rows)) if idx is None else np.asarray(idx)
            return np.asarray(reward_fn(idx, rows), dtype=np.float64)
        return score_sets(self.index, self.vectors, q, rows,
                          self.weights if weights is None else weights, pool)["composite"]

    def train(self, queries: np.ndarray, *, steps: int = 50, group: int = 8,
              batch: int = 16, lr: float = 3e-3, reward_fn=None,
              exclude: np.ndarray | None = None, progress: bool = False) -> list[float]:
        """GRPO on ``queries`` (m, d) or views (m, V, d); ``reward_fn(query_idx, rows)``
        (vectorised, see ``rewards``; indices refer to the rows of ``queries``) for weak
        supervision; ``exclude`` (m,) rows never returned. Returns the mean reward per step."""
        from core.progress import bar

        Vq = as_views(queries, self.views)
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
        r = torch.as_tensor(self.rewards(V[:, 0], rows, reward_fn, idx=pick),
                            dtype=torch.float32)
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
    def search(self, queries: np.ndarray, n: int = 8, *, rounds: int = 0,
               elite: float = 0.25, spread: float = 1.0, warm_start: bool = False,
               reward_fn: RewardFn | None = None, weights: dict[str, float] | None = None,
               exclude: np.ndarray | None = None, seed: int | None = None,
               idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Query-time search for the best fan-out: (rows (B, k), rewards (B,), sub-queries
        (B, k, d)).

        Round 0 is best-of-N: the policy's mean fan-out and n − 1 samples from it, their
        noise scaled by ``spread`` (1: the policy's own; larger explores further from it —
        a trained policy's noise is small, so its samples stay near its mean). Each of
        ``rounds`` further rounds is a cross-entropy-method step (Rubinstein 1999): the
        ceil(elite·n) best fan-outs so far (by reward) give a new mean and per-coordinate
        std of the actions (std floored at 10% of the policy's), n new fan-outs are drawn
        around it (its mean one included), and the best set seen in any round is kept.
        ``warm_start`` adds to round 0 the fan-outs whose sub-queries are the items of the
        DPP sets at θ ∈ ``WARM_THETAS`` (``retrieval.dpp``) and of the ``ascent`` set
        (``retrieval.ascent``: coordinate ascent of the composite over the query's top 200)
        — sub-query j = item j's vector, which grounds to that item: the search then starts
        from the best relevance–diversity trade-off a heuristic offers for these weights and
        refines it, so the teacher is never worse than those sets under the request's
        weights.
        Rewards: ``reward_fn`` (given the queries' indices ``idx``) or the composite under
        ``weights`` (the request's).
        ``seed`` draws the samples from a fresh generator (None: the teacher's own)."""
        V = as_views(queries, self.views)
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        gen = gen or self.gen
        _, (mix, off), sub, rows = self._sample(V, n, exclude, with_mean=True, generator=gen,
                                                spread=spread)
        mix, off = mix.numpy(), off.numpy()
        if warm_start:
            w_mix, w_off = self._warm_actions(V, exclude, weights)
            w_sub, w_rows = self._ground(V, w_mix, w_off, exclude)
            mix, off = np.concatenate([mix, w_mix], 1), np.concatenate([off, w_off], 1)
            sub, rows = np.concatenate([sub, w_sub], 1), np.concatenate([rows, w_rows], 1)
        pool = None if reward_fn is not None else neighbourhood(self.index, self.vectors, V[:, 0])
        r = self.rewards(V[:, 0], rows, reward_fn, weights, idx, pool)
        B = len(V)
        ar = np.arange(B)
        best = r.argmax(1)
        out_rows, out_r, out_sub = rows[ar, best], r[ar, best], sub[ar, best]
        n_elite = max(1, int(np.ceil(elite * n)))
        floor_mix, floor_off = 0.1 * spread * self.tau, 0.1 * spread * self.sigma
        pool_mix, pool_off, pool_r = mix, off, r
        for _ in range(rounds):
            checkpoint("a CEM round of the teacher's search")
            top = np.argsort(-pool_r, axis=1)[:, :n_elite]                   # (B, e)
            em = np.take_along_axis(pool_mix, top[:, :, None, None], 1)
            eo = np.take_along_axis(pool_off, top[:, :, None, None], 1)
            m_mix, m_off = em.mean(1, keepdims=True), eo.mean(1, keepdims=True)
            s_mix = np.maximum(em.std(1, keepdims=True), floor_mix)
            s_off = np.maximum(eo.std(1, keepdims=True), floor_off)
            z_mix = torch.randn(mix.shape, generator=gen).numpy()
            z_off = torch.randn(off.shape, generator=gen).numpy()
            z_mix[:, 0], z_off[:, 0] = 0.0, 0.0
            mix, off = m_mix + s_mix * z_mix, m_off + s_off * z_off
            sub, rows = self._ground(V, mix.astype(np.float32), off.astype(np.float32),
                                     exclude)
            r = self.rewards(V[:, 0], rows, reward_fn, weights, idx, pool)
            best = r.argmax(1)
            better = r[ar, best] > out_r
            out_rows[better] = rows[ar, best][better]
            out_sub[better] = sub[ar, best][better]
            out_r = np.maximum(out_r, r[ar, best])
            pool_mix = np.concatenate([pool_mix, mix], 1)
            pool_off = np.concatenate([pool_off, off], 1)
            pool_r = np.concatenate([pool_r, r], 1)
        return out_rows, out_r, out_sub

    def _warm_actions(self, V: np.ndarray, exclude: np.ndarray | None,
                      weights: dict[str, float] | None) -> tuple[np.ndarray, np.ndarray]:
        """Actions (B, m, k, V−1), (B, m, k, d) whose sub-queries are the items of the DPP
        sets at each θ in ``WARM_THETAS`` and of the ``ascent`` set under ``weights`` (None:
        the teacher's) — mixing weights 0, offset = item − query."""
        from retrieval.ascent import AscentRetriever
        from retrieval.dpp import DPPRetriever
        from retrieval.objectives import check_weights

        B, _, d = V.shape
        heuristics = [DPPRetriever(self.index, self.vectors, theta=theta)
                      for theta in WARM_THETAS] + [AscentRetriever(self.index, self.vectors)]
        w = check_weights(self.weights if weights is None else weights)
        offs = []
        for retr in heuristics:
            rows, _ = retr._retrieve(V[:, :1], self.k, w, None, exclude)
            rows = np.where(rows >= 0, rows, 0)
            offs.append(self.vectors[rows] - V[:, None, 0])
        off = np.stack(offs, 1).astype(np.float32)                       # (B, m, k, d)
        return np.zeros((B, len(heuristics), self.k, V.shape[1] - 1), np.float32), off

    def best_of_n(self, queries: np.ndarray, n: int = 8, reward_fn: RewardFn | None = None,
                  exclude: np.ndarray | None = None, seed: int | None = None,
                  subqueries: bool = False, weights: dict[str, float] | None = None,
                  idx: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(B, k) best item sets by reward among n fan-outs (the mean one and n − 1 sampled),
        their rewards (B,) and, with ``subqueries``, the chosen fan-outs' sub-query vectors
        (B, k, d): ``search`` with no CEM rounds."""
        rows, r, sub = self.search(queries, n, reward_fn=reward_fn, weights=weights,
                                   exclude=exclude, seed=seed, idx=idx)
        return (rows, r, sub) if subqueries else (rows, r)


class TeacherRetriever(Retriever):
    """``teacher``: the RL fan-out policy with a query-time search under the request's
    weights (a request without weights is searched under ``DEFAULT_WEIGHTS``, not the
    weights the teacher was trained with) — best-of-``best_of`` fan-outs, then ``rounds``
    cross-entropy-method rounds (``Teacher.search``), then ``refine`` sweeps of reward-guided
    grounding of the best fan-out (``retrieval.ascent``: each slot may take another of its
    sub-query's max(20, k + 2) nearest items). The expensive, high-quality method
    the diffusion retriever is distilled from."""

    name = "teacher"
    summary = "RL fan-out policy; best-of-N (+ CEM rounds) under the request's weights"
    model_kind = "teacher"
    fans_out = seeded = weighted = batched = uses_relevance = True
    best_of: int = 8
    rounds: int = 0
    elite: float = 0.25
    spread: float = 1.0
    warm_start: bool = False
    refine: int = 0

    def _check_params(self) -> None:
        from core.checks import check_int, check_number

        check_int(self.name, "best_of", self.best_of, 1, MAX_BEST_OF)
        check_int(self.name, "rounds", self.rounds, 0, MAX_ROUNDS)
        check_number(self.name, "elite", self.elite, 0.0, 1.0, low_open=True)
        check_number(self.name, "spread", self.spread, 0.0, 100.0, low_open=True)
        check_int(self.name, "refine", self.refine, 0, MAX_REFINE)
        if self.relevance is not None and not self.refine:
            from core.errors import InvalidParameterError

            raise InvalidParameterError("teacher: a relevance model acts through the "
                                        "reward-guided grounding; give refine ≥ 1")

    @property
    def k_fixed(self) -> int:
        return int(self.model.k)

    def _retrieve(self, V, k, weights, seed, exclude):
        rows, _, sub = self.model.search(V, self.best_of, rounds=self.rounds,
                                         elite=self.elite, spread=self.spread,
                                         warm_start=self.warm_start, weights=weights,
                                         exclude=exclude, seed=seed)
        if self.refine:          # reward-guided grounding of the best fan-out's sub-queries
            from retrieval.ascent import refine_fanout
            from retrieval.index import sub_query_hits

            rel = None if self.relevance is None else self.relevance.scorer(V, self.vectors)
            rows = refine_fanout(self.index, self.vectors, V[:, 0],
                                 sub_query_hits(self.index, sub), rows, weights,
                                 sweeps=self.refine, exclude=exclude, relevance=rel)
        return rows, np.tile(np.arange(k), (len(V), 1))


# -- persistence and training on a stored query set -----------------------------------------

def train_teacher(store, index_name: str, queries: str, *, k: int = 10, regime: str = "open",
                  steps: int = 200, group: int = 8, batch: int = 32, lr: float = 1e-2,
                  sigma: float | None = None, tau: float = 0.3, beta: float = 0.01,
                  weights: dict[str, float] | None = None, seed: int = 0,
                  progress: bool = False) -> dict:
    """``curate fanout train-teacher``: GRPO on the training split of the stored query set
    ``queries`` (``retrieval.queries.register_queries``) over index ``index_name``;
    ``regime="open"`` rewards the composite objective under ``weights``, ``"weak"`` the
    recall of each query's references (the query set must have them). A query's own item
    (``item`` column) is never returned for it."""
    from core.checks import check_int, check_number, check_seed
    from core.errors import InvalidParameterError, MissingInputError
    from retrieval.index import load_index
    from retrieval.objectives import check_weights
    from retrieval.queries import load_queries, model_views, query_set_meta, recall_reward
    from stores import files

    if regime not in ("open", "weak"):
        raise InvalidParameterError(f"regime must be 'open' or 'weak'; got {regime!r}")
    for name, value in (("k", k), ("steps", steps), ("group", group), ("batch", batch)):
        check_int("train-teacher", name, value, 2 if name == "group" else 1)
    check_seed(seed)
    check_number("train-teacher", "lr", lr, 0.0, 10.0, low_open=True)
    check_number("train-teacher", "tau", tau, 0.0, 10.0, low_open=True)
    check_number("train-teacher", "beta", beta, 0.0, 1e6)
    if sigma is not None:
        check_number("train-teacher", "sigma", sigma, 0.0, 10.0, low_open=True)
    weights = check_weights(weights)
    qmeta = query_set_meta(store, queries)
    if qmeta["index"] != index_name:
        raise InvalidParameterError(f"query set {queries!r} was registered for index "
                                    f"{qmeta['index']!r}, not {index_name!r}")
    index = load_index(store, index_name)
    meta = index.meta
    X = np.asarray(store.embeddings(meta["dataset"], meta["embedding"])[0])
    train = load_queries(store, queries, "train")
    view_rule, view_names = model_views(store, {"queries": queries})
    if len(train) < 4:
        raise MissingInputError(f"query set {queries!r} has {len(train)} training queries; "
                                "the teacher needs at least 4")
    reward_fn = None
    if regime == "weak":
        if not train.has_references:
            raise MissingInputError(f"regime 'weak' rewards the recall of each query's "
                                    f"references; query set {queries!r} has none (give a "
                                    "references column)")
        reward_fn = recall_reward(train.refs)
    teacher = Teacher(index, X, k=k, sigma=sigma, tau=tau, beta=beta, weights=weights,
                      views=train.views.shape[1], seed=seed)
    t0 = time.perf_counter()
    history = teacher.train(train.views, steps=steps, group=group, batch=batch, lr=lr,
                            reward_fn=reward_fn, exclude=train.exclude, progress=progress)
    info = {"index": index_name, "queries": queries, "k": k, "regime": regime,
            "steps": steps, "group": group, "batch": batch, "lr": lr, "sigma": teacher.sigma,
            "tau": teacher.tau, "beta": teacher.beta, "weights": weights,
            "views": int(teacher.views), "view_rule": view_rule, "view_names": view_names,
            "seed": seed, "train_s": time.perf_counter() - t0,
            "n_train_queries": len(train), "reward_first": history[0],
            "reward_last": float(np.mean(history[-5:])), "reward_history": history}

    def write(folder):
        files.atomic_write(folder / "policy.pt",
                           lambda p: torch.save(teacher.policy.state_dict(), p))

    model_id = store.write_model("teacher", write, info)
    return {"model_id": model_id, **info}


def load_teacher(store, model_id: str, index: VectorIndex, vectors: np.ndarray) -> Teacher:
    from core.errors import MODEL_LOAD_ERRORS, SchemaError, unreadable_model
    from stores import files

    path = store.model_path(model_id)
    meta = files.read_json(path / "model.json")
    if meta.get("kind") != "teacher":
        raise SchemaError(f"model {model_id!r} is a {meta.get('kind')!r} model, not a teacher")
    try:
        teacher = Teacher(index, vectors, k=int(meta["k"]), sigma=float(meta["sigma"]),
                          tau=float(meta.get("tau", 0.3)), beta=float(meta["beta"]),
                          weights=meta.get("weights"),
                          views=int(meta.get("views", len(VIEWS))), seed=int(meta["seed"]))
        teacher.policy.load_state_dict(torch.load(path / "policy.pt", weights_only=True))
    except MODEL_LOAD_ERRORS as e:
        raise unreadable_model("teacher", model_id, e) from e
    return teacher
