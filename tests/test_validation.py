"""Reliability: inputs that were accepted in silence or mishandled now fail first, with one
readable ``CurateError`` line ("X must be ...; got Y"), before any work or allocation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

import curate
import curate.api
from core.checks import check_seed
from curate import SelectionInput, make_selector
from curate.calibration import select_calibration
from curate.checks import check_seed as curate_check_seed
from curate.errors import (
    CurateError,
    DegenerateInputError,
    EmptyDatasetError,
    InvalidParameterError,
    SchemaError,
    UsageError,
)
from stores import IngestSpec, Store
from tests.conftest import blobs, make_input, tree_hash
from tests.test_calibration import relevance_pool

BAD_SEEDS = [2**70, 2**63, -1, True, np.bool_(True), 1.0, "3", None]


# -- seeds -----------------------------------------------------------------------------------
def test_check_seed_bounds_and_types():
    assert check_seed(0) == 0 and check_seed(2**63 - 1) == 2**63 - 1
    assert check_seed(np.int64(7)) == 7 and type(check_seed(np.uint8(7))) is int
    assert curate_check_seed is check_seed                     # one function, re-exported
    for bad in BAD_SEEDS:
        with pytest.raises(InvalidParameterError, match=r"must be an integer in \[0, 2\*\*63\)"):
            check_seed(bad, where="IngestSpec.seed")
    with pytest.raises(InvalidParameterError, match="^--seed must be"):
        check_seed(-5, where="--seed")


def test_invalid_parameter_error_is_one_class_across_packages():
    import stores

    assert curate.InvalidParameterError is stores.InvalidParameterError
    assert issubclass(InvalidParameterError, UsageError)


def test_select_refuses_a_huge_seed_before_any_work(synthetic_store, monkeypatch):
    def no_work(*a, **k):
        raise AssertionError("inputs were loaded before the seed was checked")

    monkeypatch.setattr(curate.api, "load_input", no_work)
    before = tree_hash(synthetic_store.root)
    with pytest.raises(InvalidParameterError, match=r"seed must be .*got 1180591620717411303424"):
        curate.select(method="random", budget=0.1, store=synthetic_store, seed=2**70)
    with pytest.raises(InvalidParameterError, match="seed"):
        curate.select(method="random", budget=0.1, store=synthetic_store, seed=True)
    assert tree_hash(synthetic_store.root) == before


@pytest.mark.parametrize("seed", BAD_SEEDS)
def test_selector_select_checks_the_seed(seed):
    with pytest.raises(InvalidParameterError, match="seed must be"):
        make_selector("random").select(make_input(), 5, seed=seed)


def _entry_points(store):
    """Every library entry point that takes a seed, called with ``seed``."""
    from curate.defaults import load_wordnet
    from curate.evaluate import evaluate_selection
    from curate.pruning import SeTaPruner, train_dataset, train_with_pruner
    from curate.signals import train_proxy, train_signals
    from curate.subsets import build_pairs, split
    from curate.subsets.persist import train_from_store
    from stores import assign_splits

    X = np.zeros((10, 2), np.float32)
    y = np.arange(10) % 2
    sets = pl.DataFrame({"set_id": ["s0"], "members": [["s1", "s2", "s3"]], "size": [3]})
    return {
        "train_signals": lambda s: train_signals(store, "blobs", epochs=1, seed=s),
        "train_proxy": lambda s: train_proxy(X, y, np.arange(8), np.arange(8, 10),
                                             n_classes=2, epochs=1, seed=s),
        "evaluate_selection": lambda s: evaluate_selection(store, "nope", seed=s),
        "train_dataset": lambda s: train_dataset(store, "blobs", epochs=1, seed=s),
        "train_with_pruner": lambda s: train_with_pruner(X, y, X, y, n_classes=2, epochs=1,
                                                         seed=s),
        "SeTaPruner": lambda s: SeTaPruner(10, 2, seed=s),
        "select_calibration": lambda s: select_calibration(relevance_pool(),
                                                           metrics={"m": 1.0}, seed=s),
        "train_from_store": lambda s: train_from_store(store, "nope.parquet", "inset", seed=s),
        "build_pairs": lambda s: build_pairs(sets, [f"s{i}" for i in range(40)],
                                             np.zeros((40, 2)), seed=s),
        "split": lambda s: split(None, seed=s),
        "load_wordnet": lambda s: load_wordnet(100, seed=s),
        "assign_splits": lambda s: assign_splits(10, None, 0.1, 0.2, s),
        "IngestSpec": lambda s: store.add_dataset(blobs(10), "fresh", IngestSpec(seed=s)),
        "to_sampler": lambda s: make_selector("random").select(make_input(), 3)
        .to_sampler(seed=s),
    }


@pytest.mark.parametrize("entry", sorted(_entry_points(None)))
def test_every_seeded_entry_point_checks_the_seed_first(synthetic_store, entry):
    call = _entry_points(synthetic_store)[entry]
    before = tree_hash(synthetic_store.root)
    for seed in (2**70, -1, True):
        with pytest.raises(InvalidParameterError, match="seed"):
            call(seed)
    assert tree_hash(synthetic_store.root) == before


# -- selector parameters: refused, not coerced -------------------------------------------------
@pytest.mark.parametrize("method,params,fragment", [
    ("inset", {"k": "5"}, "k must be an integer or None; got '5'"),
    ("inset", {"k": True}, "k must be an integer or None; got True"),
    ("cld", {"strata": 5.0}, "strata must be an integer; got 5.0"),
    ("cld", {"beta": "0.1"}, "beta must be a number; got '0.1'"),
    ("cld", {"per_class": 1}, "per_class must be true or false; got 1"),
    ("stratified", {"balance": 1}, "balance must be a string; got 1"),
    ("snp", {"group_budget": float("nan")}, "group_budget must be a count"),
    ("snp", {"group_budget": 2.5}, "group_budget must be a count"),
    ("inset", {"threshold": True}, "threshold must be a number; got True"),
])
def test_wrong_parameter_types_are_refused(method, params, fragment):
    with pytest.raises(InvalidParameterError) as info:
        make_selector(method, **params)
    assert fragment in str(info.value)


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    sel = make_selector("facility_location", neighbors=np.int64(3), per_class=np.bool_(False))
    assert type(sel.neighbors) is int and type(sel.per_class) is bool
    out = sel.select(make_input(), 5, seed=0)                  # FAISS wants a Python int
    assert len(out) == 5 and out.provenance.params["neighbors"] == 3


@pytest.mark.parametrize("method,params,fragment", [
    ("cld", {"policy": "ccs", "strata": 10**9}, r"strata must be an integer in \[1, 10000\]"),
    ("inset", {"samples": 10**9}, "samples=1000000000 .* would need"),
    ("inset", {"steps": 10**6}, r"steps must be an integer in \[1, 1000\]"),
    ("autocoreset", {"n_initial": 10**6}, r"n_initial must be an integer in \[1, 100\]"),
    ("autocoreset", {"max_rounds": 10**9}, r"max_rounds must be an integer in \[1, 1000\]"),
])
def test_sizes_from_parameters_are_bounded_before_allocating(method, params, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        make_selector(method, **params).select(make_input(), 5, seed=0)


def test_allocation_limit_is_checked_against_the_data(monkeypatch):
    import core.checks

    monkeypatch.setattr(core.checks, "MAX_ALLOC_BYTES", 1000)
    with pytest.raises(InvalidParameterError, match="neighbors=10 for 20 rows would need"):
        make_selector("facility_location").select(make_input(), 5, seed=0)


def test_ccs_with_many_strata_is_unchanged_and_fast():
    from curate.policies import ccs

    scores = np.random.default_rng(0).normal(size=500)
    a = ccs(scores, 50, np.random.default_rng(1), strata=10_000)
    assert len(np.unique(a)) == 50


# -- inputs: every array length-checked ------------------------------------------------------
@pytest.mark.parametrize("kwargs,fragment", [
    ({"labels": [0, 1, 2], "embeddings": np.zeros((5, 3))}, "labels has 3, embeddings has 5"),
    ({"labels": [0, 1, 2], "n": 4}, "n has 4, labels has 3"),
    ({"row_idx": [0, 1, 2], "labels": [0, 1]}, "row_idx has 3, labels has 2"),
    ({"row_idx": [0, 0, 1]}, "row_idx must hold unique values"),
    ({"embeddings": np.zeros(4)}, "embeddings must be 2-D"),
    ({"labels": np.zeros((3, 2))}, "labels must be 1-D"),
])
def test_from_arrays_checks_every_length(kwargs, fragment):
    with pytest.raises(SchemaError, match=fragment):
        SelectionInput.from_arrays(**kwargs)


def test_from_arrays_mismatch_never_reaches_a_selector():
    with pytest.raises(SchemaError):
        data = SelectionInput.from_arrays(labels=["a", "b", "c"], embeddings=np.zeros((5, 3)))
        make_selector("stratified").select(data, 2, seed=0)


@pytest.mark.parametrize("field,value,fragment", [
    ("groups", np.zeros(7, dtype=np.int64), "groups must have one row per candidate"),
    ("sample_ids", np.array(["a"]), "sample_ids must have one row per candidate"),
    ("embeddings", np.zeros((59, 8), np.float32), "embeddings must have one row"),
    ("row_idx", np.zeros(60, dtype=np.int64), "row_idx must be unique"),
    ("labels", -np.ones(60, dtype=np.int64), "labels must be a 1-D array of integer"),
])
def test_selectors_check_arrays_they_do_not_use(field, value, fragment):
    data = replace(make_input(), **{field: value})
    with pytest.raises(SchemaError, match=fragment):
        make_selector("random").select(data, 5, seed=0)


# -- CLD on a one-class dataset ----------------------------------------------------------------
def test_cld_on_flat_one_class_losses_is_refused():
    data = make_input()
    s = data.signals
    flat = replace(data, labels=np.zeros(data.n, dtype=np.int64),
                   signals=replace(s, train_losses=np.zeros_like(s.train_losses),
                                   val_losses=np.zeros_like(s.val_losses),
                                   val_labels=np.zeros(len(s.val_labels), dtype=np.int64)))
    with pytest.raises(DegenerateInputError, match="all 60 candidates score 0.*one class"):
        make_selector("cld").select(flat, 5, seed=0)
    assert DegenerateInputError.exit_code == 2


def test_cld_one_class_with_moving_losses_still_works():
    data = make_input()
    one = replace(data, labels=np.zeros(data.n, dtype=np.int64),
                  signals=replace(data.signals, val_labels=np.zeros(15, dtype=np.int64)))
    assert len(make_selector("cld").select(one, 10, seed=0)) == 10


def test_signals_on_a_one_class_dataset_are_refused(tmp_path):
    from curate.signals import train_signals

    st = Store.create(tmp_path / "s")
    blobs(40).with_columns(label=pl.lit("only")).write_parquet(tmp_path / "d.parquet")
    st.ingest(tmp_path / "d.parquet", "d", IngestSpec(label_column="label", vector_column="vec"))
    before = tree_hash(st.root)
    with pytest.raises(DegenerateInputError, match="at least 2 classes; got 1"):
        train_signals(st, "d", epochs=3)
    assert tree_hash(st.root) == before


def test_proxy_epochs_are_bounded_by_memory():
    from curate.signals import train_proxy

    X = np.zeros((18, 2), np.float32)
    with pytest.raises(InvalidParameterError, match="epochs=1000000000 for 18 rows would need"):
        train_proxy(X, np.arange(18) % 2, np.arange(16), np.arange(16, 18), n_classes=2,
                    epochs=10**9)


def test_evaluate_seeds_are_bounded(synthetic_store):
    from curate.evaluate import evaluate_selection

    with pytest.raises(InvalidParameterError, match=r"seeds must be an integer in \[1, 1000\]"):
        evaluate_selection(synthetic_store, "x", seeds=10**9)
    with pytest.raises(InvalidParameterError, match="seed \\+ seeds − 1"):
        evaluate_selection(synthetic_store, "x", seeds=5, seed=2**63 - 2)


def test_build_pairs_on_too_few_items_fails_instead_of_looping():
    from curate.subsets import build_pairs

    ids = [f"s{i}" for i in range(10)]
    sets = pl.DataFrame({"set_id": ["s0"], "members": [ids[1:5]], "size": [4]})
    with pytest.raises(SchemaError, match="need at least 31 items"):
        build_pairs(sets, ids, np.zeros((10, 2), np.float32), size=30)


# -- calibration -------------------------------------------------------------------------------
def pool18() -> pl.DataFrame:
    return pl.concat([relevance_pool().with_columns(instance_id=pl.lit(i)) for i in "abc"])


def test_calibrate_k_is_checked_against_the_pool():
    with pytest.raises(InvalidParameterError,
                       match=r"k must be an integer in \[2, 6\] .*got 1000000"):
        select_calibration(pool18(), metrics={"m": 1.0}, k=1_000_000)
    rows, _ = select_calibration(pool18(), metrics={"m": 1.0}, k=6, strategy="max_metric")
    assert rows.height == 18


def test_calibrate_cli_huge_k_is_one_line(tmp_path, capsys):
    from curate.cli import main

    pool18().write_parquet(tmp_path / "pool.parquet")
    code = main(["calibrate", str(tmp_path / "pool.parquet"), "--metrics", "m=1", "--k",
                 "1000000", "--out", str(tmp_path / "out.parquet")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: k must be an integer in [2, 6]")
    assert len(err.splitlines()) == 1 and not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("change,metrics,error,fragment", [
    (lambda f: f.with_columns(m=pl.when(pl.col("candidate_id") == "c1")
                              .then(float("inf")).otherwise(pl.col("m"))),
     {"m": 1.0}, SchemaError, "metric column 'm' has 3 null, NaN or infinite"),
    (None, {"m": float("nan")}, InvalidParameterError, "weight for 'm' must be a finite"),
    (None, {"m": True}, InvalidParameterError, "weight for 'm' must be a finite"),
    (None, {}, InvalidParameterError, "metrics must be a non-empty mapping"),
    (lambda f: f.with_columns(m=pl.col("m").cast(pl.String)),
     {"m": 1.0}, SchemaError, "metric column 'm' must be numeric; got String"),
    (lambda f: f.with_columns(role=pl.lit("gold")),
     {"m": 1.0}, SchemaError, "role must be one of reference, positive, negative, mixed; "
                              "got 'gold'"),
    (lambda f: f.with_columns(candidate_id=pl.lit("same")),
     {"m": 1.0}, SchemaError, "candidate_id must be unique within an instance; 'same'"),
    (lambda f: f.with_columns(likelihood=pl.lit(float("nan"))),
     {"m": 1.0}, SchemaError, "column 'likelihood' has 18 null, NaN or infinite"),
    (lambda f: f.with_columns(role=pl.lit(None, pl.String)),
     {"m": 1.0}, SchemaError, "column 'role' has 18 null value(s)"),
])
def test_calibrate_bad_pools(change, metrics, error, fragment):
    frame = pool18() if change is None else change(pool18())
    with pytest.raises(error) as info:
        select_calibration(frame, metrics=metrics)
    assert fragment in str(info.value)


def test_calibrate_many_faithfulness_candidates_are_drawn_not_listed():
    # 60 positives × 60 negatives: 1770² pair combinations are never materialised
    n = 120
    frame = pl.DataFrame({
        "instance_id": ["i"] * n, "candidate_id": [f"c{j}" for j in range(n)],
        "text": [f"w{j} x" for j in range(n)],
        "role": ["positive"] * (n // 2) + ["negative"] * (n // 2),
        "m": np.linspace(0, 1, n), "likelihood": np.zeros(n), "model_rank": np.arange(n)})
    rows, diag = select_calibration(frame, metrics={"m": 1.0}, mode="faithfulness",
                                    strategy="max_margin")
    assert rows.height == 4 and diag["padded"][0] == 0


# -- ingest --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,error,fragment", [
    (IngestSpec(seed=2**70), InvalidParameterError, "IngestSpec.seed must be an integer"),
    (IngestSpec(seed=True), InvalidParameterError, "IngestSpec.seed must be an integer"),
    (IngestSpec(val_fraction="0.1"), InvalidParameterError, "val_fraction must be a number"),
    (IngestSpec(test_fraction=float("nan")), InvalidParameterError, "test_fraction must be"),
    (IngestSpec(label_column=3), InvalidParameterError, "label_column must be a column name"),
])
def test_ingest_spec_is_checked(tmp_path, spec, error, fragment):
    st = Store.create(tmp_path / "s")
    blobs(20).write_parquet(tmp_path / "d.parquet")
    before = tree_hash(st.root)
    with pytest.raises(error, match=fragment):
        st.ingest(tmp_path / "d.parquet", "d", spec)
    assert tree_hash(st.root) == before


BAD_TABLES = [
    (pl.DataFrame({"vec": [["1.5", "2"], ["3", "4"]]}), IngestSpec(vector_column="vec"),
     "vector column 'vec'"),                                   # strings are not coerced
    (pl.DataFrame({"vec": [[1.0, None], [2.0, 3.0]]}), IngestSpec(vector_column="vec"),
     "vector column 'vec' has"),
    (pl.DataFrame({"vec": [[1e300, 1.0], [2.0, 3.0]]}), IngestSpec(vector_column="vec"),
     "NaN/inf values in 1 row"),
    (pl.DataFrame({"y": [[1], [2]]}), IngestSpec(label_column="y"),
     "label column 'y' has type List(Int64)"),
    (pl.DataFrame({"y": [1.0, float("nan")]}), IngestSpec(label_column="y"),
     "1 null or NaN value"),
    (pl.DataFrame({"t": ["a", None]}), IngestSpec(text_column="t"), "text column 't' has"),
    (pl.DataFrame({"x": [1, 2], "split": ["a", "b"]}), IngestSpec(split_column=None),
     "column 'split' would be replaced"),
]


@pytest.mark.parametrize("frame,spec,fragment", BAD_TABLES)
def test_ingest_refuses_silently_wrong_tables(tmp_path, frame, spec, fragment):
    st = Store.create(tmp_path / "s")
    path = tmp_path / "d.parquet"
    frame.write_parquet(path)
    before = tree_hash(st.root)
    with pytest.raises(SchemaError) as info:
        st.ingest(path, "d", spec)
    assert fragment in str(info.value)
    assert tree_hash(st.root) == before


@pytest.mark.parametrize("frame,spec,fragment", [
    (pl.DataFrame({"vec": [["1.5", "2"], ["3", "4"]]}), IngestSpec(vector_column="vec"),
     "expected numbers"),
    (pl.DataFrame({"vec": [[], []]}, schema={"vec": pl.List(pl.Float64)}),
     IngestSpec(vector_column="vec"), "empty vectors"),
    (pl.DataFrame({"vec": [[1.0, None], [2.0, 3.0]]}), IngestSpec(vector_column="vec"),
     "null value in row 0"),
    (pl.DataFrame({"vec": [[1.0], [2.0, 3.0]]}), IngestSpec(vector_column="vec"),
     "different lengths: row 0 has 1 values, row 1 has 2"),
])
def test_extract_vectors_refuses_what_it_would_coerce(frame, spec, fragment):
    from stores.ingest import extract_vectors

    with pytest.raises(SchemaError) as info:
        extract_vectors(frame, spec.vector_column, "d.parquet")
    assert fragment in str(info.value)


@pytest.mark.parametrize("frame,spec,fragment", [
    (frame, spec, fragment) for frame, spec, fragment in BAD_TABLES
    if spec.vector_column is None] + [
    (pl.DataFrame({"t": ["a", None]}), IngestSpec(text_column="t"), "1 null value"),
    (pl.DataFrame({"x": [1]}), IngestSpec(seed=2**63), "IngestSpec.seed must be")])
def test_add_dataset_refuses_silently_wrong_frames(tmp_path, frame, spec, fragment):
    st = Store.create(tmp_path / "s")
    before = tree_hash(st.root)
    with pytest.raises(CurateError) as info:
        st.add_dataset(frame, "d", spec)
    assert fragment in str(info.value)
    assert tree_hash(st.root) == before


def test_ingest_of_a_table_without_columns(tmp_path):
    # found by tests/test_properties.py: the streaming ingest raised IndexError
    st = Store.create(tmp_path / "s")
    pl.DataFrame().write_parquet(tmp_path / "d.parquet")
    before = tree_hash(st.root)
    with pytest.raises(EmptyDatasetError, match="it has no columns"):
        st.ingest(tmp_path / "d.parquet", "d", IngestSpec())
    assert tree_hash(st.root) == before


def test_ingest_refuses_zero_dim_vectors(tmp_path):
    st = Store.create(tmp_path / "s")
    pl.DataFrame({"vec": [[], []]}, schema={"vec": pl.List(pl.Float64)}) \
        .write_parquet(tmp_path / "d.parquet")
    with pytest.raises(SchemaError):
        st.ingest(tmp_path / "d.parquet", "d", IngestSpec(vector_column="vec"))


def test_all_of_it_is_one_exception_tree():
    for cls in (DegenerateInputError, InvalidParameterError, SchemaError):
        assert issubclass(cls, CurateError)


def test_check_finite_counts_bad_rows_across_chunks(monkeypatch):
    import stores.ingest as ingest

    monkeypatch.setattr(ingest, "FINITE_CHUNK", 7)    # 50 rows: 8 chunks, the last short
    a = np.zeros((50, 3), np.float32)
    ingest.check_finite(a, "v")
    a[[3, 20, 21, 49], [0, 1, 2, 0]] = [np.nan, np.inf, -np.inf, np.nan]
    with pytest.raises(SchemaError, match=r"v has NaN/inf values in 4 row\(s\), first at row 3"):
        ingest.check_finite(a, "v")
    ingest.check_finite(np.full((9, 2), 1e308), "huge but finite")   # the sum overflows
    t = np.zeros((4, 9)).T          # a transposed view, as the signals check passes
    t[8, 1] = np.nan
    with pytest.raises(SchemaError, match="in 1 row.*first at row 8"):
        ingest.check_finite(t, "t")


def test_count_duplicates_hand_cases():
    from core.checks import count_duplicates

    assert count_duplicates([3, 1, 2, 3, 3]) == 2          # two entries repeat an earlier one
    assert count_duplicates([]) == 0 and count_duplicates([7]) == 0
    assert count_duplicates(np.arange(10)[::-1]) == 0
    with pytest.raises(SchemaError, match="2 duplicate"):
        SelectionInput.from_arrays(row_idx=[4, 4, 5, 4], n=4)
