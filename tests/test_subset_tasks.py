"""The papers' (V, S*) tasks and the long format for users' own pairs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.errors import SchemaError
from curate.subsets import mean_jaccard, predict, random_mjc, train_set_model
from curate.subsets.long_format import long_pairs
from curate.subsets.tasks import anomaly_sets, gaussian_sets, moons_sets, synthetic_task
from curate.subsets.train import top_k_mask


@pytest.mark.parametrize("gen", [gaussian_sets, moons_sets])
def test_synthetic_sets_follow_the_reference_shapes(gen):
    d = gen(200, 0)
    assert d.features.shape == (200, 100, 2) and d.targets.shape == (200, 100)
    assert (d.targets.sum(1) == 10).all()
    # S* comes from the other component / moon: its mean lies on the far side of V∖S*'s
    inside = (d.features * d.targets[..., None]).sum(1) / 10
    outside = (d.features * (1 - d.targets[..., None])).sum(1) / 90
    assert np.linalg.norm(inside - outside, axis=1).mean() > 0.8
    again = gen(200, 0)
    assert np.array_equal(d.features, again.features)   # seeded, no global RNG
    assert not np.array_equal(d.features, gen(200, 1).features)


def test_random_mjc_matches_the_hypergeometric_expectation():
    # 10 of 100 drawn at random against 10 targets: E[X/(20 − X)], X ~ Hypergeom(100, 10, 10)
    from math import comb

    exact = sum(comb(10, x) * comb(90, 10 - x) / comb(100, 10) * x / (20 - x)
                for x in range(11))
    _, _, test = synthetic_task("gaussian", 0, n_train=10, n_val=10, n_test=4000)
    assert random_mjc(test.targets, 0) == pytest.approx(exact, abs=0.004)


def test_anomaly_sets_put_two_or_three_odd_items_among_one_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 600)
    feats = rng.normal(size=(600, 4)).astype(np.float32)
    d = anomaly_sets(feats, labels, 500, 0)
    lab = labels[d.items]
    odd = d.targets.astype(bool)
    assert set(np.unique(odd.sum(1))) == {2, 3}
    normal_class = np.where(odd, -1, lab).max(1)
    assert (np.where(odd, normal_class[:, None], lab) == normal_class[:, None]).all()
    assert (lab[odd] != np.repeat(normal_class, odd.sum(1))).all()
    assert all(len(set(r)) == len(r) for r in d.items)          # no item twice in a set
    assert np.array_equal(d.features, feats[d.items])


def test_top_k_mask_is_the_per_row_top_k():
    s = np.array([[0.1, 0.9, 0.5, 0.5], [3.0, 2.0, 1.0, 0.0]])
    assert top_k_mask(s, np.array([2, 1])).tolist() == [[0, 1, 1, 0], [1, 0, 0, 0]]


def test_inset_and_equivset_learn_the_gaussian_task_far_above_random():
    tr, va, te = synthetic_task("gaussian", 0, n_train=160, n_val=40, n_test=80)
    base = random_mjc(te.targets, 0)
    for kind in ("equivset", "inset"):
        model, _ = train_set_model(kind, tr, va, epochs=4, hidden=32, patience=4, seed=0)
        mjc = mean_jaccard(predict(model, te.features, te.targets.sum(1)), te.targets)
        assert mjc > base + 0.6, (kind, mjc, base)


def _long(n_sets=12, v=6, d=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_sets):
        members = set(rng.choice(v, 2, replace=False).tolist())
        for i in range(v):
            rows.append({"ground_set": f"g{g}", "item": f"it{g}-{i}",
                         "in_subset": i in members,
                         "vector": (rng.normal(size=d) + (3.0 if i in members else 0)).tolist()})
    return pl.DataFrame(rows)


def test_long_format_reshapes_rows_into_ground_sets_in_order():
    t = _long()
    d = long_pairs(t)
    assert d.features.shape == (12, 6, 3) and d.targets.shape == (12, 6)
    assert d.queries.tolist() == [f"g{g}" for g in range(12)]
    first = t.filter(pl.col("ground_set") == "g0")
    assert d.items[0].tolist() == first["item"].to_list()
    assert np.allclose(d.features[0], np.array(first["vector"].to_list()))
    assert d.targets[0].tolist() == first["in_subset"].cast(int).to_list()
    # shuffled rows: every item keeps its own vector, flag and ground set after the reshape
    shuffled = t.sample(fraction=1.0, shuffle=True, seed=1)
    e = long_pairs(shuffled)
    vec = {r["item"]: r["vector"] for r in t.iter_rows(named=True)}
    flag = {r["item"]: r["in_subset"] for r in t.iter_rows(named=True)}
    owner = {r["item"]: r["ground_set"] for r in t.iter_rows(named=True)}
    for b in range(len(e)):
        for j, item in enumerate(e.items[b]):
            assert np.allclose(e.features[b, j], vec[item])
            assert bool(e.targets[b, j]) == flag[item] and owner[item] == e.queries[b]


def test_long_format_features_from_the_dataset_embeddings():
    t = _long().drop("vector")
    ids = np.array([f"it{g}-{i}" for g in range(12) for i in range(6)])[::-1]
    emb = np.arange(len(ids) * 2, dtype=np.float32).reshape(-1, 2)
    d = long_pairs(t, sample_ids=ids, embeddings=emb)
    at = {sid: i for i, sid in enumerate(ids)}
    assert np.array_equal(d.features, emb[np.vectorize(at.get)(d.items)])


@pytest.mark.parametrize("mutate,match", [
    (lambda t: t.drop("in_subset"), "missing in_subset"),
    (lambda t: t.head(t.height - 1), "same number of items; found sizes 5, 6"),
    (lambda t: t.with_columns(pl.lit(False).alias("in_subset")), r"\|S\*\| = 0"),
    (lambda t: t.with_columns(pl.lit(2).alias("in_subset")), "boolean or 0/1"),
    (lambda t: pl.concat([t, t.head(1)]), "appears twice"),
    (lambda t: t.with_columns(pl.when(pl.int_range(pl.len()) == 3)
                              .then(pl.lit([1.0, float("nan"), 0.0]))
                              .otherwise(pl.col("vector")).alias("vector")), "NaN or inf"),
    (lambda t: t.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit([1.0]))
                              .otherwise(pl.col("vector")).alias("vector")), "ragged"),
    (lambda t: t.drop("vector"), "need a vector column or a dataset"),
])
def test_long_format_refuses_bad_tables_with_one_line(mutate, match):
    with pytest.raises(SchemaError, match=match) as err:
        long_pairs(mutate(_long()))
    assert "\n" not in str(err.value)


def test_subsets_train_cli_on_a_users_long_table(tmp_path, capsys):
    """A user's own (V, S*) pairs with their own vectors train through the CLI (no dataset
    needed) and the model is stored."""
    import json

    from curate.cli import main
    from stores import Store

    Store.create(tmp_path / "s")
    path = tmp_path / "pairs.parquet"
    _long(n_sets=30).write_parquet(path)
    assert main(["--store", str(tmp_path / "s"), "subsets", "train", "--data", str(path),
                 "--model", "inset", "--epochs", "2", "--hidden", "8", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["kind"] == "inset" and rec["n_train"] + rec["n_val"] + rec["n_test"] == 30
    assert rec["dataset"] is None and rec["embedding"] == "vector column"
    from curate.subsets.persist import load_set_model

    model, meta = load_set_model(Store.open(tmp_path / "s"), rec["model_id"])
    assert meta["dim"] == 3 and meta["test_mjc"] == rec["test_mjc"]
    # a long table missing in_subset is named as such, not read as hyponym sets
    _long(n_sets=30).drop("in_subset").write_parquet(tmp_path / "bad.parquet")
    assert main(["--store", str(tmp_path / "s"), "subsets", "train", "--data",
                 str(tmp_path / "bad.parquet")]) == 2
    assert "missing in_subset" in capsys.readouterr().err
    # own vectors and --dataset: one of them would be ignored, so it is refused
    assert main(["--store", str(tmp_path / "s"), "subsets", "train", "--data", str(path),
                 "--dataset", "items"]) == 2
    assert "brings its own item vectors" in capsys.readouterr().err


def test_gaussian_bayes_oracle_is_the_ceiling_models_approach():
    from curate.subsets.tasks import gaussian_oracle_scores

    d = gaussian_sets(2000, 5)
    oracle = mean_jaccard(top_k_mask(gaussian_oracle_scores(d), d.targets.sum(1)), d.targets)
    # σ = 0.5 components 2 apart overlap: even the Bayes ranking misses some odd points
    assert 0.85 < oracle < 0.93 and oracle > random_mjc(d.targets, 0) + 0.7
