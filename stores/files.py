"""Atomic writes and content fingerprints.

Every file Curate writes goes through here: write into a temp path in the same folder,
flush and fsync, then ``os.replace`` onto the final name (atomic on POSIX), then fsync the
folder. A crash at any point leaves either the old file or the new one, never half of one.
Folders (a dataset, a selection) are built under a hidden temp name and renamed whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

TMP_PREFIX = ".tmp-"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on folders
        _fsync_path(path)


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` then move ``tmp`` onto ``path`` atomically; clean up on failure."""
    path = Path(path)
    tmp = _tmp_sibling(path)
    try:
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_parquet(path: str | Path, frame: pl.DataFrame) -> Path:
    return atomic_write(path, lambda p: frame.write_parquet(p, statistics=False))


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    def _save(p: Path) -> None:
        with open(p, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    return atomic_write(path, _save)


def write_frame(path: str | Path, frame: pl.DataFrame, fmt: str) -> Path:
    """Write a frame as parquet, csv or jsonl, atomically."""
    writers = {
        "parquet": lambda p: frame.write_parquet(p, statistics=False),
        "csv": lambda p: frame.write_csv(p),
        "jsonl": lambda p: frame.write_ndjson(p),
    }
    return atomic_write(path, writers[fmt])


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temp folder; on success rename it to ``final`` whole, on failure delete it.

    ``final`` must not exist yet: folders written this way are immutable.
    """
    final = Path(final)
    tmp = _tmp_sibling(final)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                _fsync_path(f)
        fsync_dir(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(final.parent)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
