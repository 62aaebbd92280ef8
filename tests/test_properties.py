"""Property tests (hypothesis): whatever a caller passes, Curate either gives a valid result
or raises a ``CurateError`` — never another exception type — and a refused ingest leaves
the store's files byte-for-byte unchanged.

Strategies cover budgets (floats incl. NaN/±inf/negative/0/>1, ints incl. 0/negative/>N,
bools, strings, NumPy scalars), ingest tables (random schemas, NaN/inf and ragged vectors,
duplicate ids, null labels, unicode column names and text, in Parquet/CSV/JSONL), selector
parameters and seeds, calibration pools and in-memory inputs. Each test is bounded
(40 examples, no deadline, no example database written into the checkout); set
``CURATE_PROPERTY_EXAMPLES=500`` for a deeper search.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import core.checks
from curate import SelectionInput, available_methods, get_selector_class, make_selector
from curate.budget import parse_budget, resolve_budget
from curate.calibration import FAITHFULNESS, RELEVANCE, select_calibration
from curate.errors import BudgetError, CurateError
from stores import IngestSpec, Store
from stores.ingest import SPLITS
from tests.conftest import make_input

BOUNDED = settings(max_examples=int(os.environ.get("CURATE_PROPERTY_EXAMPLES", "40")),
                   deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])
METHODS = available_methods()


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (DuckDB's ``*.wal`` journal excepted)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file() and p.suffix != ".wal"}


# -- strategies --------------------------------------------------------------------------------
EDGE_FLOATS = [0.0, -0.0, 1.0, 0.5, 1e-300, 5e-324, 1.0000001, 1.5, -0.5, -1.0,
               math.nan, math.inf, -math.inf]
EDGE_INTS = [-(2**63), -1, 0, 1, 2, 3, 7, 10**6, 2**63 - 1, 2**63, 2**70]

budgets = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EDGE_FLOATS),
    st.integers(-5, 80), st.sampled_from(EDGE_INTS), st.booleans(),
    st.text(max_size=6), st.none(),
    st.integers(-3, 70).map(np.int64), st.floats(-2, 2).map(np.float64),
    st.just(np.bool_(True)))
good_budgets = st.one_of(st.integers(1, 30), st.floats(0.01, 1.0))
good_seeds = st.integers(0, 2**63 - 1)
seeds = st.one_of(good_seeds, st.sampled_from(EDGE_INTS), st.booleans(), st.floats(0, 10),
                  st.just("1"), st.none())

param_values = st.one_of(
    st.sampled_from([-1, 0, 1, 2, 3, 5, 17, 10**6, 2**63]), st.integers(-3, 40),
    st.sampled_from(EDGE_FLOATS), st.floats(-1, 2), st.booleans(), st.none(),
    st.sampled_from(["", "5", "0.5", "true", "topk", "ccs", "auto", "equal", "entropy",
                     "margin", "kmeans", "svm", "uniform", "caratheodory"]),
    st.integers(0, 10).map(np.int64), st.just([1]))


def faults(*kinds: str):
    """One fault per case (or none, half the time): hypothesis would otherwise make nearly
    every case invalid somewhere, and the success path would go untested."""
    return st.sampled_from(("none",) * len(kinds) + kinds)


def budget_is_valid(budget, n: int) -> bool:
    """The budget rule (DESIGN §2), stated independently of ``resolve_budget``."""
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, numbers.Real):
        return False
    if isinstance(budget, numbers.Integral):
        return 1 <= int(budget) <= n
    return 0 < float(budget) <= 1


# -- budgets ----------------------------------------------------------------------------------
@BOUNDED
@given(budget=budgets, n=st.integers(1, 60))
def test_budget_rule(budget, n):
    try:
        k = resolve_budget(budget, n)
    except BudgetError as exc:
        assert not budget_is_valid(budget, n), f"valid budget {budget!r} refused: {exc}"
        assert "budget must be" in str(exc)
        return
    assert budget_is_valid(budget, n), f"invalid budget {budget!r} accepted as {k}"
    assert type(k) is int and 1 <= k <= n
    if isinstance(budget, numbers.Integral):
        assert k == budget
    else:
        assert k == max(1, min(n, math.floor(float(budget) * n + 0.5)))


@BOUNDED
@given(text=st.one_of(st.text(max_size=8), st.from_regex(r"[+-]?\d{1,4}(\.\d{0,3})?(e-?\d)?",
                                                          fullmatch=True)),
       n=st.integers(1, 50))
def test_parsed_budgets_resolve_or_fail_cleanly(text, n):
    try:
        k = resolve_budget(parse_budget(text), n)
    except BudgetError:
        return
    assert 1 <= k <= n


# -- selectors: parameters, budgets, seeds -----------------------------------------------------
DATA = make_input(n=30, n_classes=3, dim=6, n_val=9)


def check_selection(sel, data, k: int) -> None:
    exact = get_selector_class(sel.provenance.method).exact_budget
    assert (len(sel) == k) if exact else (1 <= len(sel) <= k)
    assert sel.indices.dtype == np.int64 and len(np.unique(sel.indices)) == len(sel)
    assert np.isin(sel.indices, data.row_idx).all()
    if sel.weights is not None:
        assert sel.weights.shape == (len(sel),) and (sel.weights >= 0).all()
    if sel.scores is not None:
        assert sel.scores.shape == (len(sel),)


def plausible(cls, name: str):
    """Values of the kind the parameter's default has (mostly in range), or its default."""
    default = getattr(cls(), name)
    if isinstance(default, bool):
        kind = st.booleans()
    elif isinstance(default, int):
        kind = st.integers(1, 12)
    elif isinstance(default, float):
        kind = st.floats(0.01, 0.99)
    else:
        kind = st.nothing()
    return st.one_of(st.just(default), kind)


