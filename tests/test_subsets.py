"""Neural subset selection: data construction, the mean-field models, training."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from core.nn import init_linear_layers
from curate.subsets import (
    build_pairs,
    make_set_model,
    mean_jaccard,
    predict,
    random_mjc,
    split,
    train_set_model,
)


def test_mean_jaccard_hand_case():
    pred = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=float)
    true = np.array([[1, 0, 1, 0], [1, 0, 0, 0]], dtype=float)
    assert mean_jaccard(pred, true) == (1 / 3 + 1) / 2


def test_build_pairs_sizes_distractors_and_split():
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(200)]
    X = rng.normal(size=(200, 8)).astype(np.float32)
    sets = pl.DataFrame({"set_id": ["s0", "s1", "s2", "s3"],
                         "members": [ids[10:14], ids[20:35], ids[40:42], ids[50:56]],
                         "size": [4, 15, 2, 6]})
    d = build_pairs(sets, ids, X, seed=0, size=30)
    assert d.features.shape == (3, 30, 8)                     # the size-2 set is dropped
    assert d.targets.sum(1).tolist() == [4, 15, 6]
    for items, y, q in zip(d.items, d.targets, d.queries, strict=True):
        assert len(set(items)) == 30 and q not in items       # distinct, hypernym excluded
        members = set(sets.filter(pl.col("set_id") == q)["members"][0])
        assert set(items[y == 1]) == members
    tr, va, te = split(d, seed=0, val=0.34, test=0.34)
    assert len(tr) + len(va) + len(te) == 3
    assert not set(tr.queries) & set(te.queries)


def test_forward_draws_only_from_the_generator_it_is_given():
    """Regression (issue 13): ``generator=None`` used to fall back to torch's global RNG."""
    model = init_linear_layers(make_set_model("inset", 4, 8), torch.Generator().manual_seed(0))
    x = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(1))
    with pytest.raises(TypeError):
        model(x)                                          # a generator is required
    torch.manual_seed(123)
    a = model(x, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(456)                                # the global state does not matter
    b = model(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_inset_superset_term_changes_gains_equivset_does_not():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 4, generator=gen)
    masks = (torch.rand(2, 3, 6, generator=gen) > 0.5).float()
    for kind in ("equivset", "inset"):
        m = make_set_model(kind, 4, hidden=8)
        g = m.gains(x, masks)
        assert g.shape == (2, 6) and torch.isfinite(g).all()
    inset = make_set_model("inset", 4, hidden=8)
    with torch.no_grad():
        base = inset.gains(x, masks)
        for p in inset.rho_out.parameters():
            p.mul_(2.0)
        assert not torch.allclose(base, inset.gains(x, masks))  # V∖S interacts with S


def _clustered(n_sets=120, seed=0):
    """Members cluster around a random centre; distractors are spread out."""
    rng = np.random.default_rng(seed)
    feats, targets = [], []
    for _ in range(n_sets):
        c = rng.normal(size=8)
        k = int(rng.integers(3, 7))
        x = np.vstack([c + 0.2 * rng.normal(size=(k, 8)), rng.normal(size=(10 - k, 8)) * 1.5])
        y = np.r_[np.ones(k), np.zeros(10 - k)]
        o = rng.permutation(10)
        feats.append(x[o])
        targets.append(y[o])
    from curate.subsets import SubsetData

    return SubsetData(np.asarray(feats, np.float32), np.asarray(targets, np.float32),
                      np.zeros((n_sets, 10), dtype=object), np.arange(n_sets).astype(object))


def test_training_beats_random_on_a_learnable_task():
    data = _clustered()
    tr, va, te = split(data, seed=0)
    model, info = train_set_model("inset", tr, va, epochs=15, hidden=32, lr=3e-3, seed=0)
    got = mean_jaccard(predict(model, te.features, te.targets.sum(1)), te.targets)
    assert got > random_mjc(te.targets, 0) + 0.2
    assert info["epochs_run"] >= 1 and 0 <= info["val_mjc"] <= 1
    again, _ = train_set_model("inset", tr, va, epochs=2, hidden=32, seed=0)
    twice, _ = train_set_model("inset", tr, va, epochs=2, hidden=32, seed=0)
    for a, b in zip(again.parameters(), twice.parameters(), strict=True):
        assert torch.equal(a, b)                                # seeded, no global RNG


def test_cli_train_then_select_per_ground_set(tmp_path, capsys):
    import json

    from curate.cli import main
    from stores import IngestSpec, Store

    rng = np.random.default_rng(0)
    n_sets, per = 40, 5
    centres = rng.normal(size=(n_sets, 8)) * 2
    vec = np.vstack([c + 0.2 * rng.normal(size=(per, 8)) for c in centres] +
                    [rng.normal(size=(400, 8)) * 2])
    ids = [f"i{j}" for j in range(len(vec))]
    st = Store.create(tmp_path / "s")
    pl.DataFrame({"id": ids, "vec": vec.astype(np.float32).tolist(),
                  "ground": [j // 30 for j in range(len(vec))]}) \
        .write_parquet(tmp_path / "d.parquet")
    st.ingest(tmp_path / "d.parquet", "items", IngestSpec(id_column="id", vector_column="vec",
                                                        test_fraction=0.0, val_fraction=0.0))
    pl.DataFrame({"set_id": [f"h{s}" for s in range(n_sets)],
                  "members": [ids[s * per:(s + 1) * per] for s in range(n_sets)],
                  "size": [per] * n_sets}).write_parquet(tmp_path / "sets.parquet")
    base = ["--store", str(st.root)]
    assert main(base + ["subsets", "train", "--data", str(tmp_path / "sets.parquet"),
                        "--model", "inset", "--dataset", "items", "--epochs", "3", "--hidden",
                        "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_id"].startswith("inset-") and 0 <= out["test_mjc"] <= 1
    code = main(base + ["select", "items", "--method", "inset", "--model", out["model_id"],
                        "--group-column", "ground", "--budget", "0.5", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and 1 <= res["n_selected"] <= round(0.5 * res["n_candidates"])
    assert main(base + ["select", "items", "--method", "inset", "--model", "inset-nope",
                        "--group-column", "ground", "--budget", "0.5"]) == 2
    assert "model 'inset-nope' not found" in capsys.readouterr().err


def test_model_on_features_of_another_dimension_is_refused(tmp_path, capsys):
    import torch

    from curate.cli import main
    from curate.models import init_linear_layers
    from curate.subsets.persist import save_set_model
    from stores import IngestSpec, Store

    st = Store.create(tmp_path / "s")
    rng = np.random.default_rng(0)
    pl.DataFrame({"vec": rng.normal(size=(40, 6)).astype(np.float32).tolist(),
                  "g": np.arange(40) // 10}).write_parquet(tmp_path / "d.parquet")
    st.ingest(tmp_path / "d.parquet", "d", IngestSpec(vector_column="vec", test_fraction=0.0,
                                                      val_fraction=0.0))
    model = init_linear_layers(make_set_model("inset", 4, 8), torch.Generator().manual_seed(0))
    mid = save_set_model(st, model, "inset", {"note": "4-dim"})
    before = sorted(p.name for p in (st.root / "selections").iterdir())
    code = main(["--store", str(st.root), "select", "d", "--method", "inset", "--model", mid,
                 "--group-column", "g", "--budget", "0.5"])
    err = capsys.readouterr().err
    assert code == 2 and "4-dim features" in err and "6-dim" in err
    assert sorted(p.name for p in (st.root / "selections").iterdir()) == before
