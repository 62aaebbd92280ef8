"""Load test of the fan-out service on loopback: concurrent clients for a fixed time.

Starts ``curate serve`` (uvicorn, one process) on 127.0.0.1 over the full-WordNet HNSW32 index
(built here, as benchmarks/fanout.py does, when missing), then for each client count of
``--clients`` (default 16), each query kind (``vector``: a WordNet gloss vector;
``text``: a WordNet "lemmas: gloss" text the server embeds) and each method (topk, mmr, dpp,
ascent, and the open-regime teacher and diffusion models that benchmarks/fanout.py trained — ids
read from results/fanout.json; when this store lacks them, the latest ones trained on the
index) and with the objectives on and off (``--objectives``), runs that many threads sending
POST /v1/fanout (k = 10) back to back for ``--seconds``, each over its own keep-alive
connection with its request bodies encoded before the clock starts; then batch rows
(``--batch`` vector queries per POST /v1/fanout/batch call).
``--workers N``: serve with N processes (``curate serve --workers``). ``--compare-threads``:
instead, probe rows against servers with ``--kernel-threads 0`` and ``1``
(results/service_threads.json and .md); ``--compare-workers``: against servers with
``--workers 1`` and ``2`` (results/service_workers.json and .md).
Reports throughput, latency p50/p99, the error count, the 1-minute load average beside
every figure (other jobs on the machine slow the server), the cores the server's processes
and the load generator kept busy, and per row the calls concurrent
queries shared (/healthz ``batching``: the mean batch and the share of time each ran). Writes
results/service_load.json and .md (``--methods`` a subset: service_load-<methods>.*;
``--workers N`` > 1: …-workers<N>.*; ``--runs N`` > 1: the rows N times against one
server, …-runs<N>.*, a run column);
``--render`` redraws that .md from its stored JSON (the run's host, settings and rows).

``--soak``: instead, ``--soak-clients`` threads send a mix for ``--soak-seconds`` (default
600): every method, text and vector queries, seeded and default sampler settings, small
batches and a share of bad requests (which must get a 4xx). The server's resident memory
(VmRSS) is sampled every ``--sample-s``; start/end/max are taken after ``--warmup-s``.
Writes results/service_soak.json and .md. Bounded: fixed duration, loopback only, the server
is terminated at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    RESULTS,
    full_store,
    latest_fanout_models,
    machine,
    write_json,
    write_markdown,
)

STORE = Path(__file__).parent / ".cache" / "wordnet-full"
INDEX = "wordnet-hnsw32"
ALL_METHODS = "topk,mmr,dpp,ascent,teacher,diffusion"     # every registered retriever


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its children that are
    still running (``curate serve --workers N``: the supervisor and its N servers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def children(pid: int) -> list[int]:
    """The pids of process ``pid``'s children (from /proc/<pid>/task/*/children)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def connections_per_process(port: int) -> list[int] | None:
    """How many established connections to ``port`` each server process holds, most first
    (from ``ss``; None where it is missing). With several processes on one listening socket
    the kernel hands each new connection to whichever process accepts it first, so 16
    keep-alive clients may split 8/8 or 11/5 — the busier process sets the p99."""
    import re
    import shutil

    if shutil.which("ss") is None:
        return None
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=False).stdout
    counts = Counter(re.findall(r"pid=(\d+),", out))
    return sorted(counts.values(), reverse=True)


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` (VmRSS), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Connection:
    """One client's keep-alive HTTP/1.1 connection to the server (as a real client's pool
    holds one); ``post`` returns the HTTP status (0: no answer). A request is sent again
    only when a connection that already answered was found closed before any reply (the
    server may close an idle kept-alive socket); a timeout, a cut-off reply or any other
    failure is a 0, never retried, so it is counted as an error."""

    STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

    def __init__(self, port: int, timeout: float = 30):
        self.port, self.timeout, self.conn, self.used = port, timeout, None, False

    def post(self, path: str, body: bytes) -> int:
        for _ in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
                self.used = False
            try:
                self.conn.request("POST", path, body, {"content-type": "application/json"})
                r = self.conn.getresponse()
                r.read()
                self.used = True
                return r.status
            except self.STALE:
                stale = self.used
                self.close()
                if not stale:
                    return 0
            except (OSError, http.client.HTTPException):
                self.close()
                return 0
        return 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def shared_calls(port: int) -> dict[str, dict]:
    """/healthz's ``batching``: each shared call's counters (calls, items, busy_s)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
        return {c["call"]: c for c in json.loads(r.read())["batching"]}


def batching_during(before: dict, after: dict, wall: float) -> dict[str, dict]:
    """Per shared call that ran between two ``shared_calls`` readings: its calls, the mean
    batch (queries per call) and the share of the row's wall time it was busy."""
    out = {}
    for call, a in after.items():
        b = before.get(call, {"calls": 0, "items": 0, "busy_s": 0.0})
        calls = a["calls"] - b["calls"]
        if calls:
            out[call] = {"calls": calls, "mean_batch": (a["items"] - b["items"]) / calls,
                         "busy_share": (a["busy_s"] - b["busy_s"]) / wall}
    return out


def query(kind: str, rng, vectors: np.ndarray, texts: list[str]) -> dict:
    """One request's query part: a random gloss vector or text."""
    i = int(rng.integers(len(texts)))
    return {"vector": vectors[i].tolist()} if kind == "vector" else {"query": texts[i]}


def run(method: str, kind: str, clients: int, seconds: float, port: int,
        vectors: np.ndarray, texts: list[str], model: str | None = None,
        objectives: bool = True, batch: int = 1, server_pid: int | None = None,
        batching: bool = True) -> dict:
    """``clients`` threads sending requests back to back for ``seconds``; with ``batch`` > 1
    each request is a POST /v1/fanout/batch of that many queries (latency per call,
    throughput in queries/s). With ``server_pid``, also the cores the server's processes and
    this load generator kept busy on average (CPU seconds / wall seconds). ``batching``:
    read the shared calls' counters from /healthz (False for several server processes: each
    answers with its own, so two readings may come from different processes)."""
    path = "/v1/fanout" + ("/batch" if batch > 1 else "")
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def bodies(seed: int, n: int = 64) -> list[bytes]:
        """A client's request bodies, encoded before the clock starts (the load generator
        shares the server's cores; its JSON encoding is not the server's cost)."""
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            one = [{**query(kind, rng, vectors, texts), "k": 10, "method": method,
                    "objectives": objectives, **({"model": model} if model else {})}
                   for _ in range(batch)]
            out.append(json.dumps({"requests": one} if batch > 1 else one[0]).encode())
        return out

    encoded = [bodies(i) for i in range(clients)]
    calls0 = shared_calls(port) if batching else {}
    load0 = load_avg()
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        conn, mine = Connection(port), encoded[i]
        j = 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            ok = conn.post(path, mine[j % len(mine)]) == 200
            j += 1
            with lock:
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors[0] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    cpu0 = (cpu_s(server_pid), time.process_time()) if server_pid else None
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(min(1.0, seconds / 2))              # every client has connected by now
    split = connections_per_process(port)
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = ({"server_cores": (cpu_s(server_pid) - cpu0[0]) / wall,
            "client_cores": (time.process_time() - cpu0[1]) / wall} if cpu0 else {})
    shared = batching_during(calls0, shared_calls(port), wall) if batching else {}
    arr = np.asarray(lat) * 1e3
    return {"method": method, "query": kind, "clients": clients, "seconds": wall,
            "shared_calls": shared,
            "objectives": objectives, "batch": batch,
            "requests": len(lat), "errors": errors[0], "throughput_rps": len(lat) / wall,
            "queries_per_s": len(lat) * batch / wall,
            "p50_ms": float(np.percentile(arr, 50)) if len(arr) else None,
            "p99_ms": float(np.percentile(arr, 99)) if len(arr) else None,
            "load_avg_start": load0, "load_avg_end": load_avg(), **cpu,
            "connections_per_process": split}


BAD = [{"k": 0}, {"k": "5"}, {"vector": []}, {"method": "rerank"},
       {"weights": {"diversity": -1}}, {"weights": {"beauty": 1}}, {"mmr_lambda": 2}]


def soak(args, port: int, pid: int, vectors: np.ndarray, texts: list[str],
         models: dict[str, str]) -> dict:
    """Mixed requests for ``args.soak_seconds``; the server's RSS every ``args.sample_s``."""
    statuses: Counter = Counter()
    bad_answered: Counter = Counter()
    lock = threading.Lock()
    stop = time.perf_counter() + args.soak_seconds
    methods = ["topk", "mmr", "teacher", "diffusion"]

    def request(rng) -> tuple[str, dict, bool]:
        r = rng.random()
        method = methods[int(rng.integers(4))]
        one = {**query("text" if rng.random() < 0.5 else "vector", rng, vectors, texts),
               "k": 10, "method": method, **({"model": models[method]}
                                               if method in models else {})}
        if method in models and rng.random() < 0.2:      # a seeded, unbatched call
            one["seed"] = int(rng.integers(1000))
        if r < 0.05:
            return "/v1/fanout", {**one, **BAD[int(rng.integers(len(BAD)))]}, True
        if r < 0.10:
            return "/v1/fanout/batch", {"requests": [one] * 4}, False
        return "/v1/fanout", one, False

    def client(seed: int) -> None:
        rng, conn = np.random.default_rng(1000 + seed), Connection(port)
        while time.perf_counter() < stop:
            path, body, bad = request(rng)
            status = conn.post(path, json.dumps(body).encode())
            with lock:
                (bad_answered if bad else statuses)[status] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.soak_clients)]
    t0 = time.perf_counter()
    samples = [{"t_s": 0.0, "rss_mb": round(rss_mb(pid), 1), "load_avg": load_avg()}]
    for t in threads:
        t.start()
    while (left := stop - time.perf_counter()) > 0:
        time.sleep(min(args.sample_s, left))
        samples.append({"t_s": round(time.perf_counter() - t0, 1),
                        "rss_mb": round(rss_mb(pid), 1), "load_avg": load_avg()})
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = [s for s in samples if s["t_s"] >= args.warmup_s] or samples[-1:]
    ok = statuses[200]
    minutes = max((after[-1]["t_s"] - after[0]["t_s"]) / 60, 1e-9)
    return {"clients": args.soak_clients, "seconds": wall, "warmup_s": args.warmup_s,
            "requests": sum(statuses.values()) + sum(bad_answered.values()),
            "ok": ok, "throughput_rps": (sum(statuses.values())
                                         + sum(bad_answered.values())) / wall,
            "errors": sum(n for s, n in statuses.items() if s != 200),
            "statuses": {str(s): n for s, n in sorted(statuses.items())},
            "bad_requests": {str(s): n for s, n in sorted(bad_answered.items())},
            "bad_requests_not_4xx": sum(n for s, n in bad_answered.items()
                                        if not 400 <= s < 500),
            "rss_start_mb": after[0]["rss_mb"], "rss_end_mb": after[-1]["rss_mb"],
            "rss_max_mb": max(s["rss_mb"] for s in after),
            "rss_growth_mb_per_min": (after[-1]["rss_mb"] - after[0]["rss_mb"]) / minutes,
            "samples": samples}


def open_models(store) -> dict[str, str]:
    """The open-regime teacher and diffusion model ids of results/fanout.json; when this
    store lacks them, the latest open-regime teacher and diffusion trained on the index (a
    diffusion model's regime is its teacher's; before 2026-12-07's second session this took
    the latest of any regime); without those it stops and asks for benchmarks/fanout.py."""
    pipeline = json.loads((RESULTS / "fanout.json").read_text())["pipeline"]["open"]
    wanted = {"teacher": pipeline["teacher"]["model_id"],
              "diffusion": pipeline["diffusion"]["model_id"]}
    have = set(store.models()["id"].to_list())
    if all(i in have for i in wanted.values()):
        return wanted
    latest = latest_fanout_models(store, INDEX, "open")
    if set(latest) == set(wanted):
        return latest
    raise SystemExit("no open-regime teacher and diffusion model on index "
                     f"{INDEX!r}: run `python benchmarks/fanout.py` first")


@contextlib.contextmanager
def serving(kernel_threads: int, workers: int = 1):
    """``curate serve`` over the benchmark index on a free loopback port, ready (models
    loaded; every worker process answering) on entry, terminated on exit; yields (port,
    process, seconds it took to be ready)."""
    port = free_port()
    t0 = time.perf_counter()
    proc = start_server(STORE, port, kernel_threads, workers)
    try:
        yield port, proc, time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def start_server(store: Path, port: int, kernel_threads: int = 1,
                 workers: int = 1) -> subprocess.Popen:
    """``curate serve`` on loopback; returns once /healthz answers 200 (models loaded) from
    ``workers`` distinct processes (each answers from its own pid)."""
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "--store", str(store), "serve",
                             "--index", INDEX, "--port", str(port), "--max-concurrency", "16",
                             "--kernel-threads", str(kernel_threads), "--workers",
                             str(workers)],
                            stderr=subprocess.DEVNULL)
    give_up = time.monotonic() + 300
    seen: set[int] = set()
    while time.monotonic() < give_up and proc.poll() is None:
        try:       # a fresh connection each time: the kernel hands it to any process
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    seen.add(json.loads(r.read())["pid"])
                    if len(seen) >= workers:
                        return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not become ready")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="16", help="client counts, comma-separated")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--objectives", default="on,off",
                    help="with and/or without the objectives (the 500-neighbour pool)")
    ap.add_argument("--batch", type=int, default=16,
                    help="queries per /v1/fanout/batch call for the batch rows (0: none)")
    ap.add_argument("--queries", default="vector,text", help="query kinds, comma-separated")
    ap.add_argument("--methods", default=ALL_METHODS,
                    help="methods, comma-separated (a subset writes results/"
                         "service_load-<methods>.json/.md, leaving the full table)")
    ap.add_argument("--kernel-threads", type=int, default=1,
                    help="the server's threads per numeric kernel (curate serve's default: 1)")
    ap.add_argument("--compare-threads", action="store_true",
                    help="instead: probe rows against a server with the libraries' default "
                         "kernel threads and one with 1, alternated, --repeats times")
    ap.add_argument("--workers", type=int, default=1,
                    help="the server's processes (curate serve --workers; default 1)")
    ap.add_argument("--compare-workers", action="store_true",
                    help="instead: probe rows against a server with --workers 1 and one with "
                         "2, alternated, --repeats times (results/service_workers.*)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1,
                    help="run the load table's rows this many times against one server "
                         "(the .md gets a run column; p99 varies run to run)")
    ap.add_argument("--soak", action="store_true", help="a soak run instead (RSS over time)")
    ap.add_argument("--soak-seconds", type=float, default=600)
    ap.add_argument("--soak-clients", type=int, default=8)
    ap.add_argument("--sample-s", type=float, default=10)
    ap.add_argument("--warmup-s", type=float, default=30)
    ap.add_argument("--render", action="store_true",
                    help="redraw the load table's .md (of --methods) from its stored JSON; "
                         "run nothing")
    args = ap.parse_args()
    if args.runs < 1:
        raise SystemExit(f"--runs must be ≥ 1; got {args.runs}")
    if args.render:
        stem = load_stem(args.methods, args.workers, args.runs)
        stored = json.loads((RESULTS / f"{stem}.json").read_text())
        args.seconds = stored["results"][0]["seconds"]          # the run's, not the flags'
        args.batch = max((r["batch"] for r in stored["results"] if r["batch"] > 1), default=0)
        write_load(stored["results"], stored["models"], stored["server_start_s"], args,
                   stored=stored)
        return
    from retrieval import build_index

    st = full_store(STORE)
    if INDEX not in st.indices():
        build_index(st, "wordnet", factory="HNSW32", name=INDEX)
    models = open_models(st)
    methods = [(m, models.get(m)) for m in args.methods.split(",")]
    unknown = sorted({m for m, _ in methods} - set(ALL_METHODS.split(",")))
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(unknown)}")
    vectors = np.asarray(st.embeddings("wordnet")[0][:5000])
    frame = st.samples("wordnet", ["lemmas", "gloss"])[:5000]
    texts = [", ".join(lem).replace("_", " ") + ": " + g for lem, g in
             zip(frame["lemmas"].to_list(), frame["gloss"].to_list(), strict=True)]
    if args.compare_threads:
        compare_threads(args, vectors, texts, models)
        return
    if args.compare_workers:
        compare_workers(args, vectors, texts, models)
        return
    if args.soak and args.workers != 1:
        raise SystemExit("--soak samples one server process's memory: run it with --workers 1")
    with serving(args.kernel_threads, args.workers) as (port, proc, start_s):
        if args.soak:
            out = soak(args, port, proc.pid, vectors, texts, models)
        else:
            results = [{**run(m, kind, int(c), args.seconds, port, vectors, texts, model,
                              objectives=obj == "on", server_pid=proc.pid,
                              batching=args.workers == 1), "run": i + 1}
                       for i in range(args.runs)
                       for c in args.clients.split(",") for kind in args.queries.split(",")
                       for obj in args.objectives.split(",") for m, model in methods]
            if args.batch > 1:
                results += [run(m, "vector", int(c), args.seconds, port, vectors, texts,
                                model, objectives=False, batch=args.batch,
                                server_pid=proc.pid, batching=args.workers == 1)
                            for c in args.clients.split(",") for m, model in methods]
    if args.soak:
        write_soak(out, models, start_s)
    else:
        write_load(results, models, start_s, args)


def http_stack() -> dict[str, str]:
    """What uvicorn's "auto" settings pick in this environment: its HTTP parser and loop."""
    import importlib.util

    def have(name):
        return importlib.util.find_spec(name) is not None

    return {"http": "httptools" if have("httptools") else "h11",
            "loop": "uvloop" if have("uvloop") else "asyncio"}


THREAD_PROBES = [("topk", "vector", True), ("topk", "vector", False),
                 ("diffusion", "vector", False), ("topk", "text", False)]
WORKER_PROBES = [("topk", "vector", True), ("topk", "vector", False),
                 ("diffusion", "vector", True), ("diffusion", "vector", False),
                 ("teacher", "vector", False), ("topk", "text", False)]


def alternated(args, setting: str, values: tuple[int, int], probes: list[tuple],
               vectors: np.ndarray, texts: list[str], models: dict) -> list[dict]:
    """The probe rows (16 clients; (method, query kind, objectives)) against a server for
    each value of ``setting`` (``kernel_threads`` or ``workers``; the other from ``args``),
    alternated ``args.repeats`` times — A-B, then B-A — so that drift shows as the spread
    between repeats; each row with the cores busy and the connection split."""
    rows = []
    for rep in range(args.repeats):
        for value in (values if rep % 2 == 0 else values[::-1]):
            kw = {"kernel_threads": args.kernel_threads, "workers": args.workers,
                  setting: value}
            with serving(kw["kernel_threads"], kw["workers"]) as (port, proc, _):
                for method, kind, obj in probes:
                    r = run(method, kind, 16, args.seconds, port, vectors, texts,
                            models.get(method), objectives=obj, server_pid=proc.pid,
                            batching=kw["workers"] == 1)
                    rows.append({**r, setting: value, "repeat": rep})
    return rows


def comparison_table(rows: list[dict], setting: str, values: tuple[int, int],
                     probes: list[tuple], header: str, show=str) -> list[str]:
    """The markdown rows of an ``alternated`` comparison: per probe and value of
    ``setting`` (shown by ``show``), each repeat's queries/s, p99, cores busy and
    connection split (– where the row did not record it)."""
    lines = [f"| query | method | objectives | {header} | queries/s per repeat | "
             "p99 ms per repeat | errors | cores busy: server + load generator | "
             "connections per process |", "|---|---|---|---|---|---|---|---|---|"]
    for method, kind, obj in probes:
        for value in values:
            got = [r for r in rows if (r["method"], r["query"], r["objectives"],
                                       r[setting]) == (method, kind, obj, value)]
            qps = " / ".join(f"{r['queries_per_s']:.0f}" for r in got)
            p99 = " / ".join("–" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}" for r in got)
            cores = " / ".join(f"{r['server_cores']:.2f} + {r['client_cores']:.2f}"
                               if "server_cores" in r else "–" for r in got)
            split = " / ".join("+".join(map(str, r.get("connections_per_process") or []))
                               or "–" for r in got)
            lines.append(f"| {kind} | {method} | {'on' if obj else 'off'} | {show(value)} | "
                         f"{qps} | {p99} | {sum(r['errors'] for r in got)} | {cores} | "
                         f"{split} |")
    return lines


def compare_threads(args, vectors: np.ndarray, texts: list[str], models: dict) -> None:
    """``alternated`` rows against ``curate serve --kernel-threads 0`` (the libraries'
    defaults: every core per kernel) and ``1``. Writes results/service_threads.*."""
    rows = alternated(args, "kernel_threads", (0, 1), THREAD_PROBES, vectors, texts, models)
    write_json(RESULTS / "service_threads.json", {"machine": machine(), "results": rows,
                                                  "models": models, "server": http_stack()})
    lines = ["# Service: threads per numeric kernel", "",
             f"16 clients on loopback, {args.seconds:.0f} s per row, as in service_load.md; "
             "`curate serve --kernel-threads 0` (torch, FAISS and BLAS at their defaults: every "
             "core) against `--kernel-threads 1`, servers alternated (A-B, then B-A), "
             f"{args.repeats} repeats. {machine()}. Produced by "
             "`python benchmarks/service_load.py --compare-threads`.", ""]
    lines += comparison_table(rows, "kernel_threads", (0, 1), THREAD_PROBES, "kernel threads",
                              show=lambda t: t or "default")
    write_markdown(RESULTS / "service_threads.md", lines)


def compare_workers(args, vectors: np.ndarray, texts: list[str], models: dict) -> None:
    """``alternated`` rows against ``curate serve --workers 1`` and ``2``. Writes
    results/service_workers.json and .md."""
    rows = alternated(args, "workers", (1, 2), WORKER_PROBES, vectors, texts, models)
    write_json(RESULTS / "service_workers.json",
               {"machine": machine(), "results": rows, "models": models,
                "server": {**http_stack(), "kernel_threads": args.kernel_threads}})
    lines = ["# Service: one server process or two", "",
             f"16 clients on loopback, {args.seconds:.0f} s per row, as in service_load.md; "
             "`curate serve --workers 1` against `--workers 2` (uvicorn's multi-process "
             "mode: two processes, each with its own engine and its own shared calls), "
             f"servers alternated (A-B, then B-A), {args.repeats} repeats; "
             f"{args.kernel_threads} thread(s) per numeric kernel. Cores busy: the server's "
             "processes' and the load generator's CPU seconds over the row's wall seconds "
             f"(the machine has {os.cpu_count()}). {machine()}. Produced by "
             "`python benchmarks/service_load.py --compare-workers`.", ""]
    lines += comparison_table(rows, "workers", (1, 2), WORKER_PROBES, "workers")
    write_markdown(RESULTS / "service_workers.md", lines)


def load_stem(methods: str, workers: int, runs: int = 1) -> str:
    """The load table's file stem: service_load, -<methods> for a subset, -workers<N> for
    several server processes, -runs<N> for repeated runs."""
    return ("service_load" + ("" if methods == ALL_METHODS else "-" + methods.replace(",", "-"))
            + (f"-workers{workers}" if workers > 1 else "") + (f"-runs{runs}" if runs > 1 else ""))


def write_load(results: list[dict], models: dict, start_s: float, args,
               stored: dict | None = None) -> None:
    """results/service_load[-methods].json and .md; ``stored``: a stored run's record
    (``--render``: its server settings and host), None: this run's (``curate serve``'s
    defaults but the kernel threads, so the library's GIL switch interval)."""
    from retrieval.service import SWITCH_INTERVAL_S

    stored = stored or {}
    server = stored.get("server") or {**http_stack(), "kernel_threads": args.kernel_threads,
                                      "switch_interval_ms": SWITCH_INTERVAL_S * 1e3,
                                      "shared_objectives": True, "workers": args.workers}
    host = stored.get("machine") or machine()
    stack = server
    interval = (f"{server['switch_interval_ms']:g} ms" if "switch_interval_ms" in server
                else "not recorded")
    threads_txt = (f"{server['kernel_threads']} thread(s)" if server["kernel_threads"]
                   else "the libraries' default threads")
    workers = server.get("workers", 1)
    processes = ("one uvicorn process" if workers == 1
                 else f"{workers} uvicorn worker processes (`--workers {workers}`)")
    runs = max(r.get("run", 1) for r in results)
    stem = load_stem(args.methods, workers, runs)
    write_json(RESULTS / f"{stem}.json", {"machine": host, "results": results,
                                               "models": models, "server_start_s": start_s,
                                               "client": "keep-alive connection per client, "
                                                         "bodies encoded before the clock",
                                               "server": server})
    lines = ["# Service load test", "",
             f"Concurrent clients on loopback for {args.seconds:.0f} s per row, each over its "
             "own keep-alive connection with its request bodies encoded before the clock "
             f"starts; {processes} ({stack['http']} HTTP parser, {stack['loop']} loop, "
             f"{threads_txt} per numeric kernel, GIL switch interval "
             f"{interval}; "
             f"max 16 requests in flight{' per process' if workers > 1 else ''}; "
             "text queries share encoder calls, teacher, "
             "diffusion and ascent requests model calls"
             + (", default-weight requests objectives calls" if server.get("shared_objectives")
                else "") + f"), index {INDEX} over all 117,659 WordNet glosses, "
             "k = 10; `vector` queries send a gloss vector, `text` queries a \"lemmas: gloss\" "
             f"text the server embeds. {host}; the server was ready (index, encoder, "
             f"models loaded) {start_s:.1f} s after launch. Load average = the machine's "
             "1-minute load average at the start/end of the row (it counts every runnable "
             "thread, the server's own included: above the core count, threads waited for a "
             "core). Produced by `benchmarks/service_load.py`.", "",
             "Rows with objectives off send `\"objectives\": false` (no 500-neighbour pool "
             "search); " + (f"batch rows send POST /v1/fanout/batch with {args.batch} vector "
                            "queries a call (latency per call, throughput in queries/s)"
                            if args.batch > 1 else "no batch rows") + ". Shared calls: "
             "the calls concurrent queries shared during the row (from /healthz): the mean "
             "queries per call and the share of the row's time the call ran"
             + (" (not read with several processes: each answers /healthz with its own)"
                if workers > 1 else "") + ". Cores busy: the server's processes' and the "
             "load generator's CPU seconds over the row's wall seconds (– : not recorded).",
             "",
             ("| run " if runs > 1 else "")
             + "| clients | query | method | objectives | batch | requests | queries/s | p50 ms "
             "| p99 ms | errors | load avg | cores busy: server + load generator "
             "| connections per process | shared calls: mean batch, busy |",
             ("|---" if runs > 1 else "") + "|---|---|---|---|---|---|---|---|---|---|---|---|"
             "---|---|"]
    for r in results:
        lat = (f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f}" if r["p50_ms"] is not None
               else "– | –")
        shared = "; ".join(f"{c.split('/')[0]} {v['mean_batch']:.1f}, {v['busy_share']:.0%}"
                           for c, v in r.get("shared_calls", {}).items()) or "–"
        cores = (f"{r['server_cores']:.2f} + {r['client_cores']:.2f}" if "server_cores" in r
                 else "–")
        split = "+".join(map(str, r.get("connections_per_process") or [])) or "–"
        lines.append((f"| {r.get('run', 1)} " if runs > 1 else "")
                     + f"| {r['clients']} | {r['query']} | {r['method']} | "
                     f"{'on' if r['objectives'] else 'off'} | {r['batch']} | {r['requests']} | "
                     f"{r['queries_per_s']:.1f} | {lat} | {r['errors']} | "
                     f"{r['load_avg_start']:.1f}/{r['load_avg_end']:.1f} | {cores} | {split} | "
                     f"{shared} |")
    write_markdown(RESULTS / f"{stem}.md", lines)


