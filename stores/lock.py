"""The store's reader/writer lock: ``<store>/.lock`` held with ``flock``.

DuckDB lets one process open a database file for writing, and then no other process may open
it at all ("Could not set lock on file …: Conflicting lock is held"). Curate's connections
are short, so instead of failing, every catalog connection first takes this lock: shared for
a read, exclusive for a write transaction (and for publishing a new artefact folder). A
writer waits for the others; a reader waits at most for one transaction. Waiting gives up
after ``timeout_s`` (default 120 s, ``$CURATE_LOCK_TIMEOUT``) with a clear ``StoreBusyError``.

The lock is re-entrant per thread: a thread that holds it exclusively may read and write
again without waiting for itself. ``flock`` locks are released by the kernel when a process
dies, so a killed writer never leaves the store locked. On a shared filesystem every node
must see the same ``flock`` (NFSv4, Lustre and CephFS do; see the README).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from core.errors import StoreError

LOCK_NAME = ".lock"
TIMEOUT_ENV = "CURATE_LOCK_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0


class StoreBusyError(StoreError):
    """Another process held the store's lock for longer than the timeout."""


_held = threading.local()  # root → [mode, depth, fd]


def _timeout(timeout_s: float | None) -> float:
    if timeout_s is not None:
        return timeout_s
    raw = os.environ.get(TIMEOUT_ENV)
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise StoreError(f"${TIMEOUT_ENV} must be a number of seconds; got {raw!r}") from None


@contextlib.contextmanager
def store_lock(root: Path, exclusive: bool, timeout_s: float | None = None) -> Iterator[None]:
    """Hold ``<root>/.lock`` shared (``exclusive=False``) or exclusively for the block."""
    key = str(Path(root))
    table = _held.__dict__.setdefault("locks", {})
    if key in table:
        mode, depth, fd = table[key]
        if mode == "ex" or not exclusive:  # already covered
            table[key][1] += 1
            try:
                yield
            finally:
                table[key][1] -= 1
            return
        raise StoreError("internal: a read of the store tried to start a write; "
                         "open the write first")
    fd = _open(Path(root) / LOCK_NAME, exclusive)
    if fd is None:  # read-only store on a read-only filesystem: nobody can write it
        yield
        return
    try:
        _acquire(fd, exclusive, _timeout(timeout_s), Path(root))
        table[key] = ["ex" if exclusive else "sh", 1, fd]
        try:
            yield
        finally:
            del table[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _open(path: Path, exclusive: bool) -> int | None:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES) and not exclusive:
            with contextlib.suppress(OSError):
                return os.open(path, os.O_RDONLY)
            return None
        raise StoreError(f"cannot open the store lock {path}: {exc.strerror}") from exc


def _acquire(fd: int, exclusive: bool, timeout_s: float, root: Path) -> None:
    flag = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            fcntl.flock(fd, flag | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"store {root} is busy: another curate process held its lock for more "
                    f"than {timeout_s:g} s; retry, or raise ${TIMEOUT_ENV}") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
