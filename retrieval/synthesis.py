"""R4T stage 2: synthesise the diffusion retriever's training data with the teacher.

For each training query (the training hypernyms of the teacher's split) the teacher proposes
``n`` fan-outs (its mean one and n − 1 samples), each grounded to k distinct items; the best
by the teacher's own reward is kept — the composite objective for an ``open`` teacher, the
recall of the query's reference set for a ``weak`` one (training queries have labels, so
synthesis may use them). Of those, the top ``keep`` fraction by reward is stored:

    models/synthesis-<hex>/queries.npy   (m, V, d) float32 query views (``retrieval.views``)
                           targets.npy   (m, k, d) float32 item vectors of the kept sets
                           subqueries.npy (m, k, d) float32 the teacher's sub-queries that
                                         found them (normalised q + a_j)
                           rows.npy      (m, k) int64 their row_idx
                           rewards.parquet  query_row, reward, recall, and every objective
                           model.json    teacher, index, k, n, keep, threshold, counts
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from curate.errors import InvalidParameterError
from curate.progress import bar
from retrieval.fanout import POOL
from retrieval.index import load_index, normalise
from retrieval.objectives import reference_recall, set_objectives
from retrieval.teacher import hypernym_queries, hypernym_query_views, load_teacher
from stores import files


def synthesize(store, teacher_id: str, *, n: int = 16, keep: float = 0.5, chunk: int = 64,
               seed: int = 0, progress: bool = False) -> dict:
    if not 0 < keep <= 1:
        raise InvalidParameterError(f"keep must be in (0, 1]; got {keep!r}")
    if n < 1:
        raise InvalidParameterError(f"n must be ≥ 1; got {n!r}")
    tmeta = files.read_json(store.model_path(teacher_id) / "model.json")
    index = load_index(store, tmeta.get("index", ""))
    meta = index.meta
    X = normalise(np.asarray(store.embeddings(meta["dataset"], meta["embedding"])[0]))
    teacher = load_teacher(store, teacher_id, index, X)
    q_rows, refs = hypernym_queries(store, meta["dataset"], seed=int(tmeta["seed"]))["train"]
    Q = hypernym_query_views(store, meta["dataset"], meta["embedding"], q_rows, progress)
    exclude = np.asarray(q_rows)
    t0 = time.perf_counter()
    sets = np.empty((len(Q), teacher.k), dtype=np.int64)
    subs = np.empty((len(Q), teacher.k, Q.shape[2]), dtype=np.float32)
    with bar("synthesising sets", total=len(Q), enabled=progress) as b:
        for s in range(0, len(Q), chunk):
            sl = slice(s, s + chunk)
            fn = None
            if tmeta["regime"] == "weak":
                def fn(i, rows, s=s):
                    return reference_recall(rows, refs[s + i])
            sets[sl], _, subs[sl] = teacher.best_of_n(Q[sl], n=n, reward_fn=fn,
                                                      exclude=exclude[sl], subqueries=True,
                                                      seed=seed * 1_000_003 + s)
            b.advance(len(Q[sl]))
    _, pool = index.search(Q[:, 0], POOL)
    obj = set_objectives(Q[:, 0], X[sets], X[np.clip(pool, 0, None)], teacher.weights)
    recall = np.array([reference_recall(row, r) for r, row in zip(refs, sets, strict=True)])
    reward = recall if tmeta["regime"] == "weak" else obj["composite"]
    threshold = float(np.quantile(reward, 1 - keep)) if keep < 1 else float(reward.min())
    kept = np.flatnonzero(reward >= threshold)
    frame = pl.DataFrame({"query_row": exclude[kept], "reward": reward[kept],
                          "recall": recall[kept],
                          **{m: v[kept] for m, v in obj.items()}})
    info = {"teacher": teacher_id, "index": index.meta.get("name", tmeta["index"]),
            "regime": tmeta["regime"], "k": teacher.k, "n": n, "keep": keep, "seed": seed,
            "threshold": threshold, "n_queries": len(Q), "n_kept": int(len(kept)),
            "mean_reward_all": float(reward.mean()), "mean_reward_kept": float(reward[kept].mean()),
            "synthesis_s": time.perf_counter() - t0}

    def write(folder):
        files.write_npy(folder / "queries.npy", Q[kept].astype(np.float32))
        files.write_npy(folder / "targets.npy", X[sets[kept]].astype(np.float32))
        files.write_npy(folder / "subqueries.npy", subs[kept])
        files.write_npy(folder / "rows.npy", sets[kept])
        files.write_parquet(folder / "rewards.parquet", frame)

    synthesis_id = store.write_model("synthesis", write, info)
    return {"synthesis_id": synthesis_id, **info}


TARGETS = {"subqueries": "subqueries.npy", "items": "targets.npy"}


def load_synthesis(store, synthesis_id: str, target: str = "subqueries"
                   ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(query views (m, V, d), targets (m, k, d), meta) of a stored synthesis; ``target`` picks the
    teacher's sub-queries (the fan-out itself) or the items they found."""
    from curate.errors import SchemaError

    path = store.model_path(synthesis_id)
    meta = files.read_json(path / "model.json")
    if meta.get("kind") != "synthesis":
        raise SchemaError(f"model {synthesis_id!r} is a {meta.get('kind')!r} model, not a "
                          "synthesis (from `curate fanout synthesize`)")
    if target not in TARGETS:
        raise InvalidParameterError(f"target must be one of {', '.join(TARGETS)}; "
                                    f"got {target!r}")
    return np.load(path / "queries.npy"), np.load(path / TARGETS[target]), meta


def train_diffusion_from_store(store, synthesis_id: str, *, epochs: int = 30,
                               batch: int = 128, lr: float = 1e-3, width: int | None = None,
                               layers: int | None = None, target: str = "subqueries",
                               seed: int = 0, device: str = "cpu",
                               progress: bool = False) -> dict:
    """``curate fanout train-diffusion``: fit on a stored synthesis, store the checkpoint.
    ``target="subqueries"`` (default) compiles the teacher's fan-out — the generated rows are
    sub-queries, grounded like the teacher's; ``"items"`` generates the items' vectors and
    snaps them (the literal reading of the paper; noisier: a small model cannot place rows
    exactly on database items, so snapping lands off-target — see the README)."""
    from retrieval.diffusion import LAYERS, WIDTH, save_diffusion, train_diffusion

    Q, T, smeta = load_synthesis(store, synthesis_id, target)
    model, hist = train_diffusion(Q, T, epochs=epochs, batch=batch, lr=lr,
                                  width=width or WIDTH, layers=layers or LAYERS, seed=seed,
                                  device=device, progress=progress)
    info = {"synthesis": synthesis_id, "teacher": smeta["teacher"], "index": smeta["index"],
            "k": smeta["k"], "target": target, "epochs": epochs, "lr": lr, "seed": seed,
            "sigma_data": model.cfg.sigma_data, "train_loss_last": hist["train_loss"][-1],
            "val_loss_first": hist["val_loss"][0], "val_loss_last": hist["val_loss"][-1],
            "train_s": hist["train_s"], "n_train": hist["n_train"], "n_val": hist["n_val"]}
    model_id = save_diffusion(store, model.cpu(), info)
    return {"model_id": model_id, **info}
