"""Golden cases for the baselines and the sampling policies, computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from curate import CandidateSignals, SelectionInput, make_selector
from curate.errors import InvalidParameterError, MissingInputError
from curate.methods.facility_location import knn_graph, lazy_greedy
from curate.methods.forgetting import forgetting_counts
from curate.methods.herding import herd
from curate.methods.kcenter import kcenter_greedy
from curate.methods.uncertainty import uncertainty
from curate.policies import ccs, resolve_policy


def test_forgetting_counts():
    correct = np.array([[1, 1, 0, 0],
                        [0, 1, 0, 1],
                        [1, 1, 0, 0],
                        [0, 1, 0, 1]], dtype=bool)
    # sample 0 forgets twice (1→0 at e=1 and e=3); 1 never; 2 never learned → E=4; 3 once.
    assert forgetting_counts(correct).tolist() == [2, 0, 4, 1]


def test_uncertainty_measures():
    p = np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]])
    assert uncertainty(p, "least_confidence") == pytest.approx([0.5, 0.0])
    assert uncertainty(p, "margin") == pytest.approx([0.8, 0.0])
    ent = -(0.5 * np.log(0.5) + 0.3 * np.log(0.3) + 0.2 * np.log(0.2))
    assert uncertainty(p, "entropy") == pytest.approx([ent, 0.0], abs=1e-9)


def test_el2n_scores_and_loss_at_epoch():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    losses = np.array([[3.0, 1.0, 2.0], [0.1, 0.2, 0.3], [0.1, 0.1, 0.1]], dtype=np.float32)
    sig = CandidateSignals(train_losses=losses, val_losses=losses, train_probs=probs)
    data = SelectionInput(row_idx=np.arange(3), labels=np.array([0, 0, 1]), signals=sig)
    sel = make_selector("el2n", per_class=False).select(data, 1, seed=0)
    # ‖p − onehot‖: [√(.01+.01), √(.36+.36), √(.25+.25)] → sample 1 is hardest
    assert sel.indices.tolist() == [1] and sel.scores[0] == pytest.approx(np.sqrt(0.72))
    early = make_selector("el2n", per_class=False, epoch=1).select(data, 1, seed=0)
    assert early.indices.tolist() == [0]
    with pytest.raises(InvalidParameterError, match="epoch 5 > 3"):
        make_selector("el2n", epoch=5).select(data, 1, seed=0)


def test_kcenter_on_a_line():
    X = np.array([[0.0], [1.0], [2.0], [10.0]], dtype=np.float32)
    picked, gaps = kcenter_greedy(X, 3, first=0)
    assert picked.tolist() == [0, 3, 2] and gaps[1:].tolist() == [100.0, 4.0]


def test_herding_tracks_the_mean():
    X = np.array([[0.0], [10.0], [4.0], [6.0]])
    order, resid = herd(X, 2)          # mean 5: first 4 or 6 (both 1 away) → 4, then 6
    assert order.tolist() == [2, 3] and resid[-1] == pytest.approx(0.0)


def test_facility_location_covers_both_clusters():
    rng = np.random.default_rng(0)
    a = rng.normal([1, 0, 0], 0.01, size=(20, 3))
    b = rng.normal([0, 1, 0], 0.01, size=(5, 3))
    X = np.vstack([a, b]).astype(np.float32)
    picked, gains = lazy_greedy(knn_graph(X, neighbors=24), 2)
    assert {int(picked[0]) < 20, int(picked[1]) < 20} == {True, False}
    assert gains[0] >= gains[1]       # submodular: gains never increase
    sel = make_selector("facility_location", per_class=False).select(
        SelectionInput.from_arrays(embeddings=X), 2, seed=0)
    assert sorted(int(i) < 20 for i in sel.indices) == [False, True]


def test_ccs_covers_strata_and_drops_the_suspicious_end():
    scores = np.arange(100, dtype=float)
    out = ccs(scores, 10, np.random.default_rng(0), beta=0.1, strata=10, prune_high=True)
    assert len(out) == 10 and out.max() < 90
    assert len(np.unique(np.floor(scores[out] / 8.9))) == 10   # one per equal-width stratum
    low = ccs(scores, 10, np.random.default_rng(0), beta=0.1, strata=10, prune_high=False)
    assert low.min() >= 10


def test_auto_policy_switches_with_budget():
    assert resolve_policy("auto", 5, 100, ccs_above=0.1) == "topk"
    assert resolve_policy("auto", 30, 100, ccs_above=0.1) == "ccs"
    assert resolve_policy("auto", 1, 100) == "ccs"
    data = SelectionInput.from_arrays(labels=np.arange(100) % 2,
                                      signals=CandidateSignals(
                                          train_losses=np.random.default_rng(0).random((4, 100)),
                                          # moving, not flat: flat losses make every CLD
                                          # score 0, which CLD refuses
                                          val_losses=np.random.default_rng(1).random((4, 4)),
                                          val_labels=np.array([0, 1, 0, 1])))
    assert make_selector("cld", policy="auto").select(data, 5, seed=0) \
        .provenance.info["policy"] == "topk"
    assert make_selector("cld", policy="auto").select(data, 30, seed=0) \
        .provenance.info["policy"] == "ccs"


@pytest.mark.parametrize("method", ["cld", "el2n", "forgetting", "uncertainty"])
def test_score_methods_reject_bad_policy(method):
    with pytest.raises(InvalidParameterError, match="policy"):
        make_selector(method, policy="best")


def test_methods_say_what_signal_part_is_missing():
    losses = np.ones((3, 4), dtype=np.float32)
    sig = CandidateSignals(train_losses=losses, val_losses=losses)
    data = SelectionInput(row_idx=np.arange(4), labels=np.array([0, 0, 1, 1]), signals=sig)
    with pytest.raises(MissingInputError, match="probabilities"):
        make_selector("uncertainty").select(data, 2, seed=0)
    with pytest.raises(MissingInputError, match="correctness"):
        make_selector("forgetting").select(data, 2, seed=0)


def test_sharded_exact_knn_equals_one_flat_index():
    """knn_search: shards searched separately and merged give one flat index's neighbours."""
    import faiss

    from curate.methods.knn import knn_search
    from stores.executor import LocalExecutor

    X = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    rows = np.arange(50, 450)
    sims, ids = knn_search(X, rows, 6, LocalExecutor(), shard_rows=37)
    Y = np.ascontiguousarray(X[rows])
    faiss.normalize_L2(Y)
    index = faiss.IndexFlatIP(8)
    index.add(Y)
    want_s, want_i = index.search(Y, 6)
    assert np.array_equal(ids, want_i)
    assert np.allclose(sims, want_s, atol=1e-6)


