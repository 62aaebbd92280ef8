"""The root of Curate's exception tree, shared by every package.

``stores`` sits at the bottom of the dependency graph, so the base classes live here and
``curate.errors`` re-exports them next to the selection-specific ones::

    CurateError                      any failure Curate explains in one line (exit 1)
    ├── UsageError                   the caller's input is wrong (exit 2)
    │   ├── InvalidParameterError    a parameter is unknown, of the wrong type or out of range
    │   ├── SchemaError              a file or table lacks what is needed / is malformed
    │   ├── EmptyDatasetError        nothing to work on
    │   ├── NotFoundError            unknown dataset, selection, embedding or signal
    │   └── AlreadyExistsError       a name that is already taken
    └── StoreError                   the workspace itself is unusable or a write failed

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
    """A parameter is unknown, of the wrong type, or out of range (``curate.errors`` adds
    ``BudgetError`` below it)."""


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
