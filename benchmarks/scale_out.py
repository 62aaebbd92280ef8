"""Scale: the path a user takes, end to end, at 1M-10M rows: Parquet shards → ``curate
ingest`` → ``curate signals ingest`` → ``curate select`` (load + select + write).

    python benchmarks/scale_out.py --rows 1000000 --dim 128          # ~2 min
    python benchmarks/scale_out.py --rows 10000000 --dim 128         # run once, committed

Data (seeded, synthetic): N rows × d float32 vectors (a fixed_size_list column) from a
100-class Gaussian mixture, an int label, a string id, in shards of 1M rows; loss
trajectories over 10 checkpoints for the train rows (and the val rows) as an ``.npz`` for
``curate signals ingest``. Every stage runs as its own ``curate`` process (the CLI a user
runs), and records its wall time and its own peak RSS (``VmHWM`` of that process).

    python benchmarks/scale_out.py --rows 1000000 --executor ray              # local Ray
    python benchmarks/scale_out.py --rows 1000000 --executor ray --ray-nodes 2
    python benchmarks/scale_out.py --embed 100000      # embedding throughput per backend
    python benchmarks/scale_out.py --objective 1000000 # partitioned vs single greedy

``--embed N`` times the store path a user's ``curate embed`` takes — the first N WordNet
glosses ingested as a text dataset, then ``embed_dataset`` (text column read by record
batch → encoder → ``vectors.npy`` appended batch by batch), each backend and executor in
its own process, the model loaded before the clock starts — plus an in-process A/B of torch
against ``--ab-backend`` on alternating blocks (``--ab``).

``--executor ray`` starts a Ray cluster on this machine first — one node, or a
``ray.cluster_utils.Cluster`` of ``--ray-nodes`` nodes sharing the CPUs — and every stage
joins it through ``RAY_ADDRESS`` (what a user with a running cluster does), so a stage's wall
time includes connecting but not starting the cluster. ``peak_rss_mb`` is the driver's
(the ``curate`` process); ``workers_peak_rss_mb`` / ``workers_peak_pss_mb`` the peak of
the Ray workers' summed RSS / PSS during the stage (sampled every 0.5 s; RSS counts a
shared mmap page once per worker, PSS splits it among them), ``job_peak_pss_mb`` the
peak of driver + workers PSS, and ``job_peak_mb`` the peak of the memory the whole job held
with each page once (anonymous + shared-memory PSS + each mapped file's resident pages
once; ``job_peak_parts_mb`` splits it) — the PSS sum over-counts when workers unmap
between the reads of one sample (``WorkersPeak``).

Appends records to ``results/scale_out.json`` — a list of
``{executor, n_rows, dim, method, stage, wall_s, peak_rss_mb}`` (+ ``vectors_mb``, the size of
one copy of the vectors; ``ray_nodes``; for ``stage: "embed"`` also ``backend``,
``rows_per_s`` and the cosine to the ``torch`` vectors) — and rewrites
``results/scale_out.md``. ``--objective`` writes ``results/partitioned_greedy.json``/``.md``:
each greedy method's objective, partitioned vs one greedy over all rows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, machine, write_json  # noqa: E402

SHARD = 1_000_000
CLASSES = 100
EPOCHS = 10
# VmHWM (the high-water mark of this process's memory), not ru_maxrss: after fork + exec,
# ru_maxrss keeps the parent's peak, so every stage would report the generator's.
STAGE_RUNNER = ("import json, sys\n"
                "from curate.cli import main\n"
                "code = main(sys.argv[1:])\n"
                "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
                "peak = int(hwm.split()[1]) / 1024\n"
                "print(json.dumps({'peak_rss_mb': peak}), file=sys.stderr)\n"
                "sys.exit(code)\n")


def make_shards(folder: Path, n: int, d: int, seed: int = 0) -> None:
    """Write N rows in 1M-row Parquet shards without building the table in Python."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, d)).astype(np.float32) * 2
    folder.mkdir(parents=True)
    for i, start in enumerate(range(0, n, SHARD)):
        m = min(SHARD, n - start)
        y = rng.integers(0, CLASSES, size=m)
        X = centres[y] + rng.standard_normal((m, d), dtype=np.float32)
        ids = pa.array(np.char.add("s", np.arange(start, start + m).astype(str)))
        table = pa.table({"uid": ids, "label": pa.array(y),
                          "vec": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), d)})
        pq.write_table(table, folder / f"part-{i:05d}.parquet", compression="none")


