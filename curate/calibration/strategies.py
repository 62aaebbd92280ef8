"""The calibration-set strategies: one interface, one registry (``STRATEGIES``), as
``Selector``/``REGISTRY`` is for selection methods. Liu et al., ACL 2023.

A strategy is registered under its mode and name with ``@strategy(mode, name, ...)``::

    relevance:    choose(inst, k, rng)          -> k positions (inst.n > k is guaranteed;
                                                   smaller instances are padded first)
    faithfulness: choose(inst, sides, rng)      -> positions: the forced reference, the
                                                   positives, then 2 negatives

Subset searches (margin, diversity, surprise, extractive gap) declare a ``cap``: they score
every subset when there are at most ``cap``, else ``cap`` subsets drawn uniformly (seeded) —
never more, so memory and time are bounded by the cap whatever the instance size. Faithfulness
searches draw their capped sample *by rank* (lexicographic unranking of pairs × pairs), so
the O(|pos|²·|neg|²) list is never built and the draw equals indexing that list.
``needs_source`` marks strategies that need the instance's ``source`` document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from curate.calibration import features as F
from curate.checks import did_you_mean
from curate.errors import InvalidParameterError, SchemaError

SET_SIZE = 4  # the paper's calibration set size: always allowed, padded if need be
MODES = ("relevance", "faithfulness")
REFERENCE_POLICIES = ("positive", "ensure", "remove")


@dataclass
class Instance:
    """One instance's candidates as arrays (positions 0..n−1)."""

    ids: np.ndarray
    role: np.ndarray
    score: np.ndarray
    likelihood: np.ndarray
    model_rank: np.ndarray
    toks: list
    density: np.ndarray | None

    @property
    def n(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Sides:
    """A faithfulness instance split by role under a reference policy."""

    pos: np.ndarray       # positions usable as positives
    neg: np.ndarray       # positions of negatives
    forced: np.ndarray    # the reference that is always a positive ("ensure"), or empty
    n_pos: int            # positives still to choose (2 − len(forced))


@dataclass(frozen=True)
class Strategy:
    mode: str
    name: str
    choose: Callable[..., np.ndarray]
    cap: int | None = None          # subsets scored at most (subset searches)
    needs_source: bool = False


STRATEGIES: dict[tuple[str, str], Strategy] = {}


def strategy(mode: str, name: str, *, cap: int | None = None, needs_source: bool = False):
    """Register ``choose`` as strategy ``name`` of ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")

    def deco(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        if (mode, name) in STRATEGIES:
            raise ValueError(f"calibration strategy {mode}/{name} is registered twice")
        STRATEGIES[(mode, name)] = Strategy(mode, name, fn, cap, needs_source)
        return fn
    return deco


def names(mode: str) -> tuple[str, ...]:
    return tuple(n for m, n in STRATEGIES if m == mode)


def get_strategy(mode: str, name: str) -> Strategy:
    if (mode, name) not in STRATEGIES:
        raise InvalidParameterError(f"{mode} strategy must be one of {', '.join(names(mode))}; "
                                    f"got {name!r}{did_you_mean(name, names(mode))}")
    return STRATEGIES[(mode, name)]


# -- shared pieces -------------------------------------------------------------------------

def pad(chosen: np.ndarray, pool: np.ndarray, k: int, order_key: np.ndarray) -> np.ndarray:
    """Duplicate candidates (best score first, cycling) until there are k."""
    if len(chosen) >= k:
        return chosen
    cycle = pool[np.argsort(-order_key[pool], kind="stable")]
    extra = np.resize(cycle, k - len(chosen)) if len(cycle) else np.array([], dtype=int)
    return np.concatenate([chosen, extra])


def _subsets(pool: np.ndarray, k: int, cap: int, rng: np.random.Generator) -> list:
    if comb(len(pool), k) <= cap:
        return [np.array(c) for c in combinations(pool, k)]
    return [np.sort(rng.choice(pool, size=k, replace=False)) for _ in range(cap)]


def _best(cands: list, objective, maximise: bool) -> np.ndarray:
    values = np.array([objective(c) for c in cands])
    return cands[int(np.argmax(values) if maximise else np.argmin(values))]


def sides(inst: Instance, reference: str) -> Sides:
    is_ref = inst.role == "reference"
    pos = np.flatnonzero((inst.role == "positive") | (is_ref & (reference != "remove")))
    neg = np.flatnonzero(inst.role == "negative")
    forced = np.array([], dtype=int)
    if reference == "ensure" and is_ref.any():
        refs = np.flatnonzero(is_ref)
        forced = refs[np.argsort(-inst.score[refs], kind="stable")][:1]
        pos = pos[pos != forced[0]]
    return Sides(pos, neg, forced, 2 - len(forced))


# -- relevance: k ranked candidates --------------------------------------------------------

def _by_score(inst: Instance) -> np.ndarray:
    return np.argsort(-inst.score, kind="stable")


@strategy("relevance", "random")
def _rel_random(inst, k, rng):
    return rng.choice(np.arange(inst.n), size=k, replace=False)


@strategy("relevance", "extreme")
def _rel_extreme(inst, k, rng):
    order = _by_score(inst)
    return np.concatenate([order[: (k + 1) // 2], order[::-1][: k // 2]])


@strategy("relevance", "average")
def _rel_average(inst, k, rng):
    return np.argsort(np.abs(inst.score - inst.score.mean()), kind="stable")[:k]


@strategy("relevance", "max_metric")
def _rel_max_metric(inst, k, rng):
    return _by_score(inst)[:k]


@strategy("relevance", "min_metric")
def _rel_min_metric(inst, k, rng):
    return _by_score(inst)[::-1][:k]


def _register_search(kind: str, cap: int, objective) -> None:
    for direction in ("max", "min"):
        def choose(inst, k, rng, _max=(direction == "max"), _cap=cap):
            return _best(_subsets(np.arange(inst.n), k, _cap, rng),
                         lambda s: objective(inst, s), _max)
        strategy("relevance", f"{direction}_{kind}", cap=cap)(choose)


_register_search("margin", 5000, lambda inst, s: F.margin(inst.score[s]))
_register_search("diversity", 200, lambda inst, s: F.diversity([inst.toks[i] for i in s]))


@strategy("relevance", "top_beam")
def _rel_top_beam(inst, k, rng):
    return np.argsort(inst.model_rank, kind="stable")[:k]


@strategy("relevance", "bottom_beam")
def _rel_bottom_beam(inst, k, rng):
    return np.argsort(inst.model_rank, kind="stable")[::-1][:k]


@strategy("relevance", "wide_beam")
def _rel_wide_beam(inst, k, rng):
    by_rank = np.argsort(inst.model_rank, kind="stable")
    return by_rank[np.round(np.linspace(0, inst.n - 1, k)).astype(int)]


_register_search("surprise", 100,
                 lambda inst, s: F.surprise(inst.score[s], inst.model_rank[s]))


def _length(inst: Instance) -> np.ndarray:
    return np.array([len(t) for t in inst.toks])


@strategy("relevance", "long")
def _rel_long(inst, k, rng):
    return np.argsort(-_length(inst), kind="stable")[:k]


@strategy("relevance", "short")
def _rel_short(inst, k, rng):
    return np.argsort(_length(inst), kind="stable")[:k]


# -- faithfulness: 2 positives + 2 negatives -----------------------------------------------

def _pairs(pool: np.ndarray, m: int, score: np.ndarray) -> list:
    if len(pool) <= m:
        return [pad(pool, pool, m, score)]
    return [np.array(c) for c in combinations(pool, m)]


def _n_pairs(pool: np.ndarray, m: int) -> int:
    return 1 if len(pool) <= m else comb(len(pool), m)


def _pair(pool: np.ndarray, m: int, r: int, score: np.ndarray) -> np.ndarray:
    """The r-th entry of ``_pairs(pool, m)`` without listing them (lexicographic unranking,
    the order of itertools.combinations)."""
    if len(pool) <= m:
        return pad(pool, pool, m, score)
    out, start = [], 0
    for left in range(m, 0, -1):
        for i in range(start, len(pool)):
            c = comb(len(pool) - i - 1, left - 1)
            if r < c:
                out.append(pool[i])
                start = i + 1
                break
            r -= c
    return np.array(out)


def _assemble(inst: Instance, sd: Sides, p, q) -> np.ndarray:
    p = pad(np.asarray(p, dtype=int), sd.pos, sd.n_pos, inst.score)
    q = pad(np.asarray(q, dtype=int), sd.neg, 2, inst.score)
    return np.concatenate([sd.forced, p, q])


@strategy("faithfulness", "random")
def _f_random(inst, sd, rng):
    p = rng.choice(sd.pos, sd.n_pos, replace=False) if len(sd.pos) > sd.n_pos else sd.pos
    q = rng.choice(sd.neg, 2, replace=False) if len(sd.neg) > 2 else sd.neg
    return _assemble(inst, sd, p, q)


@strategy("faithfulness", "average")
def _f_average(inst, sd, rng):
    def near_mean(pool, m):
        if not len(pool):
            return pool
        return pool[np.argsort(np.abs(inst.score[pool] - inst.score[pool].mean()))[:m]]
    return _assemble(inst, sd, near_mean(sd.pos, sd.n_pos), near_mean(sd.neg, 2))


def _search_combos(inst: Instance, sd: Sides, cap: int, rng) -> list:
    n_a, n_b = _n_pairs(sd.pos, sd.n_pos), _n_pairs(sd.neg, 2)
    if n_a * n_b <= cap:
        return [np.concatenate([sd.forced, a, b]) for a in _pairs(sd.pos, sd.n_pos, inst.score)
                for b in _pairs(sd.neg, 2, inst.score)]
    if n_a * n_b < 2**62:
        return [np.concatenate([sd.forced, _pair(sd.pos, sd.n_pos, a, inst.score),
                                _pair(sd.neg, 2, b, inst.score)])
                for a, b in (divmod(int(r), n_b)
                             for r in rng.choice(n_a * n_b, cap, replace=False))]
    # astronomically many: independent uniform draws
    return [np.concatenate([sd.forced, np.sort(rng.choice(sd.pos, sd.n_pos, replace=False)),
                            np.sort(rng.choice(sd.neg, 2, replace=False))])
            for _ in range(cap)]


def _register_faithful_search(kind: str, cap: int, needs_source: bool = False) -> None:
    for direction in ("max", "min"):
        def choose(inst, sd, rng, _max=(direction == "max"), _cap=cap,
                   _name=f"{direction}_{kind}"):
            if kind == "extractive_gap" and inst.density is None:
                raise SchemaError(f"strategy {_name!r} needs a 'source' column "
                                  "(the document each candidate is extracted from)")
            combos = _search_combos(inst, sd, _cap, rng)
            npos = len(sd.forced) + (sd.n_pos if len(sd.pos) else 0)  # no positives: all neg

            def objective(s):
                if kind == "diversity":
                    return F.diversity([inst.toks[i] for i in s])
                if npos == 0 or npos == len(s):  # one side empty: nothing to compare
                    return float("nan")
                if kind == "margin":
                    return inst.score[s[:npos]].mean() - inst.score[s[npos:]].mean()
                return inst.density[s[npos:]].mean() - inst.density[s[:npos]].mean()
            return _best(combos, objective, _max)
        strategy("faithfulness", f"{direction}_{kind}", cap=cap,
                 needs_source=needs_source)(choose)


_register_faithful_search("margin", 5000)
_register_faithful_search("diversity", 200)


def _ordered(inst: Instance, sd: Sides) -> tuple[np.ndarray, np.ndarray]:
    return (sd.pos[np.argsort(-inst.score[sd.pos], kind="stable")],
            sd.neg[np.argsort(inst.score[sd.neg], kind="stable")])


@strategy("faithfulness", "easy")
def _f_easy(inst, sd, rng):   # best positives, worst negatives
    p, q = _ordered(inst, sd)
    return _assemble(inst, sd, p[: sd.n_pos], q[:2])


@strategy("faithfulness", "hard")
def _f_hard(inst, sd, rng):   # worst positives, best negatives
    p, q = _ordered(inst, sd)
    return _assemble(inst, sd, p[::-1][: sd.n_pos], q[::-1][:2])


_register_faithful_search("extractive_gap", 5000, needs_source=True)


def choose(mode: str, name: str, inst: Instance, k: int, rng: np.random.Generator,
           reference: str = "positive") -> np.ndarray:
    """Run a registered strategy on one instance: k positions (relevance; an instance with
    at most k candidates is padded by duplication) or forced + positives + 2 negatives."""
    s = get_strategy(mode, name)
    if mode == "relevance":
        if inst.n <= k:
            allp = np.arange(inst.n)
            return pad(allp, allp, k, inst.score)
        return np.asarray(s.choose(inst, k, rng), dtype=int)
    return np.asarray(s.choose(inst, sides(inst, reference), rng), dtype=int)
