"""Parameter validation shared by the selectors: one readable error per bad value."""

from __future__ import annotations

from typing import Any

import numpy as np

from curate.errors import InvalidParameterError


def check_bool(method: str, name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{method}: {name} must be true or false; got {value!r}")


def check_int(method: str, name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidParameterError(f"{method}: {name} must be an integer ≥ {minimum}; "
                                    f"got {value!r}")


def check_choice(method: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidParameterError(f"{method}: {name} must be one of {', '.join(allowed)}; "
                                    f"got {value!r}")
