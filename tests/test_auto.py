"""``auto``'s own rules: the winner is the bake-off's best, the test split is never read, the
time cap skips contenders (never the baselines), and the evidence is complete."""

from __future__ import annotations

import numpy as np
import polars as pl

import curate
from curate import CandidateSignals, SelectionInput, make_selector
from curate.methods.auto import BASELINES, CONTENDERS, inner_split
from stores import IngestSpec, Store


def blobs(n: int = 600, d: int = 8, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = (rng.normal(size=(classes, d)) * 2)[y] + rng.normal(size=(n, d))
    return X.astype(np.float32), y


def test_the_winner_is_the_best_mean_and_the_evidence_is_complete():
    X, y = blobs()
    sel = make_selector("auto", rounds=3).select(
        SelectionInput.from_arrays(embeddings=X, labels=y), 30, seed=1)
    info = sel.provenance.info
    ev = info["evidence"]
    # no signals: the score contenders are not in the bake-off
    assert list(ev) == [c[0] for c in CONTENDERS if c[1] not in ("el2n", "cld")]
    assert all(len(e["val_accuracy"]) == 3 for e in ev.values())
    assert all(e["mean"] == np.mean(e["val_accuracy"]) for e in ev.values())
    best = max(e["mean"] for e in ev.values())
    assert ev[info["chosen"]]["mean"] == best
    if any(ev[b]["mean"] == best for b in BASELINES):   # ties go to a baseline
        assert info["chosen"] in BASELINES
    assert info["chosen"] in info["why"] and len(sel) == 30


def test_signals_bring_the_score_contenders_in():
    X, y = blobs(300)
    rng = np.random.default_rng(0)
    losses = rng.uniform(0.1, 2.0, size=(5, 300)).astype(np.float32)
    data = SelectionInput.from_arrays(embeddings=X, labels=y, signals=CandidateSignals(
        train_losses=losses, val_losses=losses[:, :30], val_labels=y[:30]))
    ev = make_selector("auto").select(data, 30, seed=0).provenance.info["evidence"]
    assert {"el2n:policy=ccs", "cld:policy=ccs"} <= set(ev)


def test_the_time_cap_skips_every_contender_but_the_baselines():
    X, y = blobs()
    info = make_selector("auto", time_cap_s=1e-9).select(
        SelectionInput.from_arrays(embeddings=X, labels=y), 30, seed=0).provenance.info
    assert info["chosen"] in BASELINES
    assert set(info["skipped"]) == {c[0] for c in CONTENDERS
                                    if c[0] not in BASELINES and c[1] not in ("el2n", "cld")}
    assert all("time cap" in why for why in info["skipped"].values())


def test_inner_split_stays_inside_the_candidates_and_is_stratified():
    y = np.repeat(np.arange(4), [40, 20, 8, 1])
    tr, va = inner_split(y, 0.25, np.random.default_rng(0))
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(y)))
    assert np.bincount(y[va], minlength=4).tolist() == [10, 5, 2, 0]


def test_the_test_split_is_never_read(tmp_path):
    """Two stores with the same train rows and different test rows (other vectors, other
    labels) give the same choice, evidence and selected samples."""
    X, y = blobs(800)
    split = np.where(np.arange(800) % 5 == 0, "test", "train")
    picks = []
    for i, test_seed in enumerate((1, 2)):
        Xt, yt = X.copy(), y.copy()
        t = split == "test"
        Xt[t] = np.random.default_rng(test_seed).normal(size=(t.sum(), X.shape[1])) * 5
        yt[t] = np.random.default_rng(test_seed).integers(0, 3, t.sum())
        st = Store.create(tmp_path / f"s{i}")
        frame = pl.DataFrame({"uid": [f"r{j}" for j in range(800)], "label": yt,
                              "split": split})
        st.add_dataset(frame, "d", IngestSpec(label_column="label", id_column="uid"),
                       vectors=Xt)
        sel = curate.select(method="auto", budget=0.05, dataset="d", store=st.root, seed=3)
        picks.append((sel.provenance.info["chosen"], sel.provenance.info["evidence"],
                      sorted(sel.sample_ids.tolist())))
    assert picks[0][0] == picks[1][0]
    assert {k: v["val_accuracy"] for k, v in picks[0][1].items()} == \
        {k: v["val_accuracy"] for k, v in picks[1][1].items()}
    assert picks[0][2] == picks[1][2]
