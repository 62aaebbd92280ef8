"""Bad input: one readable line, a non-zero exit, and the store's files unchanged."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from curate.cli import main
from tests.conftest import blobs, tree_hash


def run_cli(capsys, store, *args):
    code = main(["--store", str(store.root), *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line_error(code, err, expected_code, *fragments):
    assert code == expected_code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for frag in fragments:
        assert frag in lines[0], lines[0]


@pytest.mark.parametrize("budget,fragment", [
    ("0", "got 0"), ("1.5", "got 1.5"), ("-3", "got -3"), ("abc", "'abc'"),
    ("100000", "got 100000"), ("nan", "got nan")])
def test_bad_budgets(capsys, synthetic_store, budget, fragment):
    before = tree_hash(synthetic_store.root)
    code, _, err = run_cli(capsys, synthetic_store, "select", "--method", "random",
                           "--budget", budget)
    assert_one_line_error(code, err, 2, "budget must be", fragment)
    assert tree_hash(synthetic_store.root) == before


def test_unknown_method_suggests_closest(capsys, synthetic_store):
    before = tree_hash(synthetic_store.root)
    code, _, err = run_cli(capsys, synthetic_store, "select", "--method", "cdl", "--budget", "0.1")
    assert_one_line_error(code, err, 2, "unknown method 'cdl'", "did you mean 'cld'")
    assert tree_hash(synthetic_store.root) == before


def test_unknown_dataset(capsys, synthetic_store):
    before = tree_hash(synthetic_store.root)
    code, _, err = run_cli(capsys, synthetic_store, "select", "nope", "--method", "random",
                           "--budget", "0.1")
    assert_one_line_error(code, err, 2, "dataset 'nope' not found")
    assert tree_hash(synthetic_store.root) == before


def test_unknown_param(capsys, synthetic_store):
    code, _, err = run_cli(capsys, synthetic_store, "select", "--method", "cld", "--budget",
                           "0.1", "--param", "topk=3")
    assert_one_line_error(code, err, 2, "cld has no parameter 'topk'")
    code, _, err = run_cli(capsys, synthetic_store, "select", "--method", "cld", "--budget",
                           "0.1", "--param", "noequals")
    assert_one_line_error(code, err, 2, "key=value")


def _ingest(capsys, store, path, *extra):
    return run_cli(capsys, store, "ingest", str(path), "--name", "new", *extra)


def test_ingest_missing_label_column(capsys, synthetic_store, tmp_path):
    path = tmp_path / "d.parquet"
    blobs(20).write_parquet(path)
    before = tree_hash(synthetic_store.root)
    code, _, err = _ingest(capsys, synthetic_store, path, "--label-column", "category")
    assert_one_line_error(code, err, 2, "label column 'category' not found", "columns are")
    assert tree_hash(synthetic_store.root) == before


def test_ingest_duplicate_ids(capsys, synthetic_store, tmp_path):
    path = tmp_path / "d.csv"
    blobs(20).drop("vec").with_columns(uid=pl.lit("same")).write_csv(path)
    before = tree_hash(synthetic_store.root)
    code, _, err = _ingest(capsys, synthetic_store, path, "--id-column", "uid")
    assert_one_line_error(code, err, 2, "duplicated id", "'same'")
    assert tree_hash(synthetic_store.root) == before


@pytest.mark.parametrize("content,suffix,fragment", [
    (b"", ".jsonl", "the file is empty"), (b"", ".parquet", "the file is empty"),
    (b"uid,text,label\n", ".csv", "no rows"),
    (b"PAR1 this is not really parquet", ".parquet", "cannot read"),
    (b"a,b\n1,2\n", ".xlsx", "unknown format")])
def test_ingest_empty_or_corrupt(capsys, synthetic_store, tmp_path, content, suffix, fragment):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    before = tree_hash(synthetic_store.root)
    code, _, err = _ingest(capsys, synthetic_store, path, "--label-column", "label")
    assert_one_line_error(code, err, 2, fragment)
    assert tree_hash(synthetic_store.root) == before


def test_ingest_nan_vectors(capsys, synthetic_store, tmp_path):
    frame = blobs(20)
    vec = frame["vec"].to_list()
    vec[5][0] = float("nan")
    frame.with_columns(vec=pl.Series(vec)).write_parquet(tmp_path / "v.parquet")
    before = tree_hash(synthetic_store.root)
    code, _, err = _ingest(capsys, synthetic_store, tmp_path / "v.parquet",
                           "--vector-column", "vec")
    assert_one_line_error(code, err, 2, "NaN", "first at row 5")
    assert tree_hash(synthetic_store.root) == before


def test_cld_with_fewer_than_three_checkpoints(capsys, synthetic_store):
    code, _, err = run_cli(capsys, synthetic_store, "signals", "train", "--epochs", "2",
                           "--name", "short", "--json")
    assert code == 0, err
    before = tree_hash(synthetic_store.root)
    code, _, err = run_cli(capsys, synthetic_store, "select", "--method", "cld", "--budget",
                           "0.1", "--signal", "short")
    assert_one_line_error(code, err, 2, "at least 3 checkpoints", "have 2")
    assert tree_hash(synthetic_store.root) == before


def test_missing_signals_says_what_to_run(capsys, tmp_path):
    from stores import IngestSpec, Store

    st = Store.create(tmp_path / "s")
    blobs(30).write_parquet(tmp_path / "d.parquet")
    st.ingest(tmp_path / "d.parquet", "d", IngestSpec(label_column="label", vector_column="vec"))
    code, _, err = run_cli(capsys, st, "select", "d", "--method", "cld", "--budget", "0.5")
    assert_one_line_error(code, err, 2, "cld needs signals: run `curate signals train d`")


def test_no_store(capsys, tmp_path):
    code = main(["--store", str(tmp_path / "none"), "list"])
    err = capsys.readouterr().err
    assert_one_line_error(code, err, 2, "no Curate store", "curate init")
    assert not (tmp_path / "none").exists()


def test_usage_error_is_one_line(capsys, synthetic_store):
    code, _, err = run_cli(capsys, synthetic_store, "select", "--method", "cld")
    assert_one_line_error(code, err, 2, "--budget")


def test_signals_ingest_bad_npz(capsys, synthetic_store, tmp_path):
    np.savez(tmp_path / "s.npz", train_rows=np.arange(3))
    before = tree_hash(synthetic_store.root)
    code, _, err = run_cli(capsys, synthetic_store, "signals", "ingest", str(tmp_path / "s.npz"))
    assert_one_line_error(code, err, 2, "lacks array(s)", "train_losses")
    assert tree_hash(synthetic_store.root) == before


def test_console_script_debug_shows_traceback(synthetic_store):
    base = [sys.executable, "-m", "curate.cli", "--store", str(synthetic_store.root), "select",
            "--method", "cdl", "--budget", "0.1"]
    plain = subprocess.run(base, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run(base + ["--debug"], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.parametrize("ms,fragment", [("0", "got 0.0"), ("5000", "got 5000.0")])
def test_serve_switch_interval_bounds_are_the_librarys(capsys, synthetic_store, ms, fragment):
    """``--switch-interval-ms`` outside ``retrieval.service.SWITCH_INTERVAL_BOUNDS_S`` (the
    library's one source of the bounds, shown in ms) is one line before anything loads."""
    from retrieval.service import SWITCH_INTERVAL_BOUNDS_S

    low, high = (f"{1e3 * b:g}" for b in SWITCH_INTERVAL_BOUNDS_S)
    code, _, err = run_cli(capsys, synthetic_store, "serve", "--index", "none",
                           "--switch-interval-ms", ms)
    assert_one_line_error(code, err, 2, "--switch-interval-ms must be in", f"[{low}, {high}]",
                          fragment)


@pytest.mark.parametrize("flag,expected_ms", [([], None), (["--switch-interval-ms", "0.5"], 0.5)])
def test_serve_passes_the_switch_interval(capsys, synthetic_store, monkeypatch, flag,
                                          expected_ms):
    """``curate serve`` hands ``create_app`` the library's ``SWITCH_INTERVAL_S`` when the flag
    is unset, and the flag's value (ms → s) when set; then runs uvicorn on the app."""
    import uvicorn

    import retrieval.service as service

    seen = {}
    monkeypatch.setattr(service, "check_serve", lambda *a, **kw: synthetic_store)
    monkeypatch.setattr(service, "create_app",
                        lambda *a, **kw: seen.update(kw) or "app")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app))
    code, _, err = run_cli(capsys, synthetic_store, "serve", "--index", "none", *flag)
    assert code == 0, err
    want = service.SWITCH_INTERVAL_S if expected_ms is None else expected_ms / 1e3
    assert seen["switch_interval_s"] == pytest.approx(want) and seen["app"] == "app"


