"""Progress bars (rich, on stderr) for anything that can take more than a few seconds.

Library functions take ``progress: bool``; the CLI turns it on unless ``--json`` or
``--quiet`` is given. Bars are drawn only on a terminal-like stderr.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)


class _NullBar:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, **kwargs) -> None:
        pass


class _Bar:
    def __init__(self, progress: Progress, task) -> None:
        self._p, self._t = progress, task

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)

    def update(self, **kwargs) -> None:
        self._p.update(self._t, **kwargs)


@contextlib.contextmanager
def bar(description: str, total: int | None, enabled: bool = True) -> Iterator[_Bar | _NullBar]:
    """``with bar("embedding", total=n) as b: ... b.advance(batch)``."""
    if not enabled or not _console.is_terminal:  # no bar in logs, pipes and tests
        yield _NullBar()
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=_console, transient=False) as p:
        yield _Bar(p, p.add_task(description, total=total))
