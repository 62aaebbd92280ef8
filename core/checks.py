"""Parameter validation shared by every package (``core`` is the bottom of the dependency
graph; ``curate.checks`` re-exports this module): one readable error per bad value ("X must
be ...; got Y"). Values are refused, never coerced: ``"5"`` is
not an integer, ``True`` is not a count, ``3.0`` is not a number of strata.

- ``check_seed``: an integer in [0, 2**63), not a bool (the catalog stores seeds as DuckDB
  BIGINT; checking first means a bad seed fails before any work is done).
- ``check_bool`` / ``check_int`` / ``check_number`` / ``check_choice``: type and range.
- ``check_annotated``: the type a constructor annotation names (``bool``, ``int``,
  ``float``, ``str``, unions of them with ``None``); the ``Selector`` base class applies it
  to every keyword parameter, so a method only checks ranges.
- ``check_memory``: refuse an allocation whose size follows from a user-given parameter
  (epochs, neighbours, Monte-Carlo samples, ...) when it would exceed ``MAX_ALLOC_BYTES``,
  *before* allocating — the error names the parameter and the size it would need.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from typing import Any

import numpy as np

from core.errors import InvalidParameterError

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


#: the largest array a parameter may make Curate allocate (bytes); raise it deliberately
#: (``core.checks.MAX_ALLOC_BYTES = ...``) on a machine with more memory
MAX_ALLOC_BYTES = 8 * 2**30


def _prefix(method: str) -> str:
    return f"{method}: " if method else ""


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool. (``type(value) is int`` first: the common
    case skips the ABC and bool checks; the service checks a dozen values a request.)"""
    return type(value) is int or (isinstance(value, numbers.Integral)
                                  and not isinstance(value, (bool, np.bool_)))


def is_number(value: Any) -> bool:
    """A real number (int or float, Python or NumPy), not a bool."""
    return type(value) in (int, float) or (isinstance(value, numbers.Real)
                                           and not isinstance(value, (bool, np.bool_)))


def check_bool(method: str, name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{_prefix(method)}{name} must be true or false; "
                                    f"got {value!r}")


def check_int(method: str, name: str, value: Any, minimum: int = 1,
              maximum: int | None = None) -> None:
    """An integer (not a bool, not a float) in [minimum, maximum]."""
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        allowed = (f"an integer ≥ {minimum}" if maximum is None
                   else f"an integer in [{minimum}, {maximum}]")
        raise InvalidParameterError(f"{_prefix(method)}{name} must be {allowed}; "
                                    f"got {value!r}")


def check_number(method: str, name: str, value: Any, low: float = -math.inf,
                 high: float = math.inf, *, low_open: bool = False,
                 high_open: bool = False) -> None:
    """A finite real number (not a bool, not a string) in the interval given."""
    ok = is_number(value) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        interval = (f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
                    if math.isfinite(low) or math.isfinite(high) else "")
        allowed = f"a finite number in {interval}" if interval else "a finite number"
        raise InvalidParameterError(f"{_prefix(method)}{name} must be {allowed}; "
                                    f"got {value!r}")


def did_you_mean(name: Any, known, cutoff: float = 0.5) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``known`` to ``name`` (difflib), else
    ``""`` — the one wording of every registry's unknown-name error."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_choice(method: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidParameterError(f"{_prefix(method)}{name} must be one of "
                                    f"{', '.join(allowed)}; got {value!r}")


_KINDS = {bool: ("true or false", lambda v: isinstance(v, (bool, np.bool_))),
          int: ("an integer", is_int),
          float: ("a number", is_number),
          str: ("a string", lambda v: isinstance(v, str))}


def check_annotated(method: str, name: str, value: Any, annotation: Any) -> None:
    """Refuse ``value`` unless it has a type ``annotation`` names (``bool``, ``int``,
    ``float`` — which also takes ints —, ``str``, or a union of them with ``None``).
    Annotations naming other types are not checked here."""
    members = (typing.get_args(annotation)
               if isinstance(annotation, types.UnionType)
               or typing.get_origin(annotation) is typing.Union else (annotation,))
    if any(m not in _KINDS and m is not type(None) for m in members):
        return
    if value is None and type(None) in members:
        return
    if any(_KINDS[m][1](value) for m in members if m in _KINDS):
        return
    wanted = " or ".join([_KINDS[m][0] for m in members if m in _KINDS]
                         + (["None"] if type(None) in members else []))
    raise InvalidParameterError(f"{_prefix(method)}{name} must be {wanted}; "
                                f"got {value!r} ({type(value).__name__})")


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def count_duplicates(values: Any) -> int:
    """How many entries of a 1-D array repeat an earlier one (``len − #distinct``), by one
    sort: NumPy 2.4's hash-based ``np.unique`` took 0.5–40 s on 1M distinct int64 row ids
    here, a sort takes ~0.05 s (the row-id checks run on every selection)."""
    a = np.sort(np.asarray(values).ravel())
    return int(np.count_nonzero(a[1:] == a[:-1])) if len(a) > 1 else 0


def check_memory(what: str, n_bytes: float, hint: str = "") -> None:
    """Refuse to allocate ``n_bytes`` (computed from a parameter and the data's size) when
    it exceeds ``MAX_ALLOC_BYTES``. ``what`` names the parameter and the data, e.g.
    ``"signals: epochs=1000000 for 18 rows"``."""
    if n_bytes > MAX_ALLOC_BYTES:
        tail = f"; {hint}" if hint else ""
        raise InvalidParameterError(f"{what} would need {format_bytes(n_bytes)} of memory, "
                                    f"more than the limit of {format_bytes(MAX_ALLOC_BYTES)}"
                                    f" (core.checks.MAX_ALLOC_BYTES){tail}")


__all__ = ["MAX_ALLOC_BYTES", "SEED_LIMIT", "check_annotated", "check_bool", "check_choice",
           "check_int", "check_memory", "check_number", "check_seed", "count_duplicates",
           "did_you_mean", "format_bytes", "is_int", "is_number"]
