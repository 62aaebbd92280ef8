"""Learned query–item relevance from a query set's reference sets — the relevance term the
selection methods use in place of cosine when a request names a relevance model.

Why. On the WordNet benchmark cosine to the query does not separate a query's references (its
hyponyms) from its other neighbours well enough for any re-ranking of the candidates to reach
recall above top-k's at Vendi ≥ 6 (``benchmarks/fanout_hybrid_probe.py``: MMR on cosine has
0.172 at 5.91). The references a user already has (the ``weak`` regime's labels) say what
"relevant" means for their queries; this model learns it from the train split and scores any
candidate of any query.

Model (shapes: V = (v_1 … v_m) (B, m, d) the query's m unit views, v_1 the full query —
``V[:, 0]`` in the code; x (d,) a unit item):

    r(q, x) = σ(s·(cos(x, v_1) − c) + MLP([x, v_1 … v_m, x ⊙ v_1 … x ⊙ v_m,
                                          cos(x, v_1) … cos(x, v_m)]))

two hidden layers of width ``hidden`` (GELU); s (init 10) and c (init 0.5) are learned. The
MLP's output layer starts at zero, so an untrained model ranks exactly as cosine does and
training learns the correction (a model trained on a few hundred queries starts from the
baseline instead of from noise). A bi-encoder feature MLP: it sees embeddings only (a
cross-encoder re-ranker reads the tokens and is far slower), so it can score every candidate
of a request: on the WordNet benchmark (three views, d = 384, hidden 512, a few hundred
candidates a query) it adds ~3.8 ms a query at batch 64 on 2 cores (MMR: 0.6 → 4.4 ms).

Training (``train_relevance``): each train query's candidates are the union of its views'
``pool`` nearest items (``candidate_rows``; its own item excluded); a candidate's label is
whether it is one of the query's references; binary cross-entropy, AdamW, ``steps`` updates
on mini-batches of ``batch`` (candidate, query) pairs from seeded shuffles (as many passes
as that takes). The loss on the val split's candidates is measured at the start (the cosine
ranker) and every ``EVAL_EVERY`` updates, and the state with the lowest is kept — never
worse on val than the cosine start (with no val references: the last state). A loss that is
not finite stops training with an error (lower ``lr``). Features are
gathered per mini-batch from the item vectors (a memory map in the store): no whole-array
copy. ``model.json`` reports recall@k of the top-k candidates by the model beside top-k by
cosine on the val split (``val_recall_model``, ``val_recall_cosine``): a model that does not
beat cosine there should not be used.

Use: ``Retriever(..., relevance=load_relevance(store, id))`` — mmr and dpp re-rank by it, and
the reward-guided grounding (``retrieval.ascent``: ascent, the teacher's and the diffusion
retriever's ``refine``) puts it in the alignment term of the composite. The reported
objectives (``retrieval.objectives.score_sets``) stay cosine-based, so every method is scored
the same way.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from core.nn import init_linear_layers
from retrieval.index import VectorIndex, distinct_rows, normalise, sub_query_hits

#: candidate pairs scored per forward pass
SCORE_BATCH = 8_192
#: updates between two measurements of the val loss (the best state is kept)
EVAL_EVERY = 100


class RelevanceNet(nn.Module):
    """logit r(q, x) for items x (N, d) and their queries' views V (N, v, d)."""

    def __init__(self, dim: int, views: int, hidden: int = 512):
        super().__init__()
        self.dim, self.views, self.hidden = dim, views, hidden
        width = (1 + 2 * views) * dim + views
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, 1))
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.shift = nn.Parameter(torch.tensor(0.5))

    def start_at_cosine(self) -> RelevanceNet:
        """Zero the MLP's output layer: the model then ranks as cosine to view 0 does."""
        with torch.no_grad():
            self.mlp[-1].weight.zero_()
            self.mlp[-1].bias.zero_()
        return self

    def forward(self, x: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        prod = x[:, None, :] * V                                       # (N, v, d)
        cos = prod.sum(2)                                              # (N, v)
        feats = torch.cat([x, V.flatten(1), prod.flatten(1), cos], dim=1)
        return self.scale * (cos[:, 0] - self.shift) + self.mlp(feats).squeeze(1)


class Relevance:
    """A loaded relevance model: ``score`` gives r(q, x) in [0, 1] for candidate rows."""

    def __init__(self, net: RelevanceNet, meta: dict[str, Any]):
        self.net, self.meta = net.eval(), meta

    @property
    def views(self) -> int:
        return int(self.net.views)

    @property
    def dim(self) -> int:
        return int(self.net.dim)

    def score(self, V: np.ndarray, rows: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """(B, P) float64 r(q_b, x_rows[b, p]) for views V (B, v, d) and row ids rows (B, P)
        (−1: none → −inf). ``vectors`` (n, d) unit items; only the rows asked for are read.
        A row repeated within a query (the fan-out's sub-queries share hits) is scored once."""
        V = np.asarray(V, dtype=np.float32)
        rows = np.asarray(rows, dtype=np.int64)
        B, P = rows.shape
        out = np.full((B, P), -np.inf)
        if B == 0 or P == 0:
            return out
        order = np.argsort(rows, axis=1, kind="stable")
        srt = np.take_along_axis(rows, order, 1)
        first = np.ones((B, P), dtype=bool)
        first[:, 1:] = srt[:, 1:] != srt[:, :-1]                # a run's first slot
        run = np.maximum.accumulate(np.where(first, np.arange(P), 0), axis=1)
        b, j = np.nonzero(first & (srt >= 0))                   # the distinct valid rows
        if len(b) == 0:
            return out
        p = order[b, j]
        Vt = torch.from_numpy(np.ascontiguousarray(V[:, :self.views]))
        vals = []
        with torch.inference_mode():
            for s in range(0, len(b), SCORE_BATCH):
                bs, ps = b[s:s + SCORE_BATCH], p[s:s + SCORE_BATCH]
                x = torch.from_numpy(np.ascontiguousarray(vectors[rows[bs, ps]],
                                                          dtype=np.float32))
                vals.append(torch.sigmoid(self.net(x, Vt[bs])).numpy())
        out[b, p] = np.concatenate(vals)
        src = np.take_along_axis(order, run, 1)                 # each slot's run's first
        out[np.arange(B)[:, None], order] = out[np.arange(B)[:, None], src]
        return out

    def scorer(self, V: np.ndarray, vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """``fn(rows (B, P)) -> (B, P)``: ``score`` bound to the queries' views V (B, v, d)."""
        return lambda rows: self.score(V, rows, vectors)


def candidate_rows(index: VectorIndex, views: np.ndarray, pool: int,
                   exclude: np.ndarray | None = None) -> np.ndarray:
    """(B, P) the distinct items among each view's ``pool`` nearest (views (B, v, d); one
    batched search of the B·v views), without ``exclude`` (B,), valid ids first, −1 padded."""
    hits = sub_query_hits(index, np.ascontiguousarray(views, dtype=np.float32), pool)
    ex = np.full(len(views), -1) if exclude is None else np.asarray(exclude, dtype=np.int64)
    return distinct_rows(hits.reshape(len(views), -1), ex)


def top_by(scores: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(B, k) the rows of the k best ``scores`` (B, P) per query (−inf never first)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.where(np.isfinite(np.take_along_axis(scores, order, 1)),
                    np.take_along_axis(rows, order, 1), -1)


def train_relevance(store, index_name: str, queries: str, *, k: int = 10, pool: int = 150,
                    hidden: int = 512, steps: int = 600, batch: int = 4096, lr: float = 1e-3,
                    seed: int = 0, progress: bool = False) -> dict:
    """``curate fanout train-relevance``: fit ``RelevanceNet`` on the train split of query set
    ``queries`` (it must have references) over index ``index_name``, keeping the state with
    the lowest val loss; report recall@k on the val split; store it as
    ``models/relevance-<hex>``. Returns the model id and its meta."""
    from core.checks import check_int, check_number, check_seed
    from core.errors import InvalidParameterError, MissingInputError
    from core.progress import bar
    from retrieval.index import load_index
    from retrieval.queries import load_queries, model_views, query_set_meta, recall_at_k
    from stores import files

    for name, value in (("k", k), ("pool", pool), ("hidden", hidden), ("steps", steps),
                        ("batch", batch)):
        check_int("train-relevance", name, value, 1)
    check_number("train-relevance", "lr", lr, 0.0, 10.0, low_open=True)
    check_seed(seed)
    qmeta = query_set_meta(store, queries)
    if qmeta["index"] != index_name:
        raise InvalidParameterError(f"query set {queries!r} was registered for index "
                                    f"{qmeta['index']!r}, not {index_name!r}")
    index = load_index(store, index_name)
    X = store.embeddings(index.meta["dataset"], index.meta["embedding"])[0]
    train, val = load_queries(store, queries, "train"), load_queries(store, queries, "val")
    if not train.has_references:
        raise MissingInputError(f"a relevance model learns from each query's references; "
                                f"query set {queries!r} has none (give a references column)")
    if len(train) < 4:
        raise MissingInputError(f"query set {queries!r} has {len(train)} training queries; "
                                "a relevance model needs at least 4")
    view_rule, view_names = model_views(store, {"queries": queries})
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    views = train.views.shape[1]
    net = init_linear_layers(RelevanceNet(index.dim, views, hidden), gen).start_at_cosine()
    pairs = _Pairs(index, X, train, pool)
    checked = _Pairs(index, X, val, pool) if len(val) and val.has_references else None
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    history: dict[str, list] = {"step": [], "train_loss": [], "val_loss": []}
    t0 = time.perf_counter()

    def val_loss() -> float | None:
        if checked is None:
            return None
        net.eval()
        with torch.inference_mode():
            v = float(checked.loss(net, np.arange(len(checked))))
        _check_finite(v, "val", step, lr)
        return v

    step = 0
    start_loss = val_loss()                                     # the cosine ranker's
    best_loss, best, best_step = start_loss, copy.deepcopy(net.state_dict()), 0
    order, at, running = rng.permutation(len(pairs)), 0, []
    with bar("relevance steps", total=steps, enabled=progress) as prog:
        for step in range(1, steps + 1):
            if at >= len(order):                                # another seeded pass
                order, at = rng.permutation(len(pairs)), 0
            j = np.sort(order[at:at + batch])                   # a seeded mini-batch of pairs
            at += batch
            net.train()
            loss = pairs.loss(net, j)
            _check_finite(float(loss.detach()), "training", step, lr)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running.append(float(loss.detach()))
            prog.advance(1)
            if step % EVAL_EVERY == 0 or step == steps:
                v = val_loss()
                history["step"].append(step)
                history["train_loss"].append(float(np.mean(running)))
                history["val_loss"].append(v)
                running = []
                if v is None or v < best_loss:
                    best_loss, best, best_step = v, copy.deepcopy(net.state_dict()), step
    net.load_state_dict(best)
    model = Relevance(net, {})
    info: dict[str, Any] = {
        "index": index_name, "queries": queries, "views": views, "view_rule": view_rule,
        "view_names": view_names, "dim": index.dim, "hidden": hidden, "pool": pool, "k": k,
        "steps": steps, "best_step": best_step, "batch": batch, "lr": lr, "seed": seed,
        "val_loss_start": start_loss,
        "n_train_queries": len(train), "n_pairs": len(pairs),
        "positive_share": float(pairs.label.mean()), "history": history,
        "train_s": time.perf_counter() - t0}
    if checked is not None:
        by_model, by_cos = checked.top_k(model, val.views, k)
        info["val_recall_model"] = float(np.nanmean(recall_at_k(by_model, val.refs)))
        info["val_recall_cosine"] = float(np.nanmean(recall_at_k(by_cos, val.refs)))
        info["n_val_queries"] = len(val)

    def write(folder):
        files.atomic_write(folder / "relevance.pt", lambda path: torch.save(net.state_dict(), path))

    model_id = store.write_model("relevance", write, info)
    return {"model_id": model_id, **info}


class _Pairs:
    """The (candidate, query) pairs of a query split: ids (m, P) the candidates' item rows
    (−1 padded), the flat pairs b (query), p (slot) and their labels. Item vectors are read
    from X (the store's memory map) per batch, never for the whole split."""

    def __init__(self, index: VectorIndex, X, split, pool: int):
        self.X, self.split = X, split
        self.ids = candidate_rows(index, split.views, pool, split.exclude)      # (m, P)
        self.b, self.p = np.nonzero(self.ids >= 0)
        self.label = _is_reference(self.ids, split.refs)[self.b, self.p].astype(np.float32)
        self.V = torch.from_numpy(split.views)

    def __len__(self) -> int:
        return len(self.b)

    def top_k(self, model: Relevance, views: np.ndarray, k: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """(m, k) each query's k best candidates by ``model`` and by cosine to view 0, scored
        a batch of queries at a time (≈ ``SCORE_BATCH`` candidates each)."""
        m, P = self.ids.shape
        step = max(1, SCORE_BATCH // max(P, 1))
        by_model, by_cos = [], []
        for s in range(0, m, step):
            ids = self.ids[s:s + step]                                  # (c, P)
            ok = ids >= 0
            x = normalise(np.asarray(self.X[ids[ok]], dtype=np.float32))   # (valid, d)
            local = np.full(ids.shape, -1, dtype=np.int64)
            local[ok] = np.arange(int(ok.sum()))
            cos = np.full(ids.shape, -np.inf)
            cos[ok] = np.einsum("nd,nd->n", x, views[s:s + step, 0][np.nonzero(ok)[0]])
            by_model.append(top_by(model.score(views[s:s + step], local, x), ids, k))
            by_cos.append(top_by(cos, ids, k))
        return np.concatenate(by_model), np.concatenate(by_cos)

    def loss(self, net: RelevanceNet, j: np.ndarray) -> torch.Tensor:
        """Mean binary cross-entropy of ``net`` on pairs j (sorted), their item vectors read
        from X and normalised per batch of ``SCORE_BATCH`` pairs (never the whole split)."""
        total = torch.zeros(())
        for s in range(0, len(j), SCORE_BATCH):
            part = j[s:s + SCORE_BATCH]
            x = torch.from_numpy(np.ascontiguousarray(
                self.X[self.ids[self.b[part], self.p[part]]], dtype=np.float32))
            x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
            total = total + nn.functional.binary_cross_entropy_with_logits(
                net(x, self.V[self.b[part]]), torch.from_numpy(self.label[part]),
                reduction="sum")
        return total / len(j)


def _check_finite(loss: float, which: str, step: int, lr: float) -> None:
    from core.errors import InvalidParameterError

    if not np.isfinite(loss):
        raise InvalidParameterError(f"relevance training diverged: the {which} loss is {loss} "
                                    f"at step {step}; lower lr (now {lr:g})")


def _is_reference(rows: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """(B, P) bool: rows[b, p] is one of query b's references (refs (B, R), −1 padded)."""
    if refs.shape[1] == 0:
        return np.zeros(rows.shape, dtype=bool)
    return ((rows[:, :, None] == refs[:, None, :]) & (refs[:, None, :] >= 0)).any(2) \
        & (rows >= 0)


def load_relevance(store, model_id: str) -> Relevance:
    """The stored relevance model ``model_id``."""
    from core.errors import MODEL_LOAD_ERRORS, SchemaError, unreadable_model
    from stores import files

    path = store.model_path(model_id)
    meta = files.read_json(path / "model.json")
    if meta.get("kind") != "relevance":
        raise SchemaError(f"model {model_id!r} is a {meta.get('kind')!r} model, not a "
                          "relevance model (from `curate fanout train-relevance`)")
    try:
        net = RelevanceNet(int(meta["dim"]), int(meta["views"]), int(meta["hidden"]))
        net.load_state_dict(torch.load(path / "relevance.pt", weights_only=True))
    except MODEL_LOAD_ERRORS as e:
        raise unreadable_model("relevance", model_id, e) from e
    return Relevance(net, meta)


__all__ = ["Relevance", "RelevanceNet", "candidate_rows", "load_relevance", "top_by",
           "train_relevance"]
