"""Curate's exception tree. Catch ``CurateError`` for everything Curate explains itself.

::

    CurateError                        exit 1 in the CLI
    ├── UsageError                     exit 2: the input is wrong
    │   ├── InvalidParameterError      a method/option parameter is out of range or unknown
    │   │   └── BudgetError            budget is not a fraction in (0, 1] or a count in [1, N]
    │   ├── UnknownMethodError         no such selector (suggests the closest name)
    │   ├── MissingInputError          the method needs labels/embeddings/signals the data lacks
    │   ├── DegenerateInputError       the input is well-formed but carries nothing to rank by
    │   ├── SchemaError                a file or table is malformed
    │   ├── EmptyDatasetError          nothing to select from
    │   ├── NotFoundError              unknown dataset/selection/embedding/signal
    │   └── AlreadyExistsError         a name already taken
    ├── StoreError                     the workspace is unusable or a write failed
    └── DeadlineExceededError          a query ran past its deadline (the service's timeout)

The base classes (and ``InvalidParameterError``, which ``stores.checks`` raises) live in
``stores.errors`` (the lowest layer) and are re-exported here: ``curate.errors.X is
stores.errors.X``.
"""

from __future__ import annotations

from stores.errors import (
    AlreadyExistsError,
    CurateError,
    EmptyDatasetError,
    InvalidParameterError,
    NotFoundError,
    SchemaError,
    StoreError,
    UsageError,
)


class BudgetError(InvalidParameterError):
    """The budget cannot be resolved against the number of candidates."""


class UnknownMethodError(UsageError):
    """No selector is registered under that name."""


class MissingInputError(UsageError):
    """The method needs an input (labels, embeddings, signals, ...) that the data lacks."""


class DegenerateInputError(UsageError):
    """The input is well-formed but carries no information the method could rank by (e.g.
    CLD on flat loss trajectories, or a proxy trained on a single class): any answer would
    be arbitrary, so Curate refuses instead of returning one silently."""


class DeadlineExceededError(CurateError):
    """A query was stopped because it ran past its deadline (checked between stages)."""


__all__ = [
    "AlreadyExistsError", "BudgetError", "CurateError", "DeadlineExceededError",
    "DegenerateInputError", "EmptyDatasetError",
    "InvalidParameterError", "MissingInputError", "NotFoundError", "SchemaError",
    "StoreError", "UnknownMethodError", "UsageError",
]
