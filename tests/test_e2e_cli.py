"""End to end on the bundled WordNet data: init --default → select → evaluate → export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from curate.cli import main

pytestmark = pytest.mark.slow


def _json(capsys, *args):
    code = main(list(args))
    cap = capsys.readouterr()
    assert code == 0, cap.err
    return json.loads(cap.out)


def test_exact_readme_command_via_console_script(wordnet_home, tmp_path):
    env = {**os.environ, "CURATE_HOME": str(wordnet_home)}
    exe = shutil.which("curate") or f"{sys.executable} -m curate.cli"
    proc = subprocess.run([*exe.split(), "select", "--method", "cld", "--budget", "0.1",
                           "--json"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("selection_id", "dataset", "method", "n_candidates", "n_selected", "path"):
        assert key in out
    assert out["dataset"] == "wordnet" and out["method"] == "cld"
    assert out["n_selected"] == round(0.1 * out["n_candidates"])
    table = pl.read_parquet(os.path.join(out["path"], "selection.parquet"))
    assert table.columns == ["row_idx", "sample_id", "rank", "weight", "score"]


def test_flow_select_show_evaluate_export(wordnet_home, tmp_path, capsys):
    st = ["--store", str(wordnet_home)]
    meta = _json(capsys, *st, "list", "--json")
    assert meta["default_dataset"] == "wordnet" and meta["datasets"][0]["n_rows"] == 600
    sel = _json(capsys, *st, "select", "--method", "stratified", "--budget", "60", "--seed",
                "1", "--json")
    assert sel["n_selected"] == 60
    shown = _json(capsys, *st, "show", sel["selection_id"], "--json")
    assert shown["provenance"]["method"] == "stratified" and shown["n_selected"] == 60
    rep = _json(capsys, *st, "evaluate", sel["selection_id"], "--seeds", "2", "--json")
    arms = {a["name"]: a for a in rep["arms"]}
    assert set(arms) == {"selection (stratified)", "random", "full pool"}
    assert all(0 <= a["mean"] <= 1 for a in arms.values())
    assert arms["full pool"]["mean"] > 1 / 45  # far above chance on real data
    # honest evidence: the deterministic selection is one run, random has one per seed
    assert arms["selection (stratified)"]["runs"] == 1
    assert arms["selection (stratified)"]["std"] is None
    assert arms["random"]["runs"] == 2 and arms["random"]["std"] is not None
    for fmt in ("parquet", "jsonl", "csv", "npy"):
        target = tmp_path / f"out.{fmt}"
        _json(capsys, *st, "export", sel["selection_id"], "--format", fmt, "--out",
              str(target), "--json")
        assert target.exists()
    rows = np.load(tmp_path / "out.npy")
    assert len(rows) == 60
    exported = pl.read_parquet(tmp_path / "out.parquet")
    assert {"gloss", "lexname", "rank"} <= set(exported.columns)
    assert exported["row_idx"].to_list() == rows.tolist()
    assert pl.read_ndjson(tmp_path / "out.jsonl").height == 60
    assert pl.read_csv(tmp_path / "out.csv").height == 60
    assert _json(capsys, *st, "sql", "SELECT count(*) AS n FROM wordnet", "--json")[0]["n"] == 600
    listed = _json(capsys, *st, "methods", "--json")
    names = {m["method"] for m in listed if m["kind"] == "selector"}
    assert {"cld", "random", "stratified"} <= names
    pruners = {m["method"]: m for m in listed if m["kind"] == "pruner"}
    assert {"seta", "infobatch", "dynamic_random"} <= set(pruners)      # issue 13
    assert "losses" in pruners["seta"]["needs"] and "prune_ratio" in pruners["seta"]["params"]


def test_human_output_has_tables(wordnet_home, capsys):
    assert main(["--store", str(wordnet_home), "methods"]) == 0
    text = capsys.readouterr().out
    assert "cld" in text and "seta" in text and "pruners" in text


def test_train_with_pruner_from_the_cli(wordnet_home, capsys):
    out = _json(capsys, "--store", str(wordnet_home), "train", "--pruner", "seta", "--epochs",
                "4", "--prune-ratio", "0.3", "--param", "groups=4", "--json")
    assert out["pruner"] == "seta" and 0.0 < out["saved_fraction"] < 1.0
    assert 0.0 <= out["accuracy"] <= 1.0 and out["params"]["groups"] == 4
    code = main(["--store", str(wordnet_home), "train", "--pruner", "sefa"])
    assert code == 2 and "did you mean 'seta'" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["el2n", "forgetting", "uncertainty", "kcenter", "herding",
                                    "facility_location", "autocoreset"])
def test_every_static_method_runs_on_the_default_store(wordnet_home, capsys, method):
    out = _json(capsys, "--store", str(wordnet_home), "select", "--method", method, "--budget",
                "0.2", "--json")
    assert out["method"] == method and 1 <= out["n_selected"] <= round(0.2 * out["n_candidates"])
