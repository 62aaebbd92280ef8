"""The shared contract every registered calibration strategy keeps (``STRATEGIES``), as
``test_selector_contract`` is for the selection methods."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.calibration import select_calibration
from curate.calibration import strategies as S
from curate.errors import InvalidParameterError, SchemaError

ALL = sorted(S.STRATEGIES)
SIZES = (3, 6, 12, 40)   # 3 and 6 pad or nearly; 40 forces the capped (sampled) searches


def pool(seed: int = 0, with_source: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    words = [f"w{i}" for i in range(30)]
    for inst, n in enumerate(SIZES):
        roles = ["reference"] + ["positive", "negative"] * n
        for c in range(n):
            rows.append({"instance_id": f"i{inst}", "candidate_id": f"c{c}",
                         "text": " ".join(rng.choice(words, 3 + c % 5)),
                         "role": roles[c], "m": float(rng.normal()),
                         "likelihood": float(-rng.random()), "model_rank": c + 1,
                         "source": " ".join(words[:12])})
    frame = pl.DataFrame(rows)
    return frame if with_source else frame.drop("source")


@pytest.mark.parametrize("mode,name", ALL)
def test_every_strategy_gives_each_instance_its_set_from_its_own_candidates(mode, name):
    frame = pool()
    k = 4
    rows, diag = select_calibration(frame, metrics={"m": 1.0}, mode=mode, strategy=name,
                                    k=k, seed=3)
    assert diag.height == len(SIZES) and set(diag["strategy"]) == {name}
    per = rows.group_by("instance_id").len().sort("instance_id")["len"].to_list()
    assert per == [k if mode == "relevance" else S.SET_SIZE] * len(SIZES)
    known = frame.select("instance_id", "candidate_id").unique()
    assert rows.join(known, on=["instance_id", "candidate_id"], how="anti").height == 0
    for (iid,), part in rows.group_by("instance_id"):
        m = part["m"].to_numpy()
        assert (np.diff(m) <= 1e-12).all(), iid           # reported in metric order
        n = SIZES[int(str(iid)[1:])]
        assert diag.filter(pl.col("instance_id") == iid)["padded"][0] == \
            (len(part) - part["candidate_id"].n_unique())
        if n > k and mode == "relevance":
            assert part["candidate_id"].n_unique() == k    # no padding when not needed


@pytest.mark.parametrize("mode,name", ALL)
def test_every_strategy_is_seeded(mode, name):
    kw = dict(metrics={"m": 1.0}, mode=mode, strategy=name, k=4)
    a, _ = select_calibration(pool(), seed=7, **kw)
    b, _ = select_calibration(pool(), seed=7, **kw)
    assert a.equals(b)


@pytest.mark.parametrize("mode,name", [s for s in ALL if s[0] == "faithfulness"])
def test_faithfulness_sets_are_two_positives_and_two_negatives(mode, name):
    rows, _ = select_calibration(pool(), metrics={"m": 1.0}, mode=mode, strategy=name,
                                 seed=0, reference="positive")
    big = rows.filter(pl.col("instance_id").is_in(["i2", "i3"]))  # ≥ 2 of each role
    counts = big.group_by("instance_id").agg(
        pl.col("role").is_in(["positive", "reference"]).sum().alias("pos"),
        (pl.col("role") == "negative").sum().alias("neg"))
    assert counts["pos"].to_list() == [2, 2] and counts["neg"].to_list() == [2, 2]
    ensured, _ = select_calibration(pool(), metrics={"m": 1.0}, mode=mode, strategy=name,
                                    seed=0, reference="ensure")
    assert ensured.group_by("instance_id").agg((pl.col("role") == "reference").any())[
        "role"].all()
    removed, _ = select_calibration(pool(), metrics={"m": 1.0}, mode=mode, strategy=name,
                                    seed=0, reference="remove")
    assert "reference" not in removed["role"].to_list()


@pytest.mark.parametrize("mode,name", [s for s in ALL if S.STRATEGIES[s].cap])
def test_subset_searches_never_score_more_than_their_cap(mode, name, monkeypatch):
    seen = []
    real = S._best

    def counting(cands, objective, maximise):
        seen.append(len(cands))
        return real(cands, objective, maximise)

    monkeypatch.setattr(S, "_best", counting)
    select_calibration(pool(), metrics={"m": 1.0}, mode=mode, strategy=name, seed=0)
    cap = S.STRATEGIES[(mode, name)].cap
    assert seen and max(seen) <= cap
    assert max(seen) == cap  # the 40-candidate instance has more subsets than the cap


@pytest.mark.parametrize("mode,name", ALL)
def test_source_is_needed_exactly_by_the_strategies_that_declare_it(mode, name):
    kw = dict(metrics={"m": 1.0}, mode=mode, strategy=name, seed=0)
    if S.STRATEGIES[(mode, name)].needs_source:
        with pytest.raises(SchemaError, match="needs a 'source' column"):
            select_calibration(pool(with_source=False), **kw)
    else:
        rows, _ = select_calibration(pool(with_source=False), **kw)
        assert rows.height > 0


def test_the_registry_refuses_unknown_and_duplicate_strategies():
    with pytest.raises(InvalidParameterError, match="relevance strategy must be one of"):
        select_calibration(pool(), metrics={"m": 1.0}, strategy="easy")   # faithfulness only
    with pytest.raises(ValueError, match="registered twice"):
        S.strategy("relevance", "random")(lambda inst, k, rng: np.arange(k))
    with pytest.raises(ValueError, match="mode must be one of"):
        S.strategy("other", "x")


def test_an_unknown_strategy_gets_the_shared_closest_name_hint():
    with pytest.raises(InvalidParameterError, match="did you mean 'max_margin'"):
        select_calibration(pool(), metrics={"m": 1.0}, strategy="max_margn")
