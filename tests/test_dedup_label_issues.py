"""Curation before selection: dedup (exact + SemDeDup), label issues (confident learning via
cleanlab) and selecting within an earlier selection (``--from``), on hand-built cases and
end to end on the bundled WordNet store."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import curate
from curate import SelectionInput, make_selector
from curate.cli import main
from curate.errors import CurateError
from curate.inputs import text_keys
from curate.methods.label_issues import stratified_folds


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _dedup_input(texts=None):
    # rows 0,1 the same direction; row 2 at cos 0.99 to row 0 (ε = 0.05 joins it); row 3
    # and 4 orthogonal to everything; row 5 far from all, but its text equals row 3's
    e = _unit([[1, 0, 0, 0], [1, 0, 0, 0], [0.99, 0.141, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
               [0, 1, 0, 0]])
    data = SelectionInput.from_arrays(embeddings=e)
    if texts is not None:
        from dataclasses import replace

        data = replace(data, text_keys=text_keys(pl.Series(texts)))
    return data


def test_text_keys_normalise_case_space_and_unicode():
    keys = text_keys(pl.Series(["Hello  World", "hello world ", "ﬁne", "fine", None, "", "x"]))
    assert keys[0] == keys[1] and keys[2] == keys[3]
    assert keys[4] == keys[5] == -1            # empty texts are nobody's duplicates
    assert len(set(keys.tolist())) == 4


def test_empty_texts_are_not_exact_duplicates():
    e = np.eye(4, dtype=np.float32)                         # four distinct directions
    from dataclasses import replace

    data = replace(SelectionInput.from_arrays(embeddings=e),
                   text_keys=text_keys(pl.Series([None, "", "  ", "a"])))
    assert len(make_selector("dedup").select(data, 1.0).indices) == 4


def test_large_identical_groups_are_one_group_with_bounded_listing():
    """100 copies of one vector: more than NEIGHBOURS per row, still one group; the
    provenance lists MEMBERS_LISTED of them and the full size."""
    from curate.methods.dedup import MEMBERS_LISTED, NEIGHBOURS

    e = np.r_[np.tile([[1.0, 0, 0]], (100, 1)), [[0, 1.0, 0]]].astype(np.float32)
    sel = make_selector("dedup").select(SelectionInput.from_arrays(embeddings=e), 1.0)
    info = sel.provenance.info
    assert 100 > NEIGHBOURS and info["n_kept"] == 2 and info["groups_total"] == 1
    assert len(info["groups"][0]) == MEMBERS_LISTED and info["group_sizes"] == [100]


def test_dedup_groups_exact_and_semantic_hand_case():
    data = _dedup_input(["a", "b", "c", "Same  text", "e", "same text"])
    sel = make_selector("dedup", keep="first").select(data, 1.0, seed=0)
    info = sel.provenance.info
    assert sorted(sel.indices.tolist()) == [0, 3, 4]          # {0,1,2} {3,5} {4}
    assert info["n_kept"] == 3 and info["n_removed"] == 3 and info["groups_total"] == 2
    assert info["groups"] == [[0, 1, 2], [3, 5]]               # largest first, kept first
    assert info["exact_pairs"] == 1 and info["semantic_pairs"] == 3
    assert dict(zip(sel.indices.tolist(), sel.scores.tolist(), strict=True)) == \
        {0: 3.0, 3: 2.0, 4: 1.0}


def test_dedup_without_texts_is_semantic_only_and_eps_matters():
    data = _dedup_input()
    assert len(make_selector("dedup").select(data, 1.0).indices) == 4   # {0,1,2} {3} {4} {5}
    tight = make_selector("dedup", eps=0.001).select(data, 1.0)
    assert len(tight.indices) == 5                                    # row 2 now distinct


def test_dedup_chains_are_one_group():
    # a~b (cos 0.985) and b~c, but a and c at cos 0.94 < 0.95: connected components join them
    ang = np.radians([0.0, 10.0, 20.0])
    data = SelectionInput.from_arrays(embeddings=np.c_[np.cos(ang), np.sin(ang)])
    sel = make_selector("dedup", eps=0.05, keep="first").select(data, 1.0)
    assert sel.indices.tolist() == [0] and sel.provenance.info["groups"] == [[0, 1, 2]]


def test_dedup_least_central_keeps_the_least_prototypical_member():
    # a tight group of three plus two outliers that pull the cell mean towards row 1
    e = _unit([[1, 0.05, 0], [1, 0.0, 0], [1, -0.05, 0], [0.3, 1, 0], [0.3, 1, 0.01]])
    data = SelectionInput.from_arrays(embeddings=e)
    sel = make_selector("dedup", eps=0.01).select(data, 1.0)
    g = [g for g in sel.provenance.info["groups"] if 0 in g][0]
    central = e @ (e.mean(0) / np.linalg.norm(e.mean(0)))
    assert g[0] == int(np.argmin(central[[0, 1, 2]]))


def test_dedup_budget_caps_and_prefix_is_a_seeded_sample():
    data = _dedup_input()
    a = make_selector("dedup").select(data, 2, seed=1)
    b = make_selector("dedup").select(data, 1.0, seed=1)
    assert a.indices.tolist() == b.indices.tolist()[:2]


@pytest.mark.parametrize("params", [{"eps": 0}, {"eps": 0.9}, {"keep": "last"},
                                    {"exact": False, "semantic": False}, {"cell_size": 1}])
def test_dedup_bad_parameters(params):
    with pytest.raises(CurateError):
        make_selector("dedup", **params)


def test_stratified_folds_balance_every_class():
    labels = np.repeat(np.arange(3), [10, 7, 5])
    fold = stratified_folds(labels, 5, np.random.default_rng(0))
    for c in range(3):
        counts = np.bincount(fold[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_label_issues_finds_flipped_labels():
    """Two well-separated classes with 6 labels flipped: every flagged row is a flip, and
    cleanlab's noise-rate estimate finds at least 5 of the 6 (it finds 5 here)."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(-3, 1, (100, 4)), rng.normal(3, 1, (100, 4))].astype(np.float32)
    y = np.repeat([0, 1], 100)
    flips = np.array([3, 17, 42, 120, 150, 199])
    y[flips] = 1 - y[flips]
    data = SelectionInput.from_arrays(embeddings=X, labels=y)
    issues = make_selector("label_issues").select(data, 1.0, seed=0)
    found = set(issues.indices.tolist())
    assert found <= set(flips.tolist()) and len(found) >= 5
    assert np.all(np.diff(issues.scores) >= 0)                       # worst first
    clean = make_selector("label_issues", keep="clean").select(data, 1.0, seed=0)
    assert len(clean) == 200 - len(found) and not set(clean.indices.tolist()) & found
    assert issues.provenance.info["n_flagged"] == len(found)


