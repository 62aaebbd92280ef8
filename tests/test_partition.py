"""The partitioned greedy's merges (``curate.methods.partition``): a hand-computed herding
merge, the bound the merge keeps, and the fallback above ``UNION_MAX_PICKS``."""

from __future__ import annotations

import numpy as np
import pytest

from curate import SelectionInput, make_selector
from curate.methods import partition as P
from curate.methods.herding import herd


def _herding_error(X: np.ndarray, S: np.ndarray) -> float:
    return float(np.linalg.norm(X.mean(axis=0, dtype=np.float64)
                                - X[S].mean(axis=0, dtype=np.float64)))


def _mixture(n: int = 6000, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d)).astype(np.float32) * 2
    return centres[rng.integers(0, 20, size=n)] + rng.standard_normal((n, d), dtype=np.float32)


def test_herding_picks_do_not_depend_on_how_many_follow():
    X = _mixture(500, 4)
    assert herd(X, 40)[0][:15].tolist() == herd(X, 15)[0].tolist()


def test_union_merge_by_hand():
    # Cells A = {0, 4} (rows 0, 1) and B = {5, 11} (rows 2, 3); group mean 5; q = 2.
    # Each cell herds 2 towards its own mean: A (mean 2) ties → 0 then 4; B (mean 8) ties →
    # 5 then 11. Round one takes one each: {0, 5}, mean 2.5, error 2.5. Round two over
    # {0, 4, 5, 11} towards 5: 5 (target 5), then 4 (target 2·5 − 5 = 5): mean 4.5, error 0.5.
    X = np.array([[0.0], [4.0], [5.0], [11.0]], dtype=np.float32)
    parts = [np.array([0, 1]), np.array([2, 3])]
    results = [(p[herd(X[p], 2)[0]], herd(X[p], 2)[1]) for p in parts]
    assert [r[0].tolist() for r in results] == [[0, 1], [2, 3]]
    pos, sc, kept = P._union_merge(X, X.mean(axis=0), 2, results, np.array([2, 2]), herd)
    assert kept == "union" and pos.tolist() == [2, 1]
    assert sc.tolist() == pytest.approx([0.0, 0.5])
    def worse(X_union, q, mu):               # a round two that does worse than round one
        return np.array([0, 3]), np.array([9.0, 9.0])

    pos, _, kept = P._union_merge(X, X.mean(axis=0), 2, results, np.array([2, 2]), worse)
    assert kept == "quota" and pos.tolist() == [0, 2]


def _partitioned_herding(X: np.ndarray, k: int, merge: str) -> tuple[np.ndarray, dict]:
    sel = make_selector("herding", per_class=False, partition="cells", part_size=750)
    out = P.partitioned(sel, SelectionInput.from_arrays(embeddings=X), k,
                        np.random.default_rng(0), herd, per_class=False, partition="cells",
                        part_size=750, merge=merge, refine=herd if merge == "union" else None)
    return out[0], out[2]


def test_union_merge_beats_round_one_and_is_what_the_selector_returns():
    X, k = _mixture(), 60
    union, info = _partitioned_herding(X, k, "union")
    quota, _ = _partitioned_herding(X, k, "quota")
    single = herd(X, k)[0]
    assert len(set(union.tolist())) == k and info["parts"] == 8
    e_union, e_quota = _herding_error(X, union), _herding_error(X, quota)
    e_single = _herding_error(X, single)
    assert info["merge"] == {"union": 1, "quota": 0}
    # measured: one greedy 0.069, round two 0.116, round one alone 0.134
    assert e_single < e_union < e_quota, (e_single, e_union, e_quota)
    via_selector = make_selector("herding", per_class=False, partition="cells",
                                 part_size=750).select(
        SelectionInput.from_arrays(embeddings=X), k, seed=0)
    assert sorted(via_selector.indices.tolist()) == sorted(union.tolist())


def test_a_group_over_union_max_picks_keeps_round_one(monkeypatch):
    X, k = _mixture(3000), 30
    monkeypatch.setattr(P, "UNION_MAX_PICKS", k - 1)
    union, info = _partitioned_herding(X, k, "union")
    quota, _ = _partitioned_herding(X, k, "quota")
    assert info["merge"] == {"union": 0, "quota": 1}
    assert union.tolist() == quota.tolist()


def test_a_cell_whose_share_rounds_to_zero_over_the_cap(monkeypatch):
    # a one-row cell's share of 30 picks out of 3,001 rows rounds to 0, so it gets no task:
    # the fallback above UNION_MAX_PICKS must not expect one result per cell
    X = _mixture(3001)
    cells = [*np.array_split(np.arange(3000), 4), np.array([3000])]
    monkeypatch.setattr(P, "cut", lambda *a, **k: (cells, X.mean(axis=0, dtype=np.float64)))
    monkeypatch.setattr(P, "UNION_MAX_PICKS", 1)
    pos, info = _partitioned_herding(X, 30, "union")
    assert len(set(pos.tolist())) == 30 and 3000 not in pos
    assert info["parts"] == 4 and info["merge"] == {"union": 0, "quota": 1}


def test_never_more_cells_than_picks_so_kcenter_covers_every_cell():
    """600 rows in cells of 20 would be 30 cells; a budget of 5 cuts 5, so each cell keeps
    its first centre (scored ∞): one pick in every cell, instead of the first centres of 5
    of 30 cells (the others left uncovered)."""
    X = _mixture(600)
    sel = make_selector("kcenter", partition="cells", part_size=20).select(
        SelectionInput.from_arrays(embeddings=X), 5, seed=0)
    assert sel.provenance.info["parts"] == 5
    cells, _ = P.cut(X, np.arange(600), 5, partition="cells", part_size=20,
                     rng=np.random.default_rng(0))          # the selector's cut (seed 0)
    assert sorted(int(np.isin(c, sel.indices).sum()) for c in cells) == [1] * 5


def test_kcenter_merge_by_distance_matches_the_cell_restricted_greedy():
    """The merged picks are those of one greedy in which a row counts as covered only by
    centres in its own cell: recomputed here cell by cell, the largest pick distances."""
    from curate.methods.kcenter import kcenter_greedy

    X = _mixture(3000)
    data = SelectionInput.from_arrays(embeddings=X)
    sel = make_selector("kcenter", partition="cells", part_size=500).select(data, 60, seed=0)
    assert sel.provenance.info["parts_exhausted"] == 0
    cells, _ = P.cut(X, np.arange(3000), 60, partition="cells", part_size=500,
                     rng=np.random.default_rng(0))
    # the selector's cells (same seed); each cell's picks are a prefix of its own greedy run
    cell_of = np.empty(3000, dtype=np.int64)
    for c, rows in enumerate(cells):
        cell_of[rows] = c
    for c, rows in enumerate(cells):
        mine = [int(i) for i in sel.indices if cell_of[i] == c]
        assert mine, "every cell keeps at least its first centre"
        run, _ = kcenter_greedy(X[rows], len(mine), int(np.flatnonzero(rows == mine[0])[0]))
        assert sorted(rows[run].tolist()) == sorted(mine)
