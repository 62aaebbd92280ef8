"""Learned query–item relevance from a query set's reference sets — the relevance term the
selection methods use in place of cosine when a request names a relevance model.

Why. On the WordNet benchmark cosine to the query does not separate a query's references (its
hyponyms) from its other neighbours well enough for any re-ranking of the candidates to reach
recall above top-k's at Vendi ≥ 6 (``benchmarks/fanout_hybrid_probe.py``: MMR on cosine has
0.172 at 5.91). The references a user already has (the ``weak`` regime's labels) say what
"relevant" means for their queries; this model learns it from the train split and scores any
candidate of any query.

Model (shapes: V (B, v, d) the query's unit views, view 0 the full query; x (d,) a unit item):

    r(q, x) = σ(MLP([x, v_1 … v_v, x ⊙ v_1 … x ⊙ v_v, cos(x, v_1) … cos(x, v_v)]))

two hidden layers of width ``hidden`` (GELU). A bi-encoder feature MLP: it sees embeddings
only (a cross-encoder re-ranker reads the tokens and is far slower), so it can score every
candidate of a request (~0.1 ms per candidate on one core).

Training (``train_relevance``): each train query's candidates are the union of its views'
``pool`` nearest items (``candidate_rows``; its own item excluded); a candidate's label is
whether it is one of the query's references; binary cross-entropy, AdamW, ``epochs`` seeded
shuffles of mini-batches of ``batch`` (candidate, query) pairs. Features are gathered per
mini-batch from the item vectors (a memory map in the store): no whole-array copy. The val
split reports recall@k of the top-k candidates by the model beside top-k by cosine
(``model.json``: ``val_recall_model``, ``val_recall_cosine``).

Use: ``Retriever(..., relevance=load_relevance(store, id))`` — mmr and dpp re-rank by it, and
the reward-guided grounding (``retrieval.ascent``: ascent, the teacher's and the diffusion
retriever's ``refine``) puts it in the alignment term of the composite. The reported
objectives (``retrieval.objectives.score_sets``) stay cosine-based, so every method is scored
the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from core.nn import init_linear_layers
from retrieval.index import VectorIndex, distinct_rows, normalise, sub_query_hits

#: candidate pairs scored per forward pass
SCORE_BATCH = 32_768


class RelevanceNet(nn.Module):
    """logit r(q, x) for items x (N, d) and their queries' views V (N, v, d)."""

    def __init__(self, dim: int, views: int, hidden: int = 512):
        super().__init__()
        self.dim, self.views, self.hidden = dim, views, hidden
        width = (1 + 2 * views) * dim + views
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        prod = x[:, None, :] * V                                       # (N, v, d)
        feats = torch.cat([x, V.flatten(1), prod.flatten(1), prod.sum(2)], dim=1)
        return self.mlp(feats).squeeze(1)


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
        (−1: none → −inf). ``vectors`` (n, d) unit items; only the rows asked for are read."""
        V = np.asarray(V, dtype=np.float32)
        rows = np.asarray(rows, dtype=np.int64)
        B, P = rows.shape
        b, p = np.nonzero(rows >= 0)
        out = np.full((B, P), -np.inf)
        if len(b) == 0:
            return out
        Vt = torch.from_numpy(np.ascontiguousarray(V[:, :self.views]))
        vals = []
        with torch.inference_mode():
            for s in range(0, len(b), SCORE_BATCH):
                bs, ps = b[s:s + SCORE_BATCH], p[s:s + SCORE_BATCH]
                x = torch.from_numpy(np.ascontiguousarray(vectors[rows[bs, ps]],
                                                          dtype=np.float32))
                vals.append(torch.sigmoid(self.net(x, Vt[bs])).numpy())
        out[b, p] = np.concatenate(vals)
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
                    hidden: int = 512, epochs: int = 3, batch: int = 4096, lr: float = 1e-3,
                    seed: int = 0, progress: bool = False) -> dict:
    """``curate fanout train-relevance``: fit ``RelevanceNet`` on the train split of query set
    ``queries`` (it must have references) over index ``index_name``; report recall@k on the
    val split; store it as ``models/relevance-<hex>``. Returns the model id and its meta."""
    from core.checks import check_int, check_number, check_seed
    from core.errors import InvalidParameterError, MissingInputError
    from core.progress import bar
    from retrieval.index import load_index
    from retrieval.queries import load_queries, model_views, query_set_meta, recall_at_k
    from stores import files

    for name, value, lo in (("k", k, 1), ("pool", pool, 1), ("hidden", hidden, 1),
                            ("epochs", epochs, 1), ("batch", batch, 1)):
        check_int("train-relevance", name, value, lo)
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
    net = init_linear_layers(RelevanceNet(index.dim, views, hidden), gen)
    rows = candidate_rows(index, train.views, pool, train.exclude)            # (m, P)
    b, p = np.nonzero(rows >= 0)
    items = rows[b, p]
    label = _is_reference(rows, train.refs)[b, p].astype(np.float32)
    Vt = torch.from_numpy(train.views)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    history, t0 = [], time.perf_counter()
    steps = -(-len(items) // batch)
    with bar("relevance epochs", total=epochs * steps, enabled=progress) as prog:
        for _ in range(epochs):
            net.train()
            order, total = rng.permutation(len(items)), 0.0
            for s in range(0, len(order), batch):
                j = np.sort(order[s:s + batch])                 # sorted: memory-map locality
                x = torch.from_numpy(np.ascontiguousarray(X[items[j]], dtype=np.float32))
                x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
                loss = nn.functional.binary_cross_entropy_with_logits(
                    net(x, Vt[b[j]]), torch.from_numpy(label[j]))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(j)
                prog.advance(1)
            history.append(total / len(items))
    model = Relevance(net, {})
    info: dict[str, Any] = {
        "index": index_name, "queries": queries, "views": views, "view_rule": view_rule,
        "view_names": view_names, "dim": index.dim, "hidden": hidden, "pool": pool, "k": k,
        "epochs": epochs, "batch": batch, "lr": lr, "seed": seed,
        "n_train_queries": len(train), "n_pairs": int(len(items)),
        "positive_share": float(label.mean()), "loss_history": history,
        "train_s": time.perf_counter() - t0}
    if len(val) and val.has_references:
        vrows = candidate_rows(index, val.views, pool, val.exclude)
        # the val candidates' vectors only, unit rows; ids re-numbered into them
        uniq = np.unique(vrows[vrows >= 0])
        Xu = normalise(np.asarray(X[uniq]))
        pos = np.where(vrows >= 0, np.searchsorted(uniq, vrows), -1)
        cos = np.where(pos >= 0, np.einsum("bpd,bd->bp", Xu[np.clip(pos, 0, None)],
                                           val.views[:, 0]), -np.inf)
        learned = model.score(val.views, pos, Xu)
        info["val_recall_model"] = float(np.nanmean(recall_at_k(top_by(learned, vrows, k),
                                                                val.refs)))
        info["val_recall_cosine"] = float(np.nanmean(recall_at_k(top_by(cos, vrows, k),
                                                                 val.refs)))
        info["n_val_queries"] = len(val)

    def write(folder):
        files.atomic_write(folder / "relevance.pt", lambda path: torch.save(net.state_dict(), path))

    model_id = store.write_model("relevance", write, info)
    return {"model_id": model_id, **info}


def _is_reference(rows: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """(B, P) bool: rows[b, p] is one of query b's references (refs (B, R), −1 padded)."""
    if refs.shape[1] == 0:
        return np.zeros(rows.shape, dtype=bool)
    return ((rows[:, :, None] == refs[:, None, :]) & (refs[:, None, :] >= 0)).any(2) \
        & (rows >= 0)


def load_relevance(store, model_id: str) -> Relevance:
    """The stored relevance model ``model_id``."""
    from core.errors import SchemaError
    from stores import files

    path = store.model_path(model_id)
    meta = files.read_json(path / "model.json")
    if meta.get("kind") != "relevance":
        raise SchemaError(f"model {model_id!r} is a {meta.get('kind')!r} model, not a "
                          "relevance model (from `curate fanout train-relevance`)")
    net = RelevanceNet(int(meta["dim"]), int(meta["views"]), int(meta["hidden"]))
    net.load_state_dict(torch.load(path / "relevance.pt", weights_only=True))
    return Relevance(net, meta)


__all__ = ["Relevance", "RelevanceNet", "candidate_rows", "load_relevance", "top_by",
           "train_relevance"]
