"""Curate: decide which data a model trains on.

    import curate
    sel = curate.select(method="cld", budget=0.1)          # default store and dataset
    sel.indices, sel.to_sampler(), curate.evaluate_selection(None, sel.id)
"""

from curate._version import __version__
from curate.api import load_selection, open_store, select
from curate.budget import largest_remainder, parse_budget, resolve_budget
from curate.errors import (
    BudgetError,
    CurateError,
    InvalidParameterError,
    MissingInputError,
    UnknownMethodError,
)
from curate.inputs import CandidateSignals, SelectionInput, load_input
from curate.selection import Provenance, Selection
from curate.selector import (
    Needs,
    Picks,
    Selector,
    available_methods,
    get_selector_class,
    make_selector,
    register,
)

# torch-backed parts load on first use (PEP 562): ``import curate`` — and every Ray worker
# that unpickles a task function from it — stays free of torch's ~3 s import
_LAZY = {"EvaluationReport": "curate.evaluate", "evaluate_selection": "curate.evaluate",
         "LossRecorder": "curate.signals", "ingest_signals": "curate.signals",
         "train_signals": "curate.signals", "compare": "curate.comparison",
         "write_report": "curate.comparison", "duplicate_groups": "curate.groups"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'curate' has no attribute {name!r}")

__all__ = [
    "BudgetError", "CandidateSignals", "CurateError", "EvaluationReport",
    "InvalidParameterError", "LossRecorder", "MissingInputError", "Needs", "Picks",
    "Provenance", "Selection", "SelectionInput", "Selector", "UnknownMethodError",
    "__version__", "available_methods", "compare", "duplicate_groups",
    "evaluate_selection", "get_selector_class",
    "ingest_signals", "largest_remainder", "load_input", "load_selection", "make_selector",
    "open_store", "parse_budget", "register", "resolve_budget", "select", "train_signals",
    "write_report",
]
