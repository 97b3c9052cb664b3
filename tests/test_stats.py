"""stats: Wilson intervals against their closed form and published values, the bootstrap, and
the T50 fit recovering a known cliff; statuses decided only where the intervals decide them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpttlab.stats import bootstrap_mean, difference, fit_t50, median_range, wilson


def test_wilson_matches_published_values() -> None:
    # Brown, Cai & DasGupta (2001), and Newcombe (1998) table I: 81/263 -> (0.2553, 0.3662)
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 500), data=st.data())
def test_wilson_is_the_root_pair_of_its_quadratic(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    low, high = wilson(k, n)
    z, p = 1.959963984540054, k / n
    assert 0 <= low <= p <= high <= 1
    for bound in (low, high):  # (p - q)^2 = z^2 q (1 - q) / n at both ends
        if 0 < bound < 1:
            assert (p - bound) ** 2 == pytest.approx(z * z * bound * (1 - bound) / n, rel=1e-9)


def test_bootstrap_mean_is_deterministic_and_brackets_the_mean() -> None:
    values = [0.5, 1.0, 1.0, 0.5, 1.0, 0.75]
    low, high = bootstrap_mean(values)
    assert low <= np.mean(values) <= high and (low, high) == bootstrap_mean(values)
    assert bootstrap_mean([0.3, 0.3]) == (0.3, 0.3)
    assert all(math.isnan(v) for v in bootstrap_mean([1.0, math.nan]))


def test_median_range_skips_missing_values() -> None:
    assert median_range([3.0, None, 1.0, math.inf, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert median_range([None]) == {"median": None, "min": None, "max": None}


def test_t50_recovers_a_known_cliff_from_many_seeds() -> None:
    rng = np.random.default_rng(0)
    lengths = [10, 20, 40, 80, 160]
    true = 40.0  # P(success) = sigmoid(-3 (log T - log 40))
    outcomes = [rng.random(400) < 1 / (1 + (n / true) ** 3) for n in lengths]
    t = fit_t50(lengths, outcomes)
    assert (
        t.status == "found" and t.low < true < t.high and t.estimate == pytest.approx(true, rel=0.1)
    )


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ([10, 10, 0], "found"),
        ([10, 10, 10], "beyond grid"),
        ([0, 0, 0], "below grid"),
        ([10, 10, 6], "inconclusive"),  # 6/10 at the longest: not decided either way
        ([10, 10, 4], "inconclusive"),
        ([5, 5, 5], "inconclusive"),
    ],
)
def test_statuses(counts: list[int], status: str) -> None:
    t = fit_t50([5, 20, 50], [[True] * k + [False] * (10 - k) for k in counts])
    assert t.status == status
    if status == "found":  # separated by the grid: the interval spans the whole bracket
        assert (t.low, t.high) == (20.0, 50.0) and 20 < t.estimate < 50
    if status == "beyond grid":
        assert t.estimate is None and t.low == 50.0 and t.high is None
    if status == "below grid":
        assert t.estimate is None and t.high == 5.0


def test_t50_refuses_malformed_input() -> None:
    with pytest.raises(ValueError, match="successes="):
        fit_t50([5, 5], [[True], [False]])
    with pytest.raises(ValueError, match="successes="):
        fit_t50([5], [[]])


def test_difference_matches_newcombes_worked_example() -> None:
    # Newcombe (1998), Table II, example (a): 56/70 - 48/80 -> (0.0524, 0.3339) by method 10
    low, high = difference(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    assert difference(5, 10, 5, 10)[0] < 0 < difference(5, 10, 5, 10)[1]
