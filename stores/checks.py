"""Checks shared by every package, at the bottom of the dependency graph.

``stores`` uses neither ``curate`` nor ``retrieval``, so a check that all three need lives
here (``curate.checks`` re-exports it). Each raises ``InvalidParameterError`` with one line:
what, where, what is allowed, what was given.

- ``check_seed(seed, where="seed")``: a seed is an integer (Python or NumPy, never a bool)
  in [0, 2**63). The upper bound is that of a signed 64-bit column (the catalog stores seeds
  as DuckDB BIGINT); checking it first means a bad seed fails before any work is done,
  instead of after a whole selection when the catalog refuses to store it.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from stores.errors import InvalidParameterError

#: seeds are stored as signed 64-bit integers: 0 ≤ seed < SEED_LIMIT
SEED_LIMIT = 2**63


def check_seed(seed: Any, where: str = "seed") -> int:
    """Return ``seed`` as a Python int if it is an integer in [0, 2**63); else raise
    ``InvalidParameterError`` naming ``where`` (e.g. ``"seed"``, ``"IngestSpec.seed"``).

    Booleans, floats (even ``3.0``), strings and None are refused, not coerced.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise InvalidParameterError(f"{where} must be an integer in [0, 2**63); "
                                    f"got {seed!r} ({type(seed).__name__})")
    value = int(seed)
    if not 0 <= value < SEED_LIMIT:
        raise InvalidParameterError(f"{where} must be an integer in [0, 2**63); got {value}")
    return value


__all__ = ["SEED_LIMIT", "check_seed"]
