"""``curate compare``: every method × budget × seed against random/stratified and the full
pool, honest runs (a seed-independent selection is one run), paired Δ with a t interval,
stored selections reused on re-run, and the JSON/PNG/HTML report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from curate.cli import main
from curate.comparison import compare, paired_ci95, write_report
from curate.errors import CurateError
from curate.specs import MethodSpec
from stores import Store


def test_paired_ci_hand_computed():
    lo, hi = paired_ci95(np.array([0.01, 0.03]))
    # mean 0.02, sd 0.014142, t(0.975, 1) = 12.7062 → half-width 12.7062 · 0.01 = 0.127062
    assert lo == pytest.approx(0.02 - 0.127062, abs=1e-5)
    assert hi == pytest.approx(0.02 + 0.127062, abs=1e-5)
    assert paired_ci95(np.array([0.5])) is None


def test_method_specs_parse_parameters():
    s = MethodSpec.parse("el2n:policy=ccs:beta=0.1")
    assert (s.method, s.params, s.label) == ("el2n", {"policy": "ccs", "beta": 0.1},
                                             "el2n:policy=ccs:beta=0.1")
    with pytest.raises(CurateError):
        MethodSpec.parse("el2n:policy")


@pytest.fixture(scope="module")
def compared(wordnet_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("cmp") / "store"
    shutil.copytree(wordnet_home, home)
    st = Store.open(home)
    rep = compare(st, methods=["herding", "cld:policy=ccs"], budgets=[0.3], seeds=2)
    return st, rep


def test_compare_arms_runs_and_paired_delta(compared):
    st, rep = compared
    labels = {a.label for a in rep.arms}
    assert labels == {"random", "stratified", "herding", "cld:policy=ccs"}
    assert len(rep.arms) == 4
    herding = rep.arm("herding", 0.3)
    assert herding.runs == 1 and herding.std is None          # seed-independent: one run
    rnd = rep.arm("random", 0.3)
    assert rnd.runs == 2 and rnd.std is not None
    cld = rep.arm("cld:policy=ccs", 0.3)
    base = rep.arm(cld.baseline, 0.3)
    assert cld.baseline == max(("random", "stratified"),
                               key=lambda b: rep.arm(b, 0.3).mean)
    # Δ pairs by seed: with two distinct runs on both sides it is the difference of means
    if cld.runs == 2 and base.runs == 2:
        assert cld.delta == pytest.approx(cld.mean - base.mean)
        assert cld.delta_ci95[0] <= cld.delta <= cld.delta_ci95[1]
    assert 0 < rep.full_pool_accuracy <= 1 and rep.n_candidates > 0
    assert all(sid in rep.provenance for a in rep.arms for sid in a.selection_ids)


def test_compare_reuses_stored_selections(compared):
    st, rep = compared
    before = sorted(p.name for p in (st.root / "selections").iterdir())
    again = compare(st, methods=["herding", "cld:policy=ccs"], budgets=[0.3], seeds=2)
    assert sorted(p.name for p in (st.root / "selections").iterdir()) == before
    assert [a.accuracies for a in again.arms] == [a.accuracies for a in rep.arms]


def test_compare_report_files(compared, tmp_path):
    _, rep = compared
    paths = write_report(rep, tmp_path / "report")
    data = json.loads(open(paths["json"]).read())
    assert data["methods"] == ["herding", "cld:policy=ccs"] and len(data["arms"]) == 4
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    page = open(paths["html"]).read()
    assert "data:image/png;base64," in page and "<table>" in page
    assert all(sid in page for sid in rep.provenance)
    with pytest.raises(CurateError):                    # no silent overwrite
        write_report(rep, tmp_path / "report")


def test_report_round_trips_through_json(compared, tmp_path):
    from curate.comparison import CompareReport

    _, rep = compared
    back = CompareReport.from_json(json.loads(json.dumps(rep.to_json())))
    assert json.dumps(back.to_json()) == json.dumps(json.loads(json.dumps(rep.to_json())))


def test_compare_within_an_earlier_selection(compared):
    """--from: every arm (baselines included) selects inside the parent's rows."""
    import curate

    st, _ = compared
    parent = curate.select(method="random", budget=0.5, store=st, seed=5)
    rep = compare(st, methods=["herding"], budgets=[0.2], seeds=1, within=parent.id)
    assert rep.n_candidates == len(parent) and rep.within == parent.id
    for sid in rep.provenance:
        rows = curate.load_selection(st, sid).indices
        assert np.isin(rows, parent.indices).all()


def test_compare_cli_json_and_errors(compared, tmp_path, capsys):
    st, _ = compared
    capsys.readouterr()
    code = main(["--store", str(st.root), "compare", "--methods", "herding", "--budgets",
                 "0.1", "--seeds", "2", "--out", str(tmp_path / "r"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["paths"]["html"].endswith("compare.html")
    for bad in (["--methods", "nosuch"], ["--methods", "herding", "--seeds", "0"],
                ["--methods", "herding:k"], ["--methods", "dedup"]):
        assert main(["--store", str(st.root), "compare", *bad, "--out",
                     str(tmp_path / "x")]) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