def test_facility_location_exact_graph_matches_the_flat_graph():
    """graph=exact (sharded search) and the default flat graph give the same selection."""
    from curate import SelectionInput
    from curate.methods import knn

    X = np.random.default_rng(1).normal(size=(300, 6)).astype(np.float32)
    data = SelectionInput.from_arrays(embeddings=X)
    flat = make_selector("facility_location", per_class=False).select(data, 30, seed=0)
    old = knn.SHARD_ROWS
    knn.SHARD_ROWS = 41
    try:
        exact = make_selector("facility_location", per_class=False, partition="none",
                              graph="exact").select(data, 30, seed=0)
    finally:
        knn.SHARD_ROWS = old
    assert np.array_equal(flat.indices, exact.indices)
    with pytest.raises(InvalidParameterError, match="needs partition=none"):
        make_selector("facility_location", graph="exact")


@pytest.mark.parametrize("method", ["herding"])   # facility location orders by gain
def test_per_class_picks_interleave_so_every_prefix_is_a_smaller_budget(method):
    """Issue 13: picks were concatenated class by class (a prefix held one class only).
    Classes of 60/30/10 rows, k = 20 → quotas 12/6/2; every prefix of m picks holds each
    class within one of its share m·q/k."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    X = rng.normal(size=(100, 6)).astype(np.float32) + labels[:, None]
    data = SelectionInput(row_idx=np.arange(100), labels=labels, classes=("a", "b", "c"),
                          embeddings=X)
    sel = make_selector(method).select(data, 20, seed=0)
    got = labels[sel.indices]
    quota = np.bincount(got, minlength=3)
    assert quota.tolist() == [12, 6, 2]
    for m in range(1, 21):
        counts = np.bincount(got[:m], minlength=3)
        assert (np.abs(counts - m * quota / 20) <= 1).all(), (m, counts)
