"""The root of Curate's exception tree, shared by every package.

``core`` sits at the bottom of the dependency graph (``core`` ← ``stores`` ← ``curate``,
``retrieval``), so the whole tree lives here; ``curate.errors`` re-exports it (the public
name users catch)::

    CurateError                        exit 1 in the CLI
    ├── UsageError                     exit 2: the input is wrong
    │   ├── InvalidParameterError      a method/option parameter is out of range or unknown
    │   │   └── BudgetError            budget is not a fraction in (0, 1] or a count in [1, N]
    │   ├── UnknownMethodError         no such selector/retriever (suggests the closest name)
    │   ├── MissingInputError          the method needs labels/embeddings/signals the data lacks
    │   ├── DegenerateInputError       the input is well-formed but carries nothing to rank by
    │   ├── SchemaError                a file or table is malformed
    │   ├── EmptyDatasetError          nothing to select from
    │   ├── NotFoundError              unknown dataset/selection/embedding/signal
    │   └── AlreadyExistsError         a name already taken
    ├── StoreError                     the workspace is unusable or a write failed
    └── DeadlineExceededError          a query ran past its deadline (the service's timeout)

Messages say what, where, what is allowed and what was given.
"""

from __future__ import annotations


class CurateError(Exception):
    """Base class: a failure Curate can explain in one line."""

    exit_code = 1


class UsageError(CurateError):
    """The input (arguments, files, parameters) is wrong; fixing it is the caller's move."""

    exit_code = 2


class InvalidParameterError(UsageError):
    """A parameter is unknown, of the wrong type, or out of range."""


class SchemaError(UsageError):
    """A file or table is malformed or lacks a required column."""


class EmptyDatasetError(UsageError):
    """A dataset, file or candidate set has no rows."""


class NotFoundError(UsageError):
    """A named dataset, selection, embedding or signal does not exist."""


class AlreadyExistsError(UsageError):
    """A dataset or artefact with that name already exists."""


class StoreError(CurateError):
    """The workspace is missing, corrupt, or a write could not complete."""


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
    """A query was stopped because it ran past its deadline (``core.deadline``)."""


#: what loading a stored model's weights and settings raises when they do not fit this code
MODEL_LOAD_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, OSError)


def unreadable_model(kind: str, model_id: str, exc: BaseException) -> SchemaError:
    """The one-line error for a stored ``kind`` model this code cannot load (e.g. written by
    an older Curate): what, why (the cause's text on one line) and the fix."""
    return SchemaError(f"{kind} model {model_id!r} is unreadable ({type(exc).__name__}: "
                       f"{' '.join(str(exc).split())}); train it again")


__all__ = [
    "AlreadyExistsError", "BudgetError", "CurateError", "DeadlineExceededError",
    "DegenerateInputError", "EmptyDatasetError",
    "InvalidParameterError", "MissingInputError", "NotFoundError", "SchemaError",
    "StoreError", "UnknownMethodError", "UsageError", "MODEL_LOAD_ERRORS", "unreadable_model",
]
