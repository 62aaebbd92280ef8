"""Golden cases for the budget rule and largest-remainder quotas."""

import numpy as np
import pytest

from curate.budget import largest_remainder, parse_budget, resolve_budget
from curate.errors import BudgetError


@pytest.mark.parametrize("budget,n,k", [(0.1, 100, 10), (0.105, 100, 11), (0.104, 100, 10),
                                        (1.0, 7, 7), (0.001, 100, 1), (1, 5, 1), (5, 5, 5),
                                        (np.int64(3), 5, 3), (np.float64(0.5), 4, 2)])
def test_resolve_budget(budget, n, k):
    assert resolve_budget(budget, n) == k


@pytest.mark.parametrize("budget", [0, 0.0, -3, -0.5, 1.5, 6, float("nan"), float("inf"),
                                    True, False, "0.1", None])
def test_resolve_budget_rejects(budget):
    with pytest.raises(BudgetError, match="budget must be"):
        resolve_budget(budget, 5)


def test_error_message_names_range_and_value():
    with pytest.raises(BudgetError) as exc:
        resolve_budget(1.5, 20000)
    assert str(exc.value) == ("budget must be a fraction in (0, 1] or a count in [1, 20000]; "
                              "got 1.5")


@pytest.mark.parametrize("text,value", [("100", 100), ("0.1", 0.1), ("1.0", 1.0), ("1", 1),
                                        ("1e-2", 0.01), (" 7 ", 7), ("-3", -3)])
def test_parse_budget(text, value):
    got = parse_budget(text)
    assert got == value and type(got) is type(value)


def test_parse_budget_rejects_words():
    with pytest.raises(BudgetError, match="'abc'"):
        parse_budget("abc")


def test_largest_remainder_hand_computed():
    # shares 2.5, 1.5, 1.0 → floors 2,1,1; one unit left; tie .5/.5 → the larger class.
    assert largest_remainder(np.array([5, 3, 2]), 5).tolist() == [3, 1, 1]
    # shares 3.33, 3.33, 3.33 → 3,3,3 and one unit to the first (ties → lower index)
    assert largest_remainder(np.array([10, 10, 10]), 10).tolist() == [4, 3, 3]
    # shares 0.6, 0.3, 0.1 of 1 → the largest remainder wins
    assert largest_remainder(np.array([6, 3, 1]), 1).tolist() == [1, 0, 0]
    assert largest_remainder(np.array([6, 3, 1]), 10).tolist() == [6, 3, 1]
    assert largest_remainder(np.array([6, 3, 1]), 0).tolist() == [0, 0, 0]


def test_largest_remainder_sums_exactly_and_respects_sizes():
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = rng.integers(0, 50, size=rng.integers(1, 10))
        k = int(rng.integers(0, sizes.sum() + 1))
        q = largest_remainder(sizes, k)
        assert q.sum() == k and (q <= sizes).all() and (q >= 0).all()
