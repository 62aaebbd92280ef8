"""Executors: where the parallel stages of a request run — in this process or on Ray.

One interface, two implementations, one registry (``EXECUTORS``)::

    executor.map(fn, items, shared=...) -> [fn(item, shared) for item in items]   (in order)

``fn`` is a module-level function (Ray pickles it by reference); ``shared`` is a dict of the
arrays every task reads. Results come back in the order of ``items``, so a stage gives the
same answer whatever the number of workers or tasks — the determinism every caller relies
on (``local`` and ``ray`` give byte-identical selections).

- ``local`` (default): runs the tasks one after another in this process. Needs no Ray.
- ``ray``: one Ray task per item (``max_retries``: a worker that dies — killed, out of
  memory, node lost — has its task re-run by Ray, and tasks are pure functions, so the
  result is unchanged). ``shared`` is put into the object store once; a whole memory-mapped
  ``.npy`` is shipped as its path (``Mapped``) and opened again on the worker, so a 5 GB
  embedding matrix is never copied into the object store: the store's root must be a path
  every node sees (a shared filesystem). ``RAY_ADDRESS`` or ``address=`` picks a running
  cluster; otherwise a local one is started with ``num_cpus``. Ray is imported only here,
  only when this executor is built (``pip install -e ".[ray]"``).

No scheduler, queue or socket of our own: Ray does the distribution. Workers never write to
the catalog or to a published folder: the only worker writes are an ingest's shard tasks
filling their row ranges of the staged (unpublished) ``vectors.npy``. The driver validates,
writes the catalog and publishes, atomically, after every task has succeeded — a failed
stage leaves the store exactly as it was.

Chosen by ``executor=`` in Python, ``--executor`` on the CLI, or ``$CURATE_EXECUTOR``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from core.errors import CurateError, InvalidParameterError, UsageError
from core.progress import bar

ENV = "CURATE_EXECUTOR"
#: tests only: a folder; while it holds a file ``armed``, the first task (or encoder-actor
#: call) to take it dies like ``kill -9``, so a test can kill one worker mid-stage and watch
#: Ray retry it; a file ``fail`` makes the first taker raise instead (a job that fails)
KILL_ENV = "CURATE_KILL_TASK"


def injected_fault() -> None:
    """Act on the ``KILL_ENV`` test hook, if set (see there); a no-op otherwise."""
    folder = os.environ.get(KILL_ENV)
    if not folder:
        return
    for name in ("armed", "fail"):
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            continue
        if name == "armed":
            os._exit(137)
        raise RuntimeError("injected failure (the KILL_ENV test hook)")


class MissingDependencyError(UsageError):
    """An optional extra (e.g. Ray) is not installed."""


class Executor:
    """Base class; see the module docstring."""

    name: ClassVar[str] = ""

    def map(self, fn: Callable[[Any, dict[str, Any]], Any], items: Sequence[Any], *,
            shared: dict[str, Any] | None = None, desc: str = "") -> list[Any]:
        raise NotImplementedError

    @property
    def workers(self) -> int:
        """How many tasks can run at once (callers size their parts from it)."""
        return 1

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers}


class LocalExecutor(Executor):
    """Every task in this process, in order."""

    name = "local"

    def map(self, fn, items, *, shared=None, desc=""):
        shared = shared or {}
        out = []
        with bar(desc or "tasks", total=len(items), enabled=bool(desc)) as b:
            for item in items:
                out.append(fn(item, shared))
                b.advance(1)
        return out


@dataclass(frozen=True)
class Mapped:
    """A whole memory-mapped ``.npy`` file, shipped to a worker as its path."""

    path: str

    def open(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r", allow_pickle=False)


def ship(value: Any) -> Any:
    """A ``Mapped`` for an array that is a whole ``.npy`` memory map; the value otherwise."""
    if isinstance(value, np.memmap) and value.filename and value.flags.c_contiguous:
        try:
            whole = value.offset + value.nbytes == os.path.getsize(value.filename)
        except OSError:
            whole = False
        if whole and str(value.filename).endswith(".npy"):
            return Mapped(str(value.filename))
    return value


def unship(value: Any) -> Any:
    return value.open() if isinstance(value, Mapped) else value


def _run_task(fn, item, shared):
    injected_fault()
    return fn(item, {k: unship(v) for k, v in shared.items()})


class RayExecutor(Executor):
    """Ray tasks; see the module docstring."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 max_retries: int = 3):
        try:
            import ray
        except ImportError:
            raise MissingDependencyError(
                "the ray executor needs Ray: pip install -e \".[ray]\" (or use "
                "--executor local)") from None
        self._ray = ray
        self.max_retries = max_retries
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS") or None
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
                # workers import curate with the driver's environment (offline model files)
                kwargs["runtime_env"] = {"env_vars": {
                    k: v for k, v in os.environ.items()
                    if k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", KILL_ENV)}}
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"could not connect to Ray at {address!r}: "
                                 f"{str(exc).splitlines()[0]}") from None

    @property
    def workers(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def map(self, fn, items, *, shared=None, desc=""):
        ray = self._ray
        if not items:
            return []
        ref = ray.put({k: ship(v) for k, v in (shared or {}).items()})
        task = ray.remote(max_retries=self.max_retries, retry_exceptions=False)(_run_task)
        pending = [task.remote(fn, item, ref) for item in items]
        index = {r: i for i, r in enumerate(pending)}
        out: list[Any] = [None] * len(items)
        try:
            with bar(desc or "tasks", total=len(items), enabled=bool(desc)) as b:
                left = list(pending)
                while left:
                    done, left = ray.wait(left, num_returns=1)
                    out[index[done[0]]] = ray.get(done[0])
                    b.advance(1)
        except ray.exceptions.RayTaskError as exc:
            # no ray.cancel(force=True) of the rest: a reply arriving for a force-cancelled
            # task aborts the driver in Ray 2.60 ("Tried to complete task that was not
            # pending"). The other tasks finish on their own; they write only into the
            # staged folder, which the caller removes.
            cause = getattr(exc, "cause", None)
            if isinstance(cause, CurateError):
                raise cause from None
            raise
        return out


EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def get_executor(spec: str | Executor | None = None, *, address: str | None = None) -> Executor:
    """An ``Executor`` from a name (``local`` | ``ray``), an instance, or ``$CURATE_EXECUTOR``
    (default ``local``). ``address`` (a Ray cluster) implies ``ray``."""
    if isinstance(spec, Executor):
        return spec
    name = spec or os.environ.get(ENV) or ("ray" if address else "local")
    if not isinstance(name, str) or name.lower() not in EXECUTORS:
        raise InvalidParameterError(f"executor must be one of {', '.join(EXECUTORS)}; "
                                    f"got {name!r}")
    name = name.lower()
    if name == "ray":
        return RayExecutor(address)
    if address:
        raise InvalidParameterError("--ray-address needs --executor ray")
    return LocalExecutor()


def spans(n: int, size: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of at most ``size`` covering 0..n (the tasks of a chunked stage)."""
    return [(lo, min(lo + size, n)) for lo in range(0, n, max(1, size))]
