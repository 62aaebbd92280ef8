"""Micro-batching for the service: concurrent single queries become one batched model call.

The diffusion retriever's cost at batch 1 is dominated by per-call overhead (11 network
evaluations of a small transformer), while at batch 64 it is ~1–2 ms a query
(benchmarks/results/fanout.md); the text encoder is the same (one MiniLM call per request was
the service's text-query bottleneck), and so are ``ascent``'s vectorised search and the
objectives' pool search and scoring (``FanoutEngine._score_batch``). The worker
thread shares the GIL with the request threads: a call that re-takes the GIL many times (an
eager torch model: once per operator) waits for it each time, which is why the diffusion
sampler runs traced (``SetDiffusion.compiled_sampler``) and ``curate serve`` shortens the
switch interval (``retrieval.service.set_switch_interval``).

``MicroBatcher`` lets request threads ``submit`` one item each (a query vector, or a tuple of
texts for the encoder); a worker thread takes whatever is queued (up to ``max_batch``, waiting
at most ``max_wait_s`` for more after the first), runs ``fn`` on ``stack(items)`` (default: the
stacked (B, d) float32 batch) and hands each caller its row ``out[i]`` of the answer. Errors in
``fn`` reach every caller of that batch. ``stats()`` counts the calls, the items they held and
the seconds ``fn`` ran (the service's /healthz reports them: the mean batch says whether
concurrent queries really share calls).

``submit(item, deadline)`` gives up at ``deadline`` (a ``time.monotonic()`` instant) with
``DeadlineExceededError``: an item still queued is dropped (it never reaches ``fn``); one whose
batch is already running is waited for (a batch is short), so no caller returns while work
started for it is still running.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from core.errors import DeadlineExceededError


def stack_vectors(items: list[Any]) -> np.ndarray:
    """(B, d) float32 from B query vectors (d,)."""
    return np.stack([np.asarray(v, dtype=np.float32) for v in items])


class MicroBatcher:
    def __init__(self, fn: Callable[[Any], Any], *, max_batch: int = 64,
                 max_wait_s: float = 0.002, stack: Callable[[list], Any] = stack_vectors,
                 name: str = "micro-batcher", thread_init: Callable[[], Any] | None = None):
        """``thread_init``: run in the worker thread at its start (per-thread settings, e.g.
        ``retrieval.service.limit_kernel_threads``)."""
        self.fn, self.max_batch, self.max_wait_s, self.stack = fn, max_batch, max_wait_s, stack
        self.thread_init = thread_init
        self._queue: queue.Queue[tuple[Any, Future]] = queue.Queue()
        self.batches = self.items = 0
        self.busy_s = 0.0
        threading.Thread(target=self._work, daemon=True, name=name).start()

    def submit(self, item: Any, deadline: float | None = None) -> Any:
        """Block until the batch holding ``item`` has run; return its answer row."""
        fut: Future = Future()
        self._queue.put((item, fut))
        if deadline is None:
            return fut.result()
        try:
            return fut.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            if not fut.cancel():        # its batch is running: wait for it to end
                fut.exception()
            raise DeadlineExceededError("the query ran past its deadline while waiting for "
                                        "a batched model call") from None

    def _take(self) -> list[tuple[Any, Future]]:
        """The next batch: the first queued item, then whatever arrives within max_wait_s;
        items whose caller gave up are dropped."""
        items = [self._queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(items) < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                items.append(self._queue.get(timeout=left) if left > 0
                             else self._queue.get_nowait())
            except queue.Empty:
                break
        return [(x, fut) for x, fut in items if fut.set_running_or_notify_cancel()]

    def _work(self) -> None:
        if self.thread_init is not None:
            self.thread_init()
        while True:
            items = self._take()
            if items:
                self._run(items)

    def stats(self) -> dict[str, float]:
        """Calls run so far, the items they held and the seconds ``fn`` took in all."""
        return {"calls": self.batches, "items": self.items, "busy_s": round(self.busy_s, 6)}

    def _run(self, items: list[tuple[Any, Future]]) -> None:
        t0 = time.perf_counter()
        try:
            out, error = self.fn(self.stack([x for x, _ in items])), None
        except Exception as exc:   # noqa: BLE001 — handed to the waiting callers
            out, error = None, exc
        self.busy_s += time.perf_counter() - t0      # counted before any caller is answered
        self.batches += 1
        self.items += len(items)
        for i, (_, fut) in enumerate(items):
            try:
                if error is None:
                    fut.set_result(out[i])
                else:
                    fut.set_exception(error)
            except Exception as exc:   # noqa: BLE001 — e.g. fn returned too few rows
                if not fut.done():
                    fut.set_exception(exc)
