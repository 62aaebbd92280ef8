"""Curate's exception tree (public name). Catch ``CurateError`` for everything Curate explains
itself. The classes are defined once, in the bottom package ``core.errors`` (its docstring
draws the tree), and re-exported here: ``curate.errors.X is core.errors.X``."""

from core.errors import *  # noqa: F403
from core.errors import __all__  # noqa: F401