def write_soak(out: dict, models: dict, start_s: float) -> None:
    write_json(RESULTS / "service_soak.json", {"machine": machine(), "soak": out,
                                               "models": models, "server_start_s": start_s})
    lines = ["# Service soak test", "",
             f"{out['clients']} clients on loopback for {out['seconds']:.0f} s sending a mix "
             "(topk, mmr, teacher, diffusion; text and vector queries; 20 % of the model "
             "calls seeded; 5 % batches of 4; 5 % bad requests) to one uvicorn process over "
             f"{INDEX}. {machine()}. Resident memory (VmRSS) of the server, sampled "
             f"periodically; start/end/max after a {out['warmup_s']:.0f} s warm-up. Produced "
             "by `benchmarks/service_load.py --soak`.", "",
             f"- requests: {out['requests']} ({out['throughput_rps']:.1f} req/s), errors "
             f"(non-200 answers to good requests): {out['errors']} {out['statuses']}",
             f"- bad requests: {out['bad_requests']} (not a 4xx: "
             f"{out['bad_requests_not_4xx']})",
             f"- RSS after warm-up: start {out['rss_start_mb']:.0f} MB, end "
             f"{out['rss_end_mb']:.0f} MB, max {out['rss_max_mb']:.0f} MB "
             f"({out['rss_growth_mb_per_min']:+.1f} MB/min)", "",
             "| t (s) | RSS (MB) | load avg |", "|---|---|---|"]
    lines += [f"| {s['t_s']:.0f} | {s['rss_mb']:.0f} | {s['load_avg']:.1f} |"
              for s in out["samples"]]
    write_markdown(RESULTS / "service_soak.md", lines)


if __name__ == "__main__":
    main()
