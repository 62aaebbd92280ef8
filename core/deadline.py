"""Cooperative deadlines: a query's work stops soon after its deadline, wherever it is.

The service gives each request a deadline (``time.monotonic()`` instant); a request past it
gets a 504 at once, and its worker thread must stop too, or it keeps a concurrency slot for
as long as the search runs (a teacher at best-of-64 with 20 CEM rounds: ~1 s; ``ascent`` at
10 sweeps over 2,000 candidates and k = 100: ~3 s). Python cannot kill a thread, so the
long loops check instead: ``FanoutEngine.query`` runs its work inside
``deadline_scope(deadline)``, and every loop whose step can be long calls
``checkpoint(stage)`` once a step (a CEM round, a coordinate-ascent slot, a DPP pick, a
sampler step), which raises ``DeadlineExceededError`` once the deadline has passed. The
deadline is a ``ContextVar``, so it belongs to the thread (and asyncio task) that set it:
a shared micro-batch thread runs with none and is never cut off midway (its items are
dropped before it starts, ``retrieval.batching``). Outside a scope ``checkpoint`` costs one
``ContextVar.get``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from core.errors import DeadlineExceededError

_DEADLINE: ContextVar[float | None] = ContextVar("curate_deadline", default=None)


def check_deadline(deadline: float | None, stage: str) -> None:
    """Raise ``DeadlineExceededError`` when ``deadline`` (``time.monotonic()``) has passed."""
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceededError(f"the query ran past its deadline ({stage})")


@contextlib.contextmanager
def deadline_scope(deadline: float | None) -> Iterator[None]:
    """Make ``deadline`` the current one for ``checkpoint`` calls in this context; scopes
    nest, and the earlier deadline wins (None adds none: a query without its own deadline
    run inside a caller's scope keeps the caller's). The previous one comes back on exit."""
    outer = _DEADLINE.get()
    if outer is not None and (deadline is None or outer < deadline):
        deadline = outer
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def checkpoint(stage: str) -> None:
    """Inside a long loop: raise ``DeadlineExceededError`` if the current deadline passed."""
    check_deadline(_DEADLINE.get(), stage)