def test_label_issues_refuses_too_small_classes():
    data = SelectionInput.from_arrays(embeddings=np.eye(4, dtype=np.float32),
                                      labels=[0, 0, 1, 1])
    with pytest.raises(CurateError, match="at least 2 classes"):
        make_selector("label_issues").select(data, 1, seed=0)


def _cli(capsys, *args):
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_dedup_label_filter_then_select_within_chain(wordnet_home, tmp_path, capsys):
    """dedup → clean filter → stratified 10%: three commands, each stored with its parent;
    ``show`` prints the chain and a few duplicate groups as text."""
    import shutil

    home = tmp_path / "wn"
    shutil.copytree(wordnet_home, home)
    st = ["--store", str(home)]
    d = _cli(capsys, *st, "dedup", "--eps", "0.3")   # 600 glosses: no pair above cos 0.8
    assert d["n_kept"] + d["n_removed"] == d["n_candidates"] and d["n_removed"] > 0
    c = _cli(capsys, *st, "select", "--method", "label_issues", "--param", "keep=clean",
             "--budget", "1.0", "--from", d["selection_id"])
    assert c["from"] == d["selection_id"] and c["n_candidates"] == d["n_kept"]
    s = _cli(capsys, *st, "select", "--method", "stratified", "--budget", "0.1",
             "--from", c["selection_id"])
    assert s["n_candidates"] == c["n_selected"]
    shown = _cli(capsys, *st, "show", s["selection_id"])
    assert [x["selection_id"] for x in shown["lineage"]] == [d["selection_id"],
                                                             c["selection_id"],
                                                             s["selection_id"]]
    groups = _cli(capsys, *st, "show", d["selection_id"])["duplicate_groups"]
    assert groups and all(g[0]["kept"] and "gloss" in g[0] for g in groups)
    # a chained selection is content-addressed with its parent: asking again reuses it
    again = _cli(capsys, *st, "select", "--method", "stratified", "--budget", "0.1",
                 "--from", c["selection_id"])
    assert again["selection_id"] == s["selection_id"]
    plain = _cli(capsys, *st, "select", "--method", "stratified", "--budget", "0.1")
    assert plain["selection_id"] != s["selection_id"]
    assert main([*st, "show", s["selection_id"]]) == 0
    assert "made within" in capsys.readouterr().out


def test_from_unknown_selection_is_one_line(wordnet_home, capsys):
    code = main(["--store", str(wordnet_home), "select", "--method", "random", "--budget",
                 "5", "--from", "random-0000000000"])
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1


def test_dedup_and_compare_from_the_cli_run_within_an_earlier_selection(wordnet_home, tmp_path,
                                                                         capsys):
    import shutil

    home = tmp_path / "wn"
    shutil.copytree(wordnet_home, home)
    st = ["--store", str(home)]
    parent = _cli(capsys, *st, "select", "--method", "random", "--budget", "0.5",
                  "--seed", "3")
    d = _cli(capsys, *st, "dedup", "--eps", "0.3", "--from", parent["selection_id"])
    assert d["from"] == parent["selection_id"]
    assert d["n_candidates"] == parent["n_selected"]
    kept = curate.load_selection(home, d["selection_id"]).indices
    assert np.isin(kept, curate.load_selection(home, parent["selection_id"]).indices).all()
    rep = _cli(capsys, *st, "compare", "--methods", "herding", "--budgets", "0.2", "--seeds",
               "1", "--from", d["selection_id"], "--out", str(tmp_path / "r"))
    assert rep["within"] == d["selection_id"] and rep["n_candidates"] == d["n_kept"]
