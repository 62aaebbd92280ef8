"""``curate serve --workers N``: uvicorn's multi-process mode over one socket, every process
answering with its own engine; stopping the server stops them all; a process that cannot
load stops the server with one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from curate.cli import main

INDEX = "blobs-workers"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


def _post(port: int, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/fanout",
                                 json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:           # a zombie has exited: state Z
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _serve(root: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """``curate serve --workers 2`` in its own session (so a failed test can kill the whole
    group); stderr to ``log``."""
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "curate.cli", "--store", str(root),
                                 "serve", "--index", INDEX, "--port", str(port), "--workers",
                                 "2", "--max-concurrency", "2", *extra],
                                stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "OMP_NUM_THREADS": "1"},
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_two_workers_serve_and_stop_together(synthetic_store, tmp_path):
    assert main(["--store", str(synthetic_store.root), "index", "build", "--name", INDEX,
                 "--json"]) == 0
    port, log = _free_port(), tmp_path / "serve.log"
    proc = _serve(synthetic_store.root, port, log)
    pids: set[int] = set()
    try:
        give_up = time.monotonic() + 150
        health = None
        # a fresh connection each time: the kernel hands it to whichever process accepts
        while len(pids) < 2 and time.monotonic() < give_up and proc.poll() is None:
            try:
                health = _get(port, "/healthz")
                pids.add(health["pid"])
            except OSError:
                pass
            time.sleep(0.1)
        assert len(pids) == 2, log.read_text()[-2000:]       # two processes answer
        assert proc.pid not in pids
        vec = [0.0] * health["dim"]
        vec[0] = 1.0
        answer = _post(port, {"vector": vec, "k": 5})
        rows = [it["row_idx"] for it in answer["items"]]
        assert len(rows) == 5 == len(set(rows)) and answer["objectives"] is not None
        for _ in range(6):                 # fresh connections, either process: same answer
            again = _post(port, {"vector": vec, "k": 5})
            assert [it["row_idx"] for it in again["items"]] == rows
    finally:
        _stop(proc)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids), "a worker process outlived the server"


def test_a_worker_that_cannot_load_stops_the_server_with_one_line(synthetic_store, tmp_path):
    """The index is fine (checked before the workers start) but the vectors it needs are
    gone: each worker fails while loading, the supervisor stops instead of restarting it,
    and ``curate serve`` exits with the worker's one line — no traceback."""
    assert main(["--store", str(synthetic_store.root), "index", "build", "--name", INDEX,
                 "--json"]) == 0
    (path,) = [r["path"] for r in synthetic_store.catalog.rows("SELECT path FROM embeddings")]
    target = synthetic_store.abspath(path)
    for f in (target.parent.glob("*.npy") if target.suffix == ".npy" else target.glob("*")):
        f.unlink()
    port, log = _free_port(), tmp_path / "serve.log"
    proc = _serve(synthetic_store.root, port, log)
    try:
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    assert code != 0 and "Traceback" not in log.read_text(), log.read_text()[-2000:]
    assert lines[-1].startswith("error: a server process failed to start"), lines