def make_signals(store: Path, path: Path, seed: int = 0) -> None:
    """Loss trajectories for the stored train/val rows (E = 10), as ``signals ingest`` wants."""
    import pyarrow.parquet as pq

    t = pq.read_table(store / "datasets" / "big" / "samples.parquet",
                      columns=["row_idx", "split"])
    split = t.column("split").to_numpy(zero_copy_only=False)
    rows = t.column("row_idx").to_numpy()
    rng = np.random.default_rng(seed)
    out = {}
    for part in ("train", "val"):
        r = rows[split == part]
        rate = rng.uniform(0.05, 0.5, size=len(r)).astype(np.float32)
        steps = np.arange(1, EPOCHS + 1, dtype=np.float32)[:, None]
        out[f"{part}_rows"] = r
        out[f"{part}_losses"] = np.exp(-steps * rate[None, :]) * 2.0
    np.savez(path, **out)


def stage(args: list[str], env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", STAGE_RUNNER, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with WorkersPeak(driver=proc.pid if "RAY_ADDRESS" in env else None) as workers:
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"stage {args[2:4]} failed: {stderr.strip()[-500:]}")
    peak = json.loads(stderr.strip().splitlines()[-1])["peak_rss_mb"]
    out = {"wall_s": round(wall, 2), "peak_rss_mb": round(peak, 1), "stdout": stdout}
    if "RAY_ADDRESS" in env:
        out["workers_peak_rss_mb"] = round(workers.peak, 1)
        out["workers_peak_pss_mb"] = round(workers.peak_pss, 1)
        out["job_peak_pss_mb"] = round(workers.peak_job_pss, 1)
        out["job_peak_pss_parts_mb"] = {k: round(v, 1) for k, v in workers.job_parts.items()}
        out["job_peak_mb"] = round(workers.peak_job, 1)
        out["job_peak_parts_mb"] = {k: round(v, 1)
                                    for k, v in workers.job_unique_parts.items()}
    return out


PSS_KINDS = ("Pss_Anon", "Pss_File", "Pss_Shmem")


def ray_workers() -> dict[int, int]:
    """This machine's Ray worker processes (``ray::…``, idle ones included): pid → VmRSS kB."""
    out = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            if text.startswith("Name:\tray::"):
                out[int(status.parent.name)] = _kb_field(text, "VmRSS")
        except (OSError, ValueError):
            continue
    return out


def pss_kb(pid: int) -> dict[str, int]:
    """One process's PSS by kind (anonymous, file-backed — the memory-mapped store — and
    shared memory — Ray's object store) and in total (``Pss``; the kinds are absent on
    kernels before 5.6), in kB from ``/proc/PID/smaps_rollup``; {} once it has exited.

    RSS counts a page of the memory-mapped store once per process that touched it; PSS
    splits a shared page among the processes sharing it, so a PSS sum counts it once."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    return {k: _kb_field(text, k) for k in ("Pss", *PSS_KINDS)}


def _kb_field(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


#: one file-backed mapping of /proc/PID/smaps: its path, resident kB, anonymous (CoW) kB
MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+ +(/[^\n]*)\n"
                     r"(?:(?!Rss:)[^\n]*\n)*Rss: +(\d+) kB\n"
                     r"(?:(?!Anonymous:)[^\n]*\n)*Anonymous: +(\d+)", re.M)


def file_rss_kb(pid: int) -> dict[str, int]:
    """One process's resident pages of each mapped file (not shared memory), path → kB."""
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return {}
    out: dict[str, int] = {}
    for path, rss, anon in MAPPING.findall(text):
        if not path.startswith(("/dev/shm/", "/memfd:", "/SYSV")):
            out[path] = out.get(path, 0) + int(rss) - int(anon)
    return out


