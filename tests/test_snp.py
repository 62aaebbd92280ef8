"""SnP and the Fréchet distance."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate import SelectionInput, make_selector
from curate.cli import main
from curate.errors import InvalidParameterError
from curate.frechet import Moments, frechet_distance, frechet_from_moments
from curate.methods.snp import balanced_kmeans, fps_with_seeds
from stores import IngestSpec


def test_frechet_hand_case_and_moments():
    rng = np.random.default_rng(0)
    A = rng.normal(0, 1, size=(200_000, 1))
    B = rng.normal(3, 2, size=(200_000, 1))
    # 1-D: (0−3)² + 1 + 4 − 2·√(1·4) = 10
    assert frechet_distance(A, B) == pytest.approx(10.0, rel=0.02)
    assert frechet_distance(A, A) == pytest.approx(0.0, abs=1e-8)
    a, b = Moments.of(A[:1000]), Moments.of(A[1000:2000])
    assert frechet_from_moments((a + b) - b, Moments.of(B[:1000])) == pytest.approx(
        frechet_distance(A[:1000], B[:1000]))


def test_balanced_kmeans_sizes_are_floor_or_ceil():
    Z = np.random.default_rng(1).normal(size=(23, 3))
    sizes = np.bincount(balanced_kmeans(Z, 5, np.random.default_rng(0)), minlength=5)
    assert sorted(sizes.tolist()) == [4, 4, 5, 5, 5]


def test_fps_starts_from_seeds():
    Z = np.array([[0.0], [1.0], [2.0], [10.0], [4.0]])
    picks, exhausted = fps_with_seeds(Z, np.arange(5), np.array([0]), 3)
    assert picks.tolist() == [0, 3, 4] and exhausted == 0


def test_fps_in_cells_hand_case():
    """Two cells; seed row 0; 2 further picks. Shares ∝ free rows (3 and 4), oversampled
    twice: ⌈2·2·3/7⌉ = 2 and ⌈2·2·4/7⌉ = 3. Cell A picks 6 (d² 36) then 1 (d² 1); cell B
    120 (d² 14400), 100 (400), 110 (100). The merge keeps the 2 largest: 120 and 100 — the
    picks of one greedy over the pool, which a fixed share per cell (one each) would miss."""
    Z = np.array([[0.0], [1.0], [5.0], [6.0], [100.0], [101.0], [110.0], [120.0]])
    pool = np.arange(8)
    cells = [np.arange(4), np.arange(4, 8)]
    picks, exhausted = fps_with_seeds(Z, pool, np.array([0]), 3, cells=cells)
    assert picks.tolist() == [0, 7, 4] and exhausted == 0
    assert fps_with_seeds(Z, pool, np.array([0]), 3)[0].tolist() == [0, 7, 4]


def test_fps_in_cells_counts_a_cell_that_ran_dry():
    """Cell A: 30 rows within 0.3 of the seed; cell B: 10 rows at 100..1000. 4 further
    picks: B's oversampled share is ⌈2·4·10/39⌉ = 3 and all 3 (1000, 500, 200) beat A's best
    (0.29), so B ran dry with rows left — the merge is then not exactly the greedy (which
    would take B's fourth row, 300, over 0.29) and says so."""
    Z = np.concatenate([np.linspace(0, 0.29, 30), 100.0 * np.arange(1, 11)])[:, None]
    cells = [np.arange(30), np.arange(30, 40)]
    picks, exhausted = fps_with_seeds(Z, np.arange(40), np.array([0]), 5, cells=cells)
    assert picks.tolist() == [0, 39, 34, 31, 29] and exhausted == 1


def _domains(seed=0):
    """Three sources 5 units apart; the target looks like source 1."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(5 * s, 1.0, size=(300, 4)) for s in range(3)]).astype(np.float32)
    groups = np.repeat(np.arange(30), 30)          # 10 groups of 30 per source
    target = rng.normal(5, 1.0, size=(200, 4)).astype(np.float32)
    return X, groups, target


def test_snp_finds_the_matching_source():
    X, groups, target = _domains()
    data = SelectionInput(row_idx=np.arange(len(X)), embeddings=X, groups=groups,
                          target=target)
    sel = make_selector("snp", clusters=6).select(data, 60, seed=0)
    source = sel.indices // 300
    assert (source == 1).mean() >= 0.9
    info = sel.provenance.info
    assert info["fd_selected"] < info["fd_pool"] / 3


def test_snp_sampling_in_cells_still_finds_the_source():
    """``partition="cells"`` (what ``auto`` does above 50,000 kept rows) samples cell by cell:
    the picks still come from the matching source; ``none`` and ``auto`` (a small pool: one
    cell) give the same picks."""
    X, groups, target = _domains()
    data = SelectionInput(row_idx=np.arange(len(X)), embeddings=X, groups=groups,
                          target=target)
    cells = make_selector("snp", clusters=6, partition="cells", part_size=40).select(
        data, 120, seed=0)
    assert cells.provenance.info["fps_cells"] > 1
    assert len(np.unique(cells.indices)) == 120 and (cells.indices // 300 == 1).mean() >= 0.9
    one = make_selector("snp", clusters=6, partition="none").select(data, 120, seed=0)
    auto = make_selector("snp", clusters=6).select(data, 120, seed=0)
    assert one.provenance.info["fps_cells"] == 1
    assert one.indices.tolist() == auto.indices.tolist()


def test_snp_from_the_cli_and_dimension_mismatch(tmp_path, capsys):
    from stores import Store

    X, groups, target = _domains()
    st = Store.create(tmp_path / "s")
    pl.DataFrame({"vec": X.tolist(), "src": groups, "label": groups % 3}).write_parquet(
        tmp_path / "pool.parquet")
    pl.DataFrame({"vec": target.tolist()}).write_parquet(tmp_path / "t.parquet")
    pl.DataFrame({"vec": target[:, :3].tolist()}).write_parquet(tmp_path / "t3.parquet")
    spec = IngestSpec(vector_column="vec", label_column="label", test_fraction=0.0)
    st.ingest(tmp_path / "pool.parquet", "pool", spec)
    st.ingest(tmp_path / "t.parquet", "target", IngestSpec(vector_column="vec"))
    st.ingest(tmp_path / "t3.parquet", "target3", IngestSpec(vector_column="vec"))
    base = ["--store", str(st.root), "select", "pool", "--method", "snp", "--budget", "50"]
    assert main(base + ["--target", "target", "--group-column", "src", "--json"]) == 0
    capsys.readouterr()
    assert main(base + ["--target", "target3", "--group-column", "src"]) == 2
    assert "3-dim" in capsys.readouterr().err
    assert main(base + ["--target", "target", "--group-column", "nope"]) == 2
    assert "group column 'nope' not found" in capsys.readouterr().err
    assert main(base + ["--group-column", "src"]) == 2
    assert "--target DATASET" in capsys.readouterr().err


def test_snp_per_class_keeps_class_quotas():
    X, groups, target = _domains()
    labels = np.arange(len(X)) % 3
    data = SelectionInput(row_idx=np.arange(len(X)), embeddings=X, groups=groups,
                          target=target, labels=labels)
    sel = make_selector("snp", clusters=6, per_class=True).select(data, 60, seed=0)
    assert np.bincount(labels[sel.indices]).tolist() == [20, 20, 20]
    assert (sel.indices // 300 == 1).mean() >= 0.9


def test_group_budget_follows_the_one_budget_rule():
    """Issue 13: a group budget resolves like every budget — a fraction rounds half up
    (0.25 of 10 groups is 3, where Python's round() gave 2), and a count above the groups
    found is one clear error instead of being clipped silently."""
    snp = make_selector("snp", group_budget=0.25)
    assert snp._groups_to_keep(10) == 3
    assert make_selector("snp", group_budget=4)._groups_to_keep(10) == 4
    assert make_selector("snp")._groups_to_keep(7) == 7
    with pytest.raises(InvalidParameterError, match="group_budget.*found 5 groups"):
        make_selector("snp", group_budget=8)._groups_to_keep(5)
    X, groups, target = _domains()
    data = SelectionInput(row_idx=np.arange(len(X)), embeddings=X, groups=groups,
                          target=target)
    with pytest.raises(InvalidParameterError, match="group_budget"):
        make_selector("snp", clusters=6, group_budget=10_000).select(data, 60, seed=0)
