"""Building blocks of coreset methods: vector summarisation and pluggable problems."""

from curate.coresets.caratheodory import caratheodory, fast_caratheodory
from curate.coresets.problems import (
    PROBLEMS,
    Problem,
    make_problem,
    numeric_targets,
    register_problem,
)
from curate.coresets.summarise import SUMMARISERS, summarise

__all__ = ["PROBLEMS", "SUMMARISERS", "Problem", "caratheodory", "fast_caratheodory",
           "numeric_targets", "register_problem",
           "make_problem", "summarise"]