@pytest.mark.parametrize("args,fragments", [
    (["--index", "nope"], ("index 'nope' not found",)),
    (["--index", "nope", "--workers", "0"], ("workers must be an integer in [1, 64]",
                                             "got 0")),
    (["--index", "nope", "--workers", "2"], ("index 'nope' not found",)),
    (["--index", "nope", "--workers", "2", "--max-concurrency", "0"],
     ("max_concurrency must be an integer ≥ 1", "got 0")),
    (["--index", "nope", "--timeout-s", "0"], ("timeout_s must be",)),
])
def test_serve_checks_before_anything_loads(capsys, synthetic_store, monkeypatch, args,
                                            fragments):
    """A bad worker count or an unknown index is one line, before uvicorn starts (with
    several workers: before any process is forked)."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("uvicorn started"))
    code, _, err = run_cli(capsys, synthetic_store, "serve", *args)
    assert_one_line_error(code, err, 2, *fragments)


def test_serve_with_workers_hands_each_process_its_arguments(capsys, synthetic_store,
                                                             monkeypatch):
    """``--workers 2``: uvicorn gets the factory's import string (its multi-process mode
    needs one) and the worker count; the factory rebuilds ``create_app``'s arguments from the
    environment, as each worker process does; ``serve`` puts the environment back after."""
    import json
    import os

    import uvicorn

    import retrieval.service as service

    monkeypatch.setenv(service.SERVE_CONFIG_ENV, "before")   # restored by serve, then undone
    monkeypatch.setattr(service, "check_serve", lambda *a, **kw: synthetic_store)
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(
        app=app, env=os.environ[service.SERVE_CONFIG_ENV], **kw))
    code, out, err = run_cli(capsys, synthetic_store, "serve", "--index", "blobs-flat",
                             "--workers", "2", "--kernel-threads", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["workers"] == 2
    assert seen["app"] == "retrieval.service:app_from_env" and seen["factory"] is True
    assert seen["workers"] == 2
    assert os.environ[service.SERVE_CONFIG_ENV] == "before"
    made, parents = {}, []
    monkeypatch.setenv(service.SERVE_CONFIG_ENV, seen["env"])
    monkeypatch.setattr(service, "exit_with_parent", parents.append)
    monkeypatch.setattr(service, "create_app", lambda *a, **kw: made.update(kw) or "app")
    assert service.app_from_env() == "app"
    assert parents == [os.getpid()]                 # the supervisor: here, this process
    assert made["store_root"] == str(synthetic_store.root)
    assert made["index_name"] == "blobs-flat" and made["kernel_threads"] == 1
    assert made["switch_interval_s"] == pytest.approx(service.SWITCH_INTERVAL_S)
    assert "error_file" not in made and "parent_pid" not in made


def test_a_worker_that_fails_to_load_stops_the_server_with_one_line(capsys, synthetic_store,
                                                                    monkeypatch):
    """``app_from_env`` writes a loading failure for ``serve`` and exits with uvicorn's
    start-up-failure status (which stops the supervisor instead of restarting the worker);
    ``serve`` raises it as one line with the worker's exit code."""
    import os

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    import retrieval.service as service
    from curate.errors import NotFoundError

    def fail(*_, **__):
        raise NotFoundError("dataset 'blobs' has no embeddings: run `curate embed blobs`")

    monkeypatch.setattr(service, "check_serve", lambda *a, **kw: synthetic_store)
    monkeypatch.setattr(service, "exit_with_parent", lambda pid: True)
    monkeypatch.setattr(service, "create_app", fail)

    def one_worker(app, **kw):                      # what each worker process does
        with pytest.raises(SystemExit) as stop:
            service.app_from_env()
        assert stop.value.code == STARTUP_FAILURE

    monkeypatch.setattr(uvicorn, "run", one_worker)
    monkeypatch.delenv(service.SERVE_CONFIG_ENV, raising=False)
    code, _, err = run_cli(capsys, synthetic_store, "serve", "--index", "blobs-flat",
                           "--workers", "2")
    assert_one_line_error(code, err, 2, "a server process failed to start",
                          "has no embeddings")
    assert service.SERVE_CONFIG_ENV not in os.environ