def unique_kb(pss: list[dict[str, int]], files: list[dict[str, int]]) -> dict[str, int]:
    """The job's memory with each page once, robust to when each process is read:
    anonymous + shared-memory PSS, plus each mapped file's resident pages counted once —
    min(file size, Σ of the processes' resident pages in it), an upper bound that is exact
    once one process holds the whole file (the driver holds the vectors)."""
    per_file: dict[str, int] = {}
    for f in files:
        for path, kb in f.items():
            per_file[path] = per_file.get(path, 0) + kb
    file_kb = 0
    for path, kb in per_file.items():
        try:
            kb = min(kb, -(-os.stat(path).st_size // 1024))
        except OSError:                          # deleted, or not a path: its pages as read
            pass
        file_kb += kb
    return {"anon": sum(p.get("Pss_Anon", 0) for p in pss),
            "shmem": sum(p.get("Pss_Shmem", 0) for p in pss), "file": file_kb}


class WorkersPeak:
    """Every 0.5 s in a thread, one scan of the Ray workers: ``peak`` / ``peak_pss`` are the
    highest sums of their RSS / PSS, ``peak_job_pss`` the highest driver + workers PSS and
    ``job_parts`` that sample's PSS by kind; ``peak_job`` the highest driver + workers memory
    with each page once (``unique_kb``) and ``job_unique_parts`` its split, all in MB.
    Raylet and its object-store process are not counted.

    Why two job figures: a PSS sum is exact only for a snapshot, and the processes are read
    one after another. Workers map the store per task and unmap it when the task ends, so
    a page read as 1/3 of a worker's, 1/3 of another's, and then — both tasks over — as all
    the driver's, is counted 5/3 times; the peak of many such sums picks the worst of
    those overcounts (seen: 570 MB of PSS for a 488 MB vectors file). ``peak_job`` counts
    each file once whatever the timing."""

    def __init__(self, driver: int | None = None) -> None:
        import threading

        self.driver = driver
        self.peak = self.peak_pss = self.peak_job_pss = self.peak_job = 0.0
        self.job_parts: dict[str, float] = {}
        self.job_unique_parts: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            workers = ray_workers()
            pss = {pid: pss_kb(pid) for pid in workers}
            self.peak = max(self.peak, sum(workers.values()) / 1024)
            self.peak_pss = max(self.peak_pss, sum(p.get("Pss", 0) for p in pss.values()) / 1024)
            if self.driver:
                pids = [*workers, self.driver]
                job = [*pss.values(), pss_kb(self.driver)]
                total = sum(p.get("Pss", 0) for p in job) / 1024
                if total > self.peak_job_pss:
                    self.peak_job_pss = total
                    self.job_parts = {k: sum(p.get(k, 0) for p in job) / 1024
                                      for k in PSS_KINDS}
                parts = unique_kb(job, [file_rss_kb(pid) for pid in pids])
                if sum(parts.values()) / 1024 > self.peak_job:
                    self.peak_job = sum(parts.values()) / 1024
                    self.job_unique_parts = {k: v / 1024 for k, v in parts.items()}

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def start_cluster(nodes: int):
    """A Ray cluster on this machine: ``nodes`` nodes sharing its CPUs."""
    from ray.cluster_utils import Cluster

    cpus = max(1, (os.cpu_count() or 2) // nodes)
    store_mb = 1024 * 1024 * 1024
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": cpus, "object_store_memory": store_mb, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus, object_store_memory=store_mb)
    cluster.wait_for_nodes()
    return cluster


def run_pipeline(args) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="curate-scale-", dir=args.work))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    n, d = args.rows, args.dim
    base = {"executor": args.executor, "n_rows": n, "dim": d, "machine": machine(),
            "vectors_mb": round(n * d * 4 / 2**20, 1)}
    ex = []
    cluster = None
    if args.executor == "ray":
        cluster = start_cluster(args.ray_nodes)
        env["RAY_ADDRESS"] = cluster.address
        base["ray_nodes"] = args.ray_nodes
        ex = ["--executor", "ray"]
    records = []
    try:
        t0 = time.perf_counter()
        make_shards(work / "shards", n, d)
        print(f"generated {n:,} × {d} in {time.perf_counter() - t0:.0f} s", flush=True)
        store = work / "store"
        s = ["--store", str(store)]
        r = stage([*s, "ingest", str(work / "shards"), "--name", "big", "--label-column",
                   "label", "--id-column", "uid", "--vector-column", "vec", *ex, "--json"], env)
        records.append({**base, "method": None, "stage": "ingest", **_clean(r)})
        make_signals(store, work / "signals.npz")
        r = stage([*s, "signals", "ingest", str(work / "signals.npz"), "big", "--name",
                   "proxy", "--json"], env)
        records.append({**base, "method": None, "stage": "signals-ingest", **_clean(r)})
        for rec in records:
            print(json.dumps(rec), flush=True)
        if args.select_records_only:   # the table's ingest rows stay; this run's are logged
            records = []
        for spec in args.methods.split(","):
            method, _, param = spec.partition(":")
            extra = [x for p in param.split(";") if p for x in ("--param", p)]
            r = stage([*s, "select", "big", "--method", method, "--budget", args.budget,
                       *extra, *ex, "--json"], env)
            out = json.loads(r["stdout"])
            records.append({**base, "method": spec, "stage": "select (load+select+write)",
                            **_clean(r), "method_wall_s": out["wall_time_s"],
                            "n_selected": out["n_selected"],
                            "parts": out["info"].get("parts")})
            print(json.dumps(records[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if cluster is not None:
            cluster.shutdown()
    return records


EMBED_ONE = """
import json, sys, time, numpy as np, polars as pl
from pathlib import Path
backend, executor, src, out = sys.argv[1:5]
from core.encoders import get_encoder
from curate.embedding import embed_dataset
from stores import IngestSpec, Store
get_encoder(backend).encode(pl.read_parquet(src)["gloss"].head(64).to_list())  # load/build first
st = Store.create(Path(out).with_suffix(".store"))
st.ingest(src, "texts", IngestSpec(text_column="gloss"))
if executor == "ray":
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
t0 = time.perf_counter()
embed_dataset(st, "texts", backend=backend, executor=executor)   # read, encode, write
wall = time.perf_counter() - t0
np.save(out, np.asarray(st.embeddings("texts")[0]))
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]
print(json.dumps({"wall_s": round(wall, 2), "peak_rss_mb": round(int(hwm.split()[1]) / 1024, 1)}))
"""


EMBED_AB = """
import json, sys, time, numpy as np, polars as pl
names, src, n, block = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
texts = pl.read_parquet(src)["gloss"].to_list()[:n]
from core.encoders import get_encoder
enc = {name: get_encoder(name) for name in names}
for e in enc.values():
    e.encode(texts[:256])                               # load, compile, warm up
spent = {name: [] for name in names}
for i, lo in enumerate(range(0, n, block)):
    chunk = texts[lo:lo + block]
    for name in (names if i % 2 == 0 else names[::-1]):  # alternate who goes first
        t0 = time.perf_counter()
        enc[name].encode(chunk)
        spent[name].append(time.perf_counter() - t0)
print(json.dumps(spent))
"""


def run_embed_ab(args, src: Path, env: dict) -> list[dict]:
    """The speed-up measured in one process with ``torch`` and every ``--ab-backend``
    loaded, in alternating blocks of ``--ab-block`` texts (the order reverses each block),
    so all see the same machine: a host whose speed drifts (steal time, turbo, a noisy
    neighbour) moves both sides of each ratio alike. One record per backend, reported
    beside the sequential runs, not instead of them."""
    names = list(dict.fromkeys(["torch", *args.ab_backend.split(",")]))   # each once
    proc = subprocess.run([sys.executable, "-c", EMBED_AB, ",".join(names), str(src),
                           str(args.ab), str(args.ab_block)], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"embed A/B failed: {proc.stderr.strip()[-800:]}")
    spent = json.loads(proc.stdout.strip().splitlines()[-1])
    a, records = names[0], []
    for b in names[1:]:
        per_block = np.array(spent[a]) / np.array(spent[b])
        rec = {"executor": "local", "n_rows": args.ab, "dim": 384, "machine": machine(),
               "method": None, "stage": "embed-ab", "backend": b,
               "block_rows": args.ab_block, "blocks": len(per_block),
               "torch_s": round(sum(spent[a]), 2), "backend_s": round(sum(spent[b]), 2),
               "speedup": round(sum(spent[a]) / sum(spent[b]), 2),
               "speedup_block_min": round(float(per_block.min()), 2),
               "speedup_block_median": round(float(np.median(per_block)), 2),
               "speedup_block_max": round(float(per_block.max()), 2)}
        print(json.dumps(rec), flush=True)
        records.append(rec)
    return records


def run_embed(args) -> list[dict]:
    """Embedding throughput on ``--embed`` real texts (WordNet glosses) per backend."""
    from curate.defaults import load_wordnet

    work = Path(tempfile.mkdtemp(prefix="curate-embed-", dir=args.work))
    texts = load_wordnet(None).select("gloss").head(args.embed)
    src = work / "texts.parquet"
    texts.write_parquet(src)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    records, ref = [], None
    try:
        for executor in args.embed_executors.split(","):
            backends = args.backends if executor == "local" else args.ray_backends
            for backend in backends.split(","):
                out = work / f"{backend}-{executor}.npy"
                proc = subprocess.run([sys.executable, "-c", EMBED_ONE, backend, executor,
                                       str(src), str(out)], env=env, capture_output=True,
                                      text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"embed {backend}/{executor} failed: "
                                     f"{proc.stderr.strip()[-800:]}")
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                v = np.load(out)
                if ref is None:
                    ref = v          # the first run (torch, local) is the reference
                cos = (v * ref).sum(axis=1)
                rec = {"executor": executor, "n_rows": len(v), "dim": v.shape[1],
                       "machine": machine(), "method": None, "stage": "embed",
                       "backend": backend, **r,
                       "rows_per_s": round(len(v) / r["wall_s"], 1),
                       "cosine_to_torch_min": round(float(cos.min()), 5),
                       "cosine_to_torch_mean": round(float(cos.mean()), 6)}
                records.append(rec)
                print(json.dumps(rec), flush=True)
        if args.ab:
            records += run_embed_ab(args, src, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--methods", default="stratified,cld,el2n:epoch=9")
    ap.add_argument("--budget", default="0.01")
    ap.add_argument("--executor", choices=("local", "ray"), default="local")
    ap.add_argument("--ray-nodes", type=int, default=1)
    ap.add_argument("--embed", type=int, default=0, help="embedding throughput on N texts")
    ap.add_argument("--backends", default="torch,openvino,openvino-int8,onnx,onnx-int8")
    ap.add_argument("--embed-executors", default="local,ray")
    ap.add_argument("--ray-backends", default="openvino,openvino-int8",
                    help="backends timed on Ray")
    ap.add_argument("--ab", type=int, default=20000,
                    help="with --embed: also time torch vs --ab-backend in one process on "
                         "this many texts, alternating blocks (0: skip)")
    ap.add_argument("--ab-block", type=int, default=2000)
    ap.add_argument("--ab-backend", default="openvino,openvino-int8",
                    help="backends timed against torch in the A/B (comma-separated)")
    ap.add_argument("--objective", type=int, default=0,
                    help="partitioned vs single greedy objectives on N rows")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    ap.add_argument("--select-records-only", action="store_true",
                    help="store only this run's select records (re-running some methods: "
                         "the ingest and signals rows of the table stay; this run's are "
                         "printed to the log)")
    args = ap.parse_args()
    if args.objective:
        from partitioned_objective import run_objective

        run_objective(args.objective, args.dim)
        return
    records = run_embed(args) if args.embed else run_pipeline(args)
    path = RESULTS / "scale_out.json"
    old = json.loads(path.read_text()) if path.exists() else []
    new_keys = {_key(r) for r in records}
    if args.embed:   # one embedding table: records of another text count are superseded
        old = [r for r in old if not r["stage"].startswith("embed")]
    allrec = [r for r in old if _key(r) not in new_keys] + records
    write_json(path, allrec)
    write_table(allrec)


def _key(r: dict) -> tuple:
    return (r["executor"], r.get("ray_nodes"), r["n_rows"], r["dim"], r["stage"],
            r["method"], r.get("backend"))


def write_table(allrec: list[dict]) -> None:
    lines = ["| executor | rows | dim | stage | method | wall s | peak RSS MB | "
             "Ray workers peak RSS / PSS MB | job peak PSS MB | job peak, each page once, MB | "
             "vectors MB |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in allrec:
        if r["stage"].startswith("embed"):
            continue
        ex = r["executor"] + (f" ({r['ray_nodes']} node{'s' * (r['ray_nodes'] > 1)})"
                              if r.get("ray_nodes") else "")
        lines.append(f"| {ex} | {r['n_rows']:,} | {r['dim']} | {r['stage']} | "
                     f"{r['method'] or ''} | {r['wall_s']} | {r['peak_rss_mb']} | "
                     f"{_workers(r)} | {r.get('job_peak_pss_mb', '')} | "
                     f"{r.get('job_peak_mb', '')} | "
                     f"{r.get('vectors_mb', '')} |")
    emb = [r for r in allrec if r["stage"] == "embed"]
    if emb:
        lines += ["", "| embed executor | backend | texts | wall s | texts/s | × torch | "
                  "cosine to torch, min / mean | peak RSS MB |",
                  "|---|---|---:|---:|---:|---:|---|---:|"]
        torch_rate = {r["executor"]: r["rows_per_s"] for r in emb if r["backend"] == "torch"}
        base = torch_rate.get("local")
        for r in emb:
            x = f"{r['rows_per_s'] / base:.2f}" if base else ""
            lines.append(f"| {r['executor']} | {r['backend']} | {r['n_rows']:,} | "
                         f"{r['wall_s']} | {r['rows_per_s']} | {x} | "
                         f"{r['cosine_to_torch_min']} / {r['cosine_to_torch_mean']} | "
                         f"{r['peak_rss_mb']} |")
    for r in (r for r in allrec if r["stage"] == "embed-ab"):
        lines += ["", f"Same process, alternating blocks of {r['block_rows']:,} texts "
                  f"({r['blocks']} blocks, {r['n_rows']:,} texts): torch {r['torch_s']} s, "
                  f"{r['backend']} {r['backend_s']} s → **{r['speedup']}×** (per block: "
                  f"min {r['speedup_block_min']}, median {r['speedup_block_median']}, max "
                  f"{r['speedup_block_max']})."]
    (RESULTS / "scale_out.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _workers(r: dict) -> str:
    if "workers_peak_rss_mb" not in r:
        return ""
    return f"{r['workers_peak_rss_mb']} / {r.get('workers_peak_pss_mb', '–')}"


def _clean(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "stdout"}


if __name__ == "__main__":
    main()
