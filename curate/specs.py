"""Text forms of method parameters, shared by the CLI and ``curate.compare``.

``key=value`` items (``--param``) and method specs (``el2n:policy=ccs:beta=0.1``): a
registered method's name, then ``:``-separated ``key=value`` parameters. Values are coerced
to ``bool`` (``true``/``false``), ``None`` (``none``/``null``), ``int``, ``float``, else kept
as text; the selector itself then validates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curate.errors import InvalidParameterError


def coerce(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def parse_params(items: list[str] | None, *, what: str = "--param") -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(f"{what} must look like key=value; got {item!r}")
        params[key.strip()] = coerce(raw.strip())
    return params


@dataclass(frozen=True)
class MethodSpec:
    """One method with its parameters; ``label`` is the spec as written (``el2n:policy=ccs``)."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @classmethod
    def parse(cls, text: str) -> MethodSpec:
        name, *items = [p.strip() for p in str(text).strip().split(":")]
        if not name:
            raise InvalidParameterError(f"a method spec must start with a method name; got "
                                        f"{text!r}")
        params = parse_params(items, what=f"a parameter of {name!r}")
        label = ":".join([name, *(f"{k}={v}" for k, v in params.items())])
        return cls(method=name, params=params, label=label)


def parse_list(text: str | list[str], what: str) -> list[str]:
    """``"a,b , c"`` or ``["a", "b"]`` → ``["a", "b", "c"]`` (no empty items)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [str(i).strip() for i in items if str(i).strip()]
    if not items:
        raise InvalidParameterError(f"{what}: give at least one; got {text!r}")
    return items
