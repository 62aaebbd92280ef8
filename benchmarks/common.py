"""Helpers shared by the benchmark scripts: result files and the markdown tables."""

from __future__ import annotations

import json
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


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


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def mean_std(values) -> str:
    v = np.asarray(list(values), dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}"


def group(records: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        out[tuple(r[k] for k in keys)].append(r)
    return out