@st.composite
def selector_calls(draw):
    """(method, params, budget, seed) — valid apart from at most one fault."""
    fault = draw(faults("param", "budget", "seed", "unknown"))
    method = draw(st.sampled_from(METHODS))
    cls = get_selector_class(method)
    names = cls.param_names()
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=min(2, len(names)))
                  if names else st.just([]))
    params = {p: draw(plausible(cls, p)) for p in chosen}
    if fault == "param" and names:
        params[draw(st.sampled_from(names))] = draw(param_values)
    if fault == "unknown":
        params[draw(st.sampled_from(["nope", "K", "seed"]))] = 1
    budget = draw(budgets if fault == "budget" else good_budgets)
    seed = draw(seeds if fault == "seed" else good_seeds)
    return method, params, budget, seed


@BOUNDED
@given(call=selector_calls())
def test_selectors_give_a_valid_selection_or_a_curate_error(call):
    method, params, budget, seed = call
    # a small allocation limit: large-but-valid parameters take the refusal path quickly
    with mock.patch.object(core.checks, "MAX_ALLOC_BYTES", 2**26):
        try:
            sel = make_selector(method, **params).select(DATA, budget, seed=seed)
        except CurateError as exc:
            event(f"refused: {type(exc).__name__}")
            assert str(exc) and "\n" not in str(exc)        # one readable line
            return
    event("selected")
    check_selection(sel, DATA, resolve_budget(budget, DATA.n))
    assert sel.provenance.seed == seed and type(sel.provenance.seed) is int


