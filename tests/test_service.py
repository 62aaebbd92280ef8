"""The fan-out service: in-process client for behaviour and bad input, one real uvicorn
process on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from fastapi.testclient import TestClient

from curate.cli import main


@pytest.fixture(scope="module")
def served(wordnet_home):
    assert main(["--store", str(wordnet_home), "index", "build", "--name", "svc-flat",
                 "--json"]) == 0
    from retrieval.service import create_app

    return wordnet_home, TestClient(create_app(wordnet_home, "svc-flat", max_k=50))


def test_healthz_and_openapi(served):
    _, client = served
    assert client.get("/healthz").json()["status"] == "ok"
    assert "/v1/fanout" in client.get("/openapi.json").json()["paths"]


def test_fanout_text_and_vector_and_batch(served):
    _, client = served
    r = client.post("/v1/fanout", json={"query": "a building where people live", "k": 5,
                                        "method": "mmr"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 5 and body["index"] == "svc-flat"
    assert {"row_idx", "sample_id", "text", "score", "sub_query"} <= set(body["items"][0])
    assert "composite" in body["objectives"] and "retrieve_s" in body["timings"]
    vec = [0.0] * 384
    vec[0] = 1.0
    batch = client.post("/v1/fanout/batch", json={"requests": [
        {"vector": vec, "k": 3}, {"query": "music", "k": 2}]})
    assert batch.status_code == 200
    assert [len(x["items"]) for x in batch.json()["results"]] == [3, 2]


@pytest.mark.parametrize("payload,fragment", [
    ({"query": "  ", "k": 3}, "empty"),
    ({"query": "x", "k": 0}, "k must be"),
    ({"query": "x", "k": 51}, "k must be"),
    ({"vector": [0.1, 0.2], "k": 3}, "dimension"),
    ({"query": "x", "method": "rerank"}, "method must be one of"),
    ({"query": "x", "method": "diffusion"}, "needs a model id"),
    ({"query": "x", "method": "diffusion", "model": "nope"}, "not found"),
    ({"k": 3}, "exactly one"),
])
def test_bad_input_is_a_clear_400(served, payload, fragment):
    _, client = served
    r = client.post("/v1/fanout", json=payload)
    assert r.status_code == 400 and fragment in r.json()["detail"]
    assert client.get("/healthz").status_code == 200       # the server is still up


def test_malformed_json_and_nan_vector(served):
    _, client = served
    r = client.post("/v1/fanout", content=b"{not json", headers={"content-type":
                                                                 "application/json"})
    assert r.status_code == 422
    r = client.post("/v1/fanout", content=json.dumps({"vector": [float("nan")] * 384})
                    .encode(), headers={"content-type": "application/json"})
    assert r.status_code in (400, 422)
    r = client.post("/v1/fanout", json={"query": "x", "k": "ten"})
    assert r.status_code == 422


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_uvicorn_process_on_loopback(served):
    home, _ = served
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "--store", str(home), "serve",
                             "--index", "svc-flat", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        # the server binds once the index, the text encoder and the models are loaded
        # (seconds on an idle machine, more on a busy one)
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        vec = [0.0] * 384
        vec[1] = 1.0
        req = urllib.request.Request(f"{url}/v1/fanout", method="POST",
                                     data=json.dumps({"vector": vec, "k": 4}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert len(json.loads(r.read())["items"]) == 4
        # a body over the 4 MiB default is a 413, which a client that sends its whole body
        # before reading (urllib) still gets: the server drains the body first
        big = urllib.request.Request(f"{url}/v1/fanout", method="POST",
                                     data=json.dumps({"query": "x" * 5_000_000}).encode(),
                                     headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(big, timeout=30)
        assert err.value.code == 413 and "larger than" in json.loads(err.value.read())["detail"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_micro_batcher_answers_each_caller_its_own_row():
    import threading

    from retrieval.batching import MicroBatcher

    sizes = []

    def fn(Q):
        sizes.append(len(Q))
        if (Q < 0).any():
            raise ValueError("negative")
        return Q * 10

    mb = MicroBatcher(fn, max_batch=8, max_wait_s=0.05)
    out = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, mb.submit(
        np.full(3, float(i))))) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(out[i], np.full(3, 10.0 * i)) for i in range(12))
    assert max(sizes) > 1 and max(sizes) <= 8              # callers really shared batches
    with pytest.raises(ValueError, match="negative"):
        mb.submit(np.full(3, -1.0))
    assert np.array_equal(mb.submit(np.ones(3)), np.full(3, 10.0))   # still serving
    stats = mb.stats()
    assert (stats["calls"], stats["items"]) == (len(sizes), sum(sizes)) == (len(sizes), 14)
    assert stats["busy_s"] >= 0
