"""Micro-batching for the service: concurrent single queries become one batched model call.

The diffusion retriever's cost at batch 1 is dominated by per-call overhead (11 network
evaluations of a small transformer: ~18 ms on 2 cores), while at batch 64 it is ~2 ms a query
(benchmarks/results/fanout.md). ``MicroBatcher`` lets request threads ``submit`` one query
vector each; a worker thread takes whatever is queued (up to ``max_batch``, waiting at most
``max_wait_s`` for more after the first), runs ``fn`` on the stacked (B, d) batch and hands
each caller its row of the (B, k) answer. Errors in ``fn`` reach every caller of that batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np


class MicroBatcher:
    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 64,
                 max_wait_s: float = 0.002):
        self.fn, self.max_batch, self.max_wait_s = fn, max_batch, max_wait_s
        self._queue: queue.Queue[tuple[np.ndarray, Future]] = queue.Queue()
        self.batches = 0
        threading.Thread(target=self._work, daemon=True, name="micro-batcher").start()

    def submit(self, vector: np.ndarray) -> np.ndarray:
        """Block until the batch holding ``vector`` (d,) has run; return its answer row."""
        fut: Future = Future()
        self._queue.put((np.asarray(vector, dtype=np.float32), fut))
        return fut.result()

    def _work(self) -> None:
        while True:
            items = [self._queue.get()]
            deadline = time.perf_counter() + self.max_wait_s
            while len(items) < self.max_batch:
                left = deadline - time.perf_counter()
                try:
                    items.append(self._queue.get(timeout=max(left, 0)) if left > 0
                                 else self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                out = self.fn(np.stack([v for v, _ in items]))
                for i, (_, fut) in enumerate(items):
                    fut.set_result(out[i])
            except Exception as exc:   # noqa: BLE001 — handed to the waiting callers
                for _, fut in items:
                    fut.set_exception(exc)
            self.batches += 1
