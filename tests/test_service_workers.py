"""``curate serve --workers N``: uvicorn's multi-process mode over one socket, every process
answering with its own engine; stopping the server stops them all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

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


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                                   # a zombie has exited: its stat says Z
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_two_workers_serve_and_stop_together(synthetic_store):
    assert main(["--store", str(synthetic_store.root), "index", "build", "--name", INDEX,
                 "--json"]) == 0
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "--store",
                             str(synthetic_store.root), "serve", "--index", INDEX, "--port",
                             str(port), "--workers", "2", "--max-concurrency", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    workers: set[int] = set()
    try:
        give_up = time.monotonic() + 150
        health = None
        while time.monotonic() < give_up and proc.poll() is None:
            try:
                health = _get(port, "/healthz")
                break
            except OSError:
                time.sleep(0.3)
        assert health is not None, proc.stderr.read().decode() if proc.poll() else "no answer"
        time.sleep(1.0)                    # the second process may still be loading
        deadline = time.monotonic() + 60
        while len(workers := _children(proc.pid) - {proc.pid}) < 2 \
                and time.monotonic() < deadline:
            time.sleep(0.3)
        # the supervisor's children: the two servers (a resource tracker may join them)
        assert len(workers) >= 2
        assert health["pid"] in workers and health["pid"] != proc.pid
        dim = health["dim"]
        vec = [0.0] * dim
        vec[0] = 1.0
        answer = _post(port, {"vector": vec, "k": 5})
        rows = [it["row_idx"] for it in answer["items"]]
        assert len(rows) == 5 == len(set(rows)) and answer["objectives"] is not None
        # every process answers the same query alike (each loaded the same index)
        for _ in range(6):
            again = _post(port, {"vector": vec, "k": 5})
            assert [it["row_idx"] for it in again["items"]] == rows
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), "a worker process outlived the server"
