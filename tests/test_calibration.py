"""Calibration-set selection: each strategy on small pools with hand-computed answers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.calibration import features as F
from curate.calibration import select_calibration
from curate.errors import InvalidParameterError, SchemaError


def relevance_pool(model_rank=None):
    # one instance, 6 candidates, metric m = 6..1 (so score order = c0 > c1 > ... > c5)
    return pl.DataFrame({
        "instance_id": ["a"] * 6, "candidate_id": [f"c{i}" for i in range(6)],
        "text": ["w " * (i + 1) for i in range(6)], "role": ["mixed"] * 6,
        "m": [6.0, 5, 4, 3, 2, 1], "likelihood": [-1.0, -2, -3, -4, -5, -6],
        "model_rank": model_rank or [1, 2, 3, 4, 5, 6]})


def chosen(strategy, pool=None, **kw):
    rows, diag = select_calibration(pool if pool is not None else relevance_pool(),
                                    metrics={"m": 1.0}, strategy=strategy, **kw)
    return rows["candidate_id"].to_list(), diag


@pytest.mark.parametrize("strategy,expected", [
    ("max_metric", ["c0", "c1", "c2", "c3"]),
    ("min_metric", ["c2", "c3", "c4", "c5"]),
    ("extreme", ["c0", "c1", "c4", "c5"]),
    ("average", ["c1", "c2", "c3", "c4"]),     # |score − mean|: .5,.5 then 1.5,1.5
    ("max_margin", ["c0", "c1", "c2", "c5"]),  # first subset spanning the full range
    ("min_margin", ["c0", "c1", "c2", "c3"]),  # consecutive candidates: the smallest range
    ("top_beam", ["c0", "c1", "c2", "c3"]),
    ("bottom_beam", ["c2", "c3", "c4", "c5"]),
    ("wide_beam", ["c0", "c2", "c3", "c5"]),   # ranks at linspace(0, 5, 4) → 0, 2, 3, 5
    ("long", ["c2", "c3", "c4", "c5"]),        # texts have 1..6 words
    ("short", ["c0", "c1", "c2", "c3"]),
])
def test_relevance_strategies(strategy, expected):
    got, diag = chosen(strategy)
    assert got == expected                      # always reported in metric order
    assert diag["padded"][0] == 0


def test_margin_diagnostic_is_mean_adjacent_gap():
    z = (np.array([6, 5, 4, 3, 2, 1.0]) - 3.5) / np.std([6, 5, 4, 3, 2, 1.0])
    _, diag = chosen("max_metric")
    assert diag["margin"][0] == pytest.approx((z[0] - z[3]) / 3)


def test_surprise_follows_the_model_order():
    assert F.surprise(np.array([3.0, 2, 1]), np.array([1, 2, 3])) == pytest.approx(0.0)
    assert F.surprise(np.array([3.0, 2, 1]), np.array([3, 2, 1])) == pytest.approx(1.0)
    # the model ranks c5 best and c0 worst: the max-surprise set is fully reversed
    got, diag = chosen("max_surprise", relevance_pool([6, 5, 4, 3, 2, 1]))
    assert diag["surprise"][0] == pytest.approx(1.0)
    _, diag = chosen("min_surprise", relevance_pool([1, 3, 2, 4, 6, 5]))
    assert diag["surprise"][0] == pytest.approx(0.0)


def test_short_instances_are_padded_by_duplication():
    pool = relevance_pool().head(2)
    got, diag = chosen("max_metric", pool)
    assert got == ["c0", "c0", "c1", "c1"] and diag["padded"][0] == 2


def faith_pool(source=False):
    df = pl.DataFrame({
        "instance_id": ["d"] * 6,
        "candidate_id": ["ref", "p1", "p2", "n1", "n2", "n3"],
        "text": ["the cat sat on the mat", "a cat sat", "the cat was on a mat",
                 "the dog sat on the mat", "a bird flew", "the cat sat on the hat"],
        "role": ["reference", "positive", "positive", "negative", "negative", "negative"],
        "m": [9.0, 7, 5, 4, 1, 3], "likelihood": [-1.0, -2, -3, -2, -5, -1],
        "model_rank": [1, 3, 4, 2, 6, 5]})
    if source:
        df = df.with_columns(source=pl.lit("the cat sat on the mat near the door"))
    return df


def faith(strategy, reference="positive", source=False):
    rows, diag = select_calibration(faith_pool(source), metrics={"m": 1.0},
                                    mode="faithfulness", strategy=strategy,
                                    reference=reference)
    return rows["candidate_id"].to_list(), diag


def test_faithfulness_easy_hard_and_reference_policies():
    assert faith("easy")[0] == ["ref", "p1", "n3", "n2"]      # best positives, worst negatives
    assert faith("hard")[0] == ["p1", "p2", "n1", "n3"]       # worst positives, best negatives
    assert "ref" in faith("hard", reference="ensure")[0]
    assert "ref" not in faith("easy", reference="remove")[0]
    got, diag = faith("max_margin")
    assert got == ["ref", "p1", "n3", "n2"]
    assert diag["margin"][0] > faith("min_margin")[1]["margin"][0]


def test_extractive_gap_needs_source_and_prefers_copying_negatives():
    with pytest.raises(SchemaError, match="source"):
        faith("max_extractive_gap")
    got, diag = faith("max_extractive_gap", source=True)
    assert {"n1", "n3"} <= set(got)                          # they copy the source
    assert F.extractive_density(F.tokens("the cat sat on the hat"),
                                F.tokens("the cat sat on the mat")) == pytest.approx(25 / 6)


def test_bad_input():
    with pytest.raises(SchemaError, match="metric column"):
        select_calibration(relevance_pool(), metrics={"rouge": 1.0})
    with pytest.raises(SchemaError, match="lacks column"):
        select_calibration(relevance_pool().drop("likelihood"), metrics={"m": 1.0})
    with pytest.raises(InvalidParameterError, match="strategy must be one of"):
        select_calibration(relevance_pool(), metrics={"m": 1.0}, strategy="easy")
    with pytest.raises(InvalidParameterError, match="k must be"):
        select_calibration(relevance_pool(), metrics={"m": 1.0}, k=1)


def test_calibrate_cli_writes_sets_and_diagnostics(tmp_path, capsys):
    import json

    from curate.cli import main

    src = tmp_path / "pool.parquet"
    pl.concat([relevance_pool(), relevance_pool().with_columns(instance_id=pl.lit("b"))]) \
        .write_parquet(src)
    out = tmp_path / "cal.parquet"
    code = main(["calibrate", str(src), "--metrics", "m=1", "--strategy", "max_metric",
                 "--out", str(out), "--json"])
    assert code == 0, capsys.readouterr().err
    res = json.loads(capsys.readouterr().out)
    assert res["instances"] == 2 and res["rows"] == 8
    assert pl.read_parquet(out).height == 8
    assert pl.read_parquet(tmp_path / "cal.diagnostics.parquet").height == 2
    assert main(["calibrate", str(src), "--metrics", "nope=1", "--out", str(out),
                 "--overwrite"]) == 2
    assert "metric column(s) nope not found" in capsys.readouterr().err


def test_faithfulness_average_and_random_respect_roles():
    got, _ = faith("average")
    # positives (ref 9, p1 7, p2 5; mean 7): p1 (0) then ref/p2 (2, first = ref);
    # negatives (4, 1, 3; mean 2.67): n3 (.33) then n1 (1.33)
    assert sorted(got) == sorted(["p1", "ref", "n3", "n1"])
    got, _ = faith("random")
    roles = dict(zip(faith_pool()["candidate_id"], faith_pool()["role"], strict=True))
    assert sorted(roles[c] != "negative" for c in got) == [False, False, True, True]


def test_diversity_strategies_order_by_overlap():
    pool = relevance_pool().with_columns(
        text=pl.Series(["a b c", "a b c", "a b d", "x y z", "p q r", "a b c"]))
    _, hi = chosen("max_diversity", pool)
    _, lo = chosen("min_diversity", pool)
    assert hi["diversity"][0] > lo["diversity"][0]
    assert F.diversity([["a", "b"], ["a", "b"]]) == 0.0
    assert F.diversity([["a"], ["b"]]) == 1.0
