"""R4T stage 2: synthesise the diffusion retriever's training data with the teacher.

For each training query (the train split of the teacher's query set) the teacher proposes
``n`` fan-outs (its mean one and n − 1 samples), each grounded to k distinct items; the best
by the teacher's own reward is kept — the composite objective for an ``open`` teacher, the
recall of the query's reference set for a ``weak`` one (training queries have labels, so
synthesis may use them). Of those, the top ``keep`` fraction by reward is stored:

    models/synthesis-<hex>/queries.npy   (m, V, d) float32 query views (``retrieval.views``)
                           targets.npy   (m, k, d) float32 item vectors of the kept sets
                           subqueries.npy (m, k, d) float32 the teacher's sub-queries that
                                         found them (normalised q + a_j)
                           rows.npy      (m, k) int64 their row_idx
                           rewards.parquet  query_id, query_row (its item, −1: none),
                                         reward, recall, and every objective
                           model.json    teacher, index, k, n, keep, threshold, counts
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from core.errors import InvalidParameterError
from core.progress import bar
from retrieval.index import load_index, normalise
from retrieval.objectives import score_sets
from retrieval.retriever import MAX_BEST_OF, MAX_ROUNDS
from retrieval.teacher import WARM_THETAS, load_teacher
from stores import files


def synthesize(store, teacher_id: str, *, n: int = 16, rounds: int = 0, spread: float = 1.0,
               warm_start: bool = False, keep: float = 0.5, chunk: int = 64, seed: int = 0,
               progress: bool = False) -> dict:
    """``curate fanout synthesize``: the teacher's best set for every training query of its
    query set — best-of-``n`` and ``rounds`` cross-entropy-method rounds
    (``Teacher.search``), so the diffusion retriever distils the teacher's expensive
    search, not only its policy (``spread``, ``warm_start``: as in ``Teacher.search``) —
    the top ``keep`` fraction by reward stored (see the module docstring).
    Rewards: an ``open`` teacher's composite under its training weights (on the same
    ``POOL``-item neighbourhood the reported objectives use), a ``weak`` one's reference
    recall."""
    from core.checks import check_int, check_number, check_seed
    from retrieval.queries import load_queries, recall_at_k, recall_reward

    if not 0 < keep <= 1:
        raise InvalidParameterError(f"keep must be in (0, 1]; got {keep!r}")
    check_int("synthesize", "n", n, 1, MAX_BEST_OF)
    check_int("synthesize", "rounds", rounds, 0, MAX_ROUNDS)
    check_number("synthesize", "spread", spread, 0.0, 100.0, low_open=True)
    check_int("synthesize", "chunk", chunk, 1)
    check_seed(seed)
    tmeta = files.read_json(store.model_path(teacher_id) / "model.json")
    if tmeta.get("kind") != "teacher":
        raise InvalidParameterError(f"model {teacher_id!r} is a {tmeta.get('kind')!r} model; "
                                    "synthesis needs a teacher (`curate fanout train-teacher`)")
    index = load_index(store, tmeta.get("index", ""))
    meta = index.meta
    X = normalise(np.asarray(store.embeddings(meta["dataset"], meta["embedding"])[0]))
    teacher = load_teacher(store, teacher_id, index, X)
    train = load_queries(store, tmeta["queries"], "train")
    Q, exclude = train.views, train.exclude
    weak = tmeta["regime"] == "weak"
    fn = recall_reward(train.refs) if weak else None
    t0 = time.perf_counter()
    sets = np.empty((len(Q), teacher.k), dtype=np.int64)
    subs = np.empty((len(Q), teacher.k, Q.shape[2]), dtype=np.float32)
    obj: dict[str, list[np.ndarray]] = {}
    with bar("synthesising sets", total=len(Q), enabled=progress) as b:
        for s in range(0, len(Q), chunk):
            sl = slice(s, s + chunk)
            sets[sl], _, subs[sl] = teacher.search(
                Q[sl], n, rounds=rounds, spread=spread, warm_start=warm_start, reward_fn=fn,
                exclude=exclude[sl],
                seed=seed * 1_000_003 + s, idx=np.arange(s, min(s + chunk, len(Q))))
            for m, v in score_sets(index, X, Q[sl, 0], sets[sl], teacher.weights).items():
                obj.setdefault(m, []).append(v)
            b.advance(len(Q[sl]))
    objectives = {m: np.concatenate(v) for m, v in obj.items()}
    recall = recall_at_k(sets, train.refs) if train.has_references else \
        np.full(len(Q), np.nan)
    reward = recall if weak else objectives["composite"]
    threshold = float(np.quantile(reward, 1 - keep)) if keep < 1 else float(reward.min())
    kept = np.flatnonzero(reward >= threshold)
    frame = pl.DataFrame({"query_id": train.query_id[kept], "query_row": exclude[kept],
                          "reward": reward[kept], "recall": recall[kept],
                          **{m: v[kept] for m, v in objectives.items()}})
    info = {"teacher": teacher_id, "index": tmeta["index"], "queries": tmeta["queries"],
            **{key: tmeta[key] for key in ("view_rule", "view_names") if key in tmeta},
            "regime": tmeta["regime"], "k": teacher.k, "n": n, "rounds": rounds,
            "spread": spread, "warm_start": warm_start,
            "warm_sets": (["dpp-" + str(t) for t in WARM_THETAS] + ["ascent"]
                          if warm_start else []), "keep": keep,
            "seed": seed,
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
    from core.errors import SchemaError

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
            **{key: smeta[key] for key in ("queries", "view_rule", "view_names") if key in smeta},
            "k": smeta["k"], "target": target, "epochs": epochs, "lr": lr, "seed": seed,
            "sigma_data": model.cfg.sigma_data, "train_loss_last": hist["train_loss"][-1],
            "val_loss_first": hist["val_loss"][0], "val_loss_last": hist["val_loss"][-1],
            "train_s": hist["train_s"], "n_train": hist["n_train"], "n_val": hist["n_val"]}
    model_id = save_diffusion(store, model.cpu(), info)
    return {"model_id": model_id, **info}