@BOUNDED
@given(n_labels=st.integers(0, 6), n_emb=st.integers(0, 6), n_rows=st.integers(0, 6),
       n=st.one_of(st.none(), st.integers(-1, 6)), dim=st.integers(0, 3),
       use=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_from_arrays_is_consistent_or_refused(n_labels, n_emb, n_rows, n, dim, use):
    kw = {}
    if use[0]:
        kw["labels"] = [f"c{i % 2}" for i in range(n_labels)]
    if use[1]:
        kw["embeddings"] = np.ones((n_emb, dim))
    if use[2]:
        kw["row_idx"] = np.arange(n_rows) * 3
    try:
        data = SelectionInput.from_arrays(n=n, **kw)
    except CurateError:
        return
    lengths = {len(v) for v in kw.values()} | ({n} if n is not None else set())
    assert lengths == {data.n}
    for arr in (data.labels, data.embeddings):
        assert arr is None or len(arr) == data.n
    if data.n:
        make_selector("stratified" if data.labels is not None else "random").select(data, 1)


# -- calibration -----------------------------------------------------------------------------
@st.composite
def calibration_cases(draw):
    """(pool, arguments) — valid apart from at most one fault."""
    fault = draw(faults("role", "dup", "metric", "column", "k", "weight", "seed", "mode",
                        "strategy"))
    rows = []
    for i in range(draw(st.integers(1, 3))):
        for j in range(draw(st.integers(1, 7))):
            rows.append({
                "instance_id": f"i{i}", "candidate_id": f"c{j}",
                "text": draw(st.text(max_size=12)),
                "role": draw(st.sampled_from(["positive", "negative", "reference", "mixed"])),
                "m": draw(st.floats(-5, 5)), "likelihood": draw(st.floats(-10, 0)),
                "model_rank": j + 1})
    frame = pl.DataFrame(rows)
    bad_row = pl.int_range(pl.len()) == draw(st.integers(0, frame.height - 1))
    if fault == "role":
        frame = frame.with_columns(role=pl.when(bad_row).then(pl.lit("gold"))
                                   .otherwise(pl.col("role")))
    if fault == "dup":
        frame = frame.with_columns(candidate_id=pl.when(bad_row).then(pl.lit("c0"))
                                   .otherwise(pl.col("candidate_id")))
    if fault == "metric":
        frame = frame.with_columns(m=pl.when(bad_row).then(draw(st.sampled_from(
            [math.nan, math.inf, -math.inf, None]))).otherwise(pl.col("m")))
    if fault == "column":
        col = draw(st.sampled_from(["m", "likelihood", "model_rank", "role", "text"]))
        frame = frame.with_columns(draw(st.sampled_from([
            pl.col(col).cast(pl.String), pl.lit(None).alias(col), pl.lit(1).alias(col)])))
    mode = "other" if fault == "mode" else draw(st.sampled_from(["relevance",
                                                                 "faithfulness"]))
    valid = RELEVANCE if mode == "relevance" else FAITHFULNESS
    strategy = draw(st.sampled_from(sorted(set(RELEVANCE + FAITHFULNESS) - set(valid))
                                    + ["nope"]) if fault in ("strategy", "mode")
                    else st.sampled_from(valid))
    k = draw(st.one_of(st.integers(-1, 9), st.sampled_from([10**6, True, 2.0, "4"]))
             if fault == "k" else st.integers(2, 4))
    weight = draw(st.sampled_from([math.nan, math.inf, 0.0, -1.0, True, "1"])
                  if fault == "weight" else st.floats(0.1, 2))
    seed = draw(seeds if fault == "seed" else good_seeds)
    return frame, dict(metrics={"m": weight}, mode=mode, strategy=strategy, k=k, seed=seed)


@BOUNDED
@given(case=calibration_cases())
def test_calibration_gives_valid_sets_or_a_curate_error(case):
    frame, kw = case
    try:
        rows, diag = select_calibration(frame, **kw)
    except CurateError as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc) and "\n" not in str(exc)
        return
    event("selected")
    assert diag.height == frame["instance_id"].n_unique()
    per_set = kw["k"] if kw["mode"] == "relevance" else 4
    for (iid,), part in rows.group_by("instance_id"):
        cands = set(frame.filter(pl.col("instance_id") == iid)["candidate_id"])
        assert set(part["candidate_id"]) <= cands and part.height <= per_set


# -- ingest ----------------------------------------------------------------------------------
NAMES = ["label", "text", "uid", "vec", "split", "row_idx", "sample_id", "ünïcødé",
         "名前", "a b", "Label", "x"]
KINDS = ("int", "float", "str", "bool", "vec", "ragged", "allnull")
DTYPES = {"int": pl.Int64, "float": pl.Float64, "str": pl.String, "bool": pl.Boolean,
          "vec": pl.List(pl.Float64), "ragged": pl.List(pl.Float64), "allnull": pl.String}
any_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                      st.sampled_from(EDGE_FLOATS))


def column_values(kind: str, n: int, dim: int):
    maybe = lambda s: st.one_of(s, st.none()) if kind != "vec" else s  # noqa: E731
    value = {
        "int": st.integers(-(2**63), 2**63 - 1),
        "float": any_float,
        "str": st.text(max_size=6),
        "bool": st.booleans(),
        "vec": st.one_of(st.lists(st.floats(-3, 3), min_size=dim, max_size=dim),
                         st.lists(any_float, min_size=dim, max_size=dim)),
        "ragged": st.one_of(st.none(), st.lists(st.floats(-3, 3), max_size=3)),
        "allnull": st.none(),
    }[kind]
    return st.lists(maybe(value), min_size=n, max_size=n)


