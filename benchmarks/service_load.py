"""Load test of the fan-out service on loopback: concurrent clients for a fixed time.

Starts ``curate serve`` (uvicorn, one process) on 127.0.0.1 over the full-WordNet HNSW32 index
(built by benchmarks/fanout.py), then runs ``--clients`` threads, each sending POST /v1/fanout
with a WordNet gloss vector (k = 10) back to back for ``--seconds``, per method: topk, mmr, and
the open-regime teacher and diffusion models that benchmarks/fanout.py trained (ids read from
results/fanout.json).
Reports throughput, latency p50/p99 and the error count. Bounded: fixed duration, loopback
only, the server is terminated at the end. Writes results/service_load.json and .md.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, full_store, machine, write_json, write_markdown  # noqa: E402

STORE = Path(__file__).parent / ".cache" / "wordnet-full"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(method: str, clients: int, seconds: float, port: int, vectors: np.ndarray,
        model: str | None = None) -> dict:
    url = f"http://127.0.0.1:{port}/v1/fanout"
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while time.perf_counter() < stop:
            body = json.dumps({"vector": vectors[rng.integers(len(vectors))].tolist(),
                               "k": 10, "method": method, "model": model}).encode()
            req = urllib.request.Request(url, data=body, method="POST",
                                         headers={"content-type": "application/json"})
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
                    ok = r.status == 200
            except OSError:
                ok = False
            with lock:
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    arr = np.asarray(lat) * 1e3
    return {"method": method, "clients": clients, "seconds": wall, "requests": len(lat),
            "errors": errors[0], "throughput_rps": len(lat) / wall,
            "p50_ms": float(np.percentile(arr, 50)) if len(arr) else None,
            "p99_ms": float(np.percentile(arr, 99)) if len(arr) else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--index", default="wordnet-hnsw32")
    args = ap.parse_args()
    pipeline = json.loads((RESULTS / "fanout.json").read_text())["pipeline"]["open"]
    methods = [("topk", None), ("mmr", None), ("teacher", pipeline["teacher"]["model_id"]),
               ("diffusion", pipeline["diffusion"]["model_id"])]
    vectors = np.asarray(full_store(STORE).embeddings("wordnet")[0][:5000])
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "--store", str(STORE), "serve",
                             "--index", args.index, "--port", str(port),
                             "--max-concurrency", "16"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        results = [run(m, args.clients, args.seconds, port, vectors, model)
                   for m, model in methods]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    write_json(RESULTS / "service_load.json", {"machine": machine(), "results": results})
    lines = ["# Service load test", "",
             f"{args.clients} concurrent clients on loopback for {args.seconds:.0f} s per "
             "method, one uvicorn process (max 16 requests in flight; teacher and diffusion "
             f"micro-batched), index {args.index} over all 117,659 WordNet glosses, "
             f"k = 10, vector queries. {machine()}. Produced by `benchmarks/service_load.py`.",
             "", "| method | requests | throughput (req/s) | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['method']} | {r['requests']} | {r['throughput_rps']:.1f} | "
                     f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |")
    write_markdown(RESULTS / "service_load.md", lines)


if __name__ == "__main__":
    main()
