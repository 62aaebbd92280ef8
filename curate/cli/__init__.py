"""The ``curate`` command line: parse, call one library function, print.

Every command takes ``--json`` (machine-readable output on stdout). Errors print one line
to stderr and exit 2 (bad usage or input) or 1 (runtime failure); ``--debug`` anywhere on the
command line shows the traceback instead. Progress bars go to stderr and are off with --json.

``app`` (the root Typer app and its sub-apps, shared options and output helpers) lives in
``curate.cli.app``; the commands register themselves on it from one module per area
(``data``, ``selection``, ``evaluation``, ``signals``, ``subsets``, ``fanout``), imported
here; ``main``/``run`` are in ``curate.cli.main``.
"""

from curate.cli import data, evaluation, fanout, selection, signals, subsets  # noqa: F401
from curate.cli.app import app
from curate.cli.main import main, run

__all__ = ["app", "main", "run"]
