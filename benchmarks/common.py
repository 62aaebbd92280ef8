"""Helpers shared by the benchmark scripts: result files and the markdown tables."""

from __future__ import annotations

import json
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
FULL_STORE = Path(__file__).parent / ".cache" / "wordnet-full"


def full_store(path: Path = FULL_STORE):
    """The all-WordNet benchmark store (117,659 glosses, MiniLM embeddings, 20-epoch proxy
    signals), built on first use (~10 min on 2 cores) and reused after. Its embeddings are
    the float32 reference (``backend="torch"``), whatever the default backend: the stored
    benchmark records were computed on them, and ``subset_quality.py --backend`` compares
    another backend's vectors against them."""
    from curate.defaults import init_default
    from stores import Store

    if not (Path(path) / "catalog.duckdb").exists():
        init_default(Store.create(path), sample=None, epochs=20, progress=True,
                     backend="torch")
    return Store.open(path)


def wordnet_fanout():
    """The WordNet fan-out benchmark's data, as benchmarks/fanout.py uses it: (store, the
    HNSW32 index, the L2-normalised item vectors (n, 384), the bundled query set's id, its
    train and test splits)."""
    from curate.defaults import wordnet_query_set
    from retrieval import load_index
    from retrieval.index import normalise
    from retrieval.queries import load_queries, register_queries

    st = full_store()
    index = load_index(st, "wordnet-hnsw32")
    X = normalise(np.asarray(st.embeddings("wordnet")[0]))
    qs = register_queries(st, "wordnet-hnsw32", wordnet_query_set(st, "wordnet"),
                          view_columns=("head", "body"), references_column="references",
                          item_column="item")["query_set"]
    return st, index, X, qs, load_queries(st, qs, "train"), load_queries(st, qs, "test")


def latest_fanout_models(store, index: str, regime: str) -> dict[str, str]:
    """{kind: id} of the latest teacher and diffusion model on ``index`` whose regime is
    ``regime`` (a diffusion model's regime is its teacher's); a kind with none is absent."""
    from stores import files

    def regime_of(model_id: str) -> str | None:
        meta = files.read_json(store.model_path(model_id) / "model.json")
        if meta.get("index") != index:
            return None
        return regime_of(meta["teacher"]) if "teacher" in meta else meta.get("regime")

    frame = store.models()                                  # oldest first
    return {kind: i for i, kind in zip(frame["id"].to_list(), frame["kind"].to_list(),
                                       strict=True)
            if kind in ("teacher", "diffusion") and regime_of(i) == regime}


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST format): magic, dims, then uint8 data."""
    import gzip
    import struct

    with gzip.open(path, "rb") as fh:
        _, dtype, ndim = struct.unpack(">HBB", fh.read(4))
        shape = struct.unpack(">" + "I" * ndim, fh.read(4 * ndim))
        return np.frombuffer(fh.read(), dtype=np.uint8).reshape(shape)


def read_fashion_mnist(root: Path | None = None):
    """(X_train (60000, 784) float32 in [0, 1], y_train, X_test, y_test)."""
    root = root or SHARED / "fashion-mnist"
    X = [read_idx(root / f"{p}-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0
         for p in ("train", "t10k")]
    y = [read_idx(root / f"{p}-labels-idx1-ubyte.gz").astype(np.int64) for p in ("train", "t10k")]
    return X[0].astype(np.float32), y[0], X[1].astype(np.float32), y[1]


def merge_records(path: Path, new: list[dict], key: tuple[str, ...]) -> list[dict]:
    """Replace the records of ``path`` that share ``key`` values with ``new``; keep the rest."""
    old = json.loads(path.read_text()) if path.exists() else []
    replaced = {tuple(r[k] for k in key) for r in new}
    kept = [r for r in old if tuple(r.get(k) for k in key) not in replaced]
    return kept + new


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def write_markdown(path: Path, lines: list[str]) -> str:
    """Join ``lines`` into a markdown file at ``path``, print it, and return it."""
    md = "\n".join(lines) + "\n"
    path.write_text(md)
    print(md)
    return md


def machine() -> str:
    """The host a benchmark ran on: arch, cores, Python, and the CPU model with the x86
    extensions that decide float/bf16/int8 speed (hosts change between runs, so every result
    says which one it came from)."""
    import os

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; CPU {cpu_model()}: {cpu_isa()}")


def _cpuinfo_field(name: str) -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        if line.startswith(name):
            return line.split(":", 1)[1].strip()
    return ""


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def cpu_isa() -> str:
    """The vector extensions that matter here (AVX2, AVX-512, VNNI, AMX), from cpuinfo."""
    flags = set(_cpuinfo_field("flags").split())
    keep = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx_vnni")) or f == "avx2")
    return " ".join(keep) or "unknown"


def seed_std(values) -> float:
    """The spread over seeds every report quotes: the population std (``ddof=0``) of the
    per-seed values — one definition for all benchmarks."""
    return float(np.std(np.asarray(list(values), dtype=float)))


def mean_std(values) -> str:
    """``mean ± std`` over runs; a value that did not vary across seeds is one run, said
    so (never a repeated number shown as a spread of zero), and a spread below 0.0005 is
    shown to one significant digit (``± 0.0003``), not rounded to ``± 0.000``."""
    v = np.asarray(list(values), dtype=float)
    if len(v) > 1 and np.all(v == v[0]):
        return f"{v[0]:.3f} (1 run: same every seed)"
    if len(v) == 1:
        return f"{v[0]:.3f} (1 run)"
    sd = seed_std(v)
    if sd < 5e-4:  # it did vary: one significant digit rather than "± 0.000"
        return f"{v.mean():.3f} ± {sd:.1g}"
    return f"{v.mean():.3f} ± {sd:.3f}"


def with_std(mean: float, std: float | None, spec: str = ".3f") -> str:
    """A stored ``mean`` and ``std`` (None: one run) by ``mean_std``'s rules: a std of 0
    says the runs did not vary, and a std below the last shown digit gets one significant
    digit instead of ``± 0.000``."""
    if std is None:
        return f"{mean:{spec}}"
    if std == 0:
        return f"{mean:{spec}} (same every seed)"
    digits = int(spec.strip("f").lstrip(".") or 0)
    if std < 0.5 * 10 ** -digits:
        return f"{mean:{spec}} ± {std:.1g}"
    return f"{mean:{spec}} ± {std:{spec}}"


def group(records: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        out[tuple(r[k] for k in keys)].append(r)
    return out
