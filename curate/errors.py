"""Curate's exception tree. Catch ``CurateError`` for everything Curate explains itself.

::

    CurateError                        exit 1 in the CLI
    ├── UsageError                     exit 2: the input is wrong
    │   ├── InvalidParameterError      a method/option parameter is out of range or unknown
    │   │   └── BudgetError            budget is not a fraction in (0, 1] or a count in [1, N]
    │   ├── UnknownMethodError         no such selector (suggests the closest name)
    │   ├── MissingInputError          the method needs labels/embeddings/signals the data lacks
    │   ├── SchemaError                a file or table is malformed
    │   ├── EmptyDatasetError          nothing to select from
    │   ├── NotFoundError              unknown dataset/selection/embedding/signal
    │   └── AlreadyExistsError         a name already taken
    └── StoreError                     the workspace is unusable or a write failed

The base classes live in ``stores.errors`` (the lowest layer) and are re-exported here.
"""

from __future__ import annotations

from stores.errors import (
    AlreadyExistsError,
    CurateError,
    EmptyDatasetError,
    NotFoundError,
    SchemaError,
    StoreError,
    UsageError,
)


class InvalidParameterError(UsageError):
    """A parameter is unknown, of the wrong type, or out of range."""


class BudgetError(InvalidParameterError):
    """The budget cannot be resolved against the number of candidates."""


class UnknownMethodError(UsageError):
    """No selector is registered under that name."""


class MissingInputError(UsageError):
    """The method needs an input (labels, embeddings, signals, ...) that the data lacks."""


__all__ = [
    "AlreadyExistsError", "BudgetError", "CurateError", "EmptyDatasetError",
    "InvalidParameterError", "MissingInputError", "NotFoundError", "SchemaError",
    "StoreError", "UnknownMethodError", "UsageError",
]
