"""``python -m curate.cli``."""

from curate.cli import run

run()
