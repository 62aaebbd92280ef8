"""Parameter validation (public name): defined once in the bottom package ``core.checks``
(its docstring lists the checks) and re-exported here for ``curate`` code."""

from core.checks import *  # noqa: F403
from core.checks import (  # noqa: F401  (private helpers some callers use)
    _KINDS,
    _prefix,
)
