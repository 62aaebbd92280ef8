"""Atomic writes and content fingerprints.

Every file Curate writes goes through here: write into a temp path in the same folder,
flush and fsync, then ``os.replace`` onto the final name (atomic on POSIX), then fsync the
folder. A crash at any point leaves either the old file or the new one, never half of one.
Folders (a dataset, a selection) are built under a hidden temp name and renamed whole.

Temp names carry the writer's host and pid (``.tmp-<host>-<pid>-<hex>-<name>``) so that
recovery (``stores.recovery``) removes only the leftovers of writers that are dead.

Fault injection: ``fault_point(step)`` kills the process on the spot (``os._exit(137)``, as
``kill -9`` would: no ``finally``, no cleanup) when ``$CURATE_FAULT_AT`` names that step. The
recovery tests use it to kill a writer at every step of every write path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

TMP_PREFIX = ".tmp-"
FAULT_ENV = "CURATE_FAULT_AT"
FAULT_STEPS = ("tmp-written", "fsynced", "renamed", "catalog-insert", "registered")
HOST = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"


def fault_point(step: str) -> None:
    """Die here, like ``kill -9``, when ``$CURATE_FAULT_AT`` names ``step`` (tests only)."""
    wanted = os.environ.get(FAULT_ENV)
    if wanted and step in wanted.split(","):
        os._exit(137)


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
    return path.with_name(f"{TMP_PREFIX}{HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}-{path.name}")


def tmp_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of the writer that made temp path ``name``; None for an unknown layout."""
    parts = name[len(TMP_PREFIX):].split("-", 3)
    if not name.startswith(TMP_PREFIX) or len(parts) < 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def owner_alive(owner: tuple[str, int] | None) -> bool:
    """Whether the writer of a temp path may still be running (True when unknowable)."""
    if owner is None:
        return False
    host, pid = owner
    if host != HOST:
        return True  # another node's writer: only its own host can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` then move ``tmp`` onto ``path`` atomically; clean up on failure."""
    path = Path(path)
    tmp = _tmp_sibling(path)
    try:
        write(tmp)
        fault_point("tmp-written")
        _fsync_path(tmp)
        fault_point("fsynced")
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
    with staged_dir(final) as tmp:
        yield tmp
        publish_dir(tmp, final)


@contextlib.contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield a fresh temp folder beside ``final``; it is deleted unless the body renamed it
    (``publish_dir``). Lets a caller build a folder outside a lock and publish it inside one."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish_dir(tmp: Path, final: Path) -> None:
    """fsync every file of ``tmp``, then rename it onto ``final`` (which must not exist)."""
    for f in tmp.rglob("*"):
        if f.is_file():
            _fsync_path(f)
    fault_point("fsynced")
    fsync_dir(tmp)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    fault_point("renamed")


def remove_path(path: Path) -> None:
    """Delete a file or folder if present (recovery, replaced versions)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


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


def enclosing_store(path: str | Path) -> Path | None:
    """The Curate store folder that ``path`` lies in (a folder holding ``catalog.duckdb``
    at or above it, symlinks resolved), or None."""
    p = Path(path).expanduser().absolute()
    real = Path(os.path.realpath(p))
    for candidate in (p, real):
        for folder in (candidate, *candidate.parents):
            if (folder / "catalog.duckdb").is_file():
                return folder
    return None


def check_output_path(path: str | Path, *, overwrite: bool = False,
                      what: str = "output") -> Path:
    """Refuse a user-given output path that would damage a store or a file: inside any
    Curate store, an existing file (unless ``overwrite``), a folder, or a missing parent.

    Raises ``UsageError``; returns the path unchanged otherwise.
    """
    from core.errors import UsageError

    path = Path(path)
    store = enclosing_store(path)
    if store is not None:
        raise UsageError(f"refusing to write {what} {path}: it is inside the Curate store "
                         f"{store}; write it outside the store")
    if path.is_dir():
        raise UsageError(f"cannot write {what} {path}: it is a folder; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {what} {path}: folder {path.parent} does not exist")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise UsageError(f"refusing to overwrite {path}: it exists; pass --overwrite "
                             "(overwrite=True) to replace it")
    return path