@st.composite
def ingest_cases(draw):
    n = draw(st.integers(0, 7))
    names = draw(st.lists(st.one_of(st.sampled_from(NAMES), st.text(min_size=1, max_size=5)),
                          min_size=1, max_size=5, unique=True))
    if "split" in names and len(names) > 1 and draw(st.booleans()):
        names.remove("split")                           # keep one column: names is sampled
    dim = draw(st.integers(0, 3))
    columns, schema, kinds = {}, {}, {}
    for name in names:
        kind = kinds[name] = draw(st.sampled_from(KINDS))
        values = draw(column_values(kind, n, dim))
        if kind in ("int", "str") and n and draw(st.booleans()):
            values[-1] = values[0]                      # a duplicate (id) value
        columns[name], schema[name] = values, DTYPES[kind]
    if "split" in names and draw(st.booleans()):
        columns["split"] = draw(st.lists(st.sampled_from(SPLITS + ("dev",)), min_size=n,
                                         max_size=n))
        schema["split"] = pl.String
    frame = pl.DataFrame(columns, schema=schema)
    fault = draw(faults("seed", "fraction", "column"))

    def col(*fits: str):
        """None, a column of a kind that fits the role, or (a fault) any name at all."""
        fitting = [c for c in names if kinds[c] in fits]
        options = [st.none()] + ([st.sampled_from(fitting)] if fitting else [])
        if fault == "column":
            options += [st.sampled_from(names), st.just("missing"), st.integers(0, 3)]
        return st.one_of(*options)

    spec = IngestSpec(
        text_column=draw(col("str")), label_column=draw(col("str", "int", "bool")),
        id_column=draw(col("str", "int")), vector_column=draw(col("vec", "ragged")),
        split_column=draw(st.one_of(st.just("split"), col("str"))),
        val_fraction=draw(st.floats(0, 0.4)), test_fraction=draw(st.sampled_from([0.0, 0.2])),
        seed=draw(good_seeds))
    if fault == "seed":
        spec = replace(spec, seed=draw(st.sampled_from([-1, 2**63, 2**70, True, 1.0, "0"])))
    if fault == "fraction":
        spec = replace(spec, **{draw(st.sampled_from(["val_fraction", "test_fraction"])):
                                draw(st.sampled_from([0.99, 1.0, -0.1, math.nan, math.inf,
                                                      "0.1", None]))})
    fmt = draw(st.sampled_from(["parquet", "csv", "jsonl"]))
    return frame, spec, fmt


def write(frame: pl.DataFrame, path: Path, fmt: str) -> Path:
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "csv":  # CSV holds no lists: the nested columns stay out of the file
        frame.select([c for c, t in frame.schema.items() if not t.is_nested()]).write_csv(path)
    else:
        frame.write_ndjson(path)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


@BOUNDED
@given(case=ingest_cases())
def test_ingest_gives_a_valid_dataset_or_leaves_the_store_unchanged(workdir, case):
    frame, spec, fmt = case
    if fmt == "csv" and frame.width and all(t.is_nested() for t in frame.schema.values()):
        assume(False)                                   # nothing left to write
    root = Path(tempfile.mkdtemp(dir=workdir))
    store = Store.create(root / "store")
    path = write(frame, root / f"data.{fmt}", fmt)
    before = file_hashes(store.root)
    try:
        info = store.ingest(path, "d", spec)
    except CurateError as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc) and "\n" not in str(exc)
        assert file_hashes(store.root) == before, f"refused ingest changed the store: {exc}"
        return
    event("ingested")
    samples = store.samples("d")
    assert info.n_rows == samples.height >= 1
    assert samples["row_idx"].to_list() == list(range(samples.height))
    assert samples["sample_id"].n_unique() == samples.height
    assert set(samples["split"].unique()) <= set(SPLITS)
    if spec.label_column is not None:
        assert samples[spec.label_column].null_count() == 0
    if spec.vector_column is not None:
        vectors, meta = store.embeddings("d", "ingested")
        assert vectors.shape == (samples.height, meta.dim) and meta.dim >= 1
        assert np.isfinite(np.asarray(vectors)).all()
    # the same name again is refused, and again nothing changes
    before = file_hashes(store.root)
    with pytest.raises(CurateError):
        store.ingest(path, "d", spec)
    assert file_hashes(store.root) == before
