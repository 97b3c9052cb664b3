"""Uncertainty for results that come from training: intervals, and the cliff as a fitted T50.

Training is chaotic: the same seed gives other digits on another CPU, and a seed that learns a
task here may fail there. A figure over seeds is therefore reported with its interval, and a
conclusion is drawn only where the interval decides it:

- :func:`wilson`: the Wilson score interval of a success rate (Wilson 1927; Brown, Cai &
  DasGupta 2001 recommend it over the normal interval for small n).
- :func:`difference`: the interval of a difference of two success rates (Newcombe 1998).
- :func:`bootstrap_mean`: a percentile bootstrap interval of a mean (Efron & Tibshirani 1993).
- :func:`fit_t50`: the cliff as a measured quantity. ``P(success | T) = sigmoid(a + b log T)``
  is fitted to per-seed success by maximum likelihood (a weak ridge penalty keeps it finite when
  the grid separates successes from failures); ``T50 = exp(-a / b)`` is the length at which the
  probability crosses 1/2, with a percentile bootstrap interval over seeds, resampled within
  each length. The data cannot place the crossing more finely than the grid, so the interval
  always spans the bracket between a length that most seeds learn and the next longer one that
  most fail, each decided by its Wilson interval.

Statuses of a T50 (``T50.status``), decided by Wilson intervals at the grid lengths, so that a
seed or two flipping between machines does not turn one conclusion into another:

- "found": some length is learned (Wilson lower bound > 1/2) and a longer one is not (upper
  bound < 1/2), and the T50 interval lies within the grid;
- "beyond grid": the longest length is learned (lower bound > 1/2);
- "below grid": the shortest length is not (upper bound < 1/2);
- "inconclusive": none of these: more seeds, or another grid, could decide it.

numpy only; every function is deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bpttlab._util import ConfigError, jsonable

__all__ = [
    "T50",
    "T50_STATUSES",
    "bootstrap_mean",
    "difference",
    "fit_t50",
    "median_range",
    "wilson",
]

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal
T50_STATUSES = ("found", "beyond grid", "below grid", "inconclusive")


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95% for the default ``z``) of ``successes`` out of ``n``."""
    if n <= 0 or not 0 <= successes <= n:
        raise ConfigError("successes", (successes, n), "need 0 <= successes <= n and n >= 1")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 or 1 the bound is exactly 0 or 1; rounding must not move it
    return (0.0 if successes == 0 else centre - half, 1.0 if successes == n else centre + half)


def difference(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95% interval of ``k1/n1 - k2/n2`` by Newcombe's hybrid score method (Newcombe 1998,
    method 10): each rate's Wilson interval, combined. A difference is decided when the
    interval excludes 0."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))  # fmt: skip


def bootstrap_mean(
    values: Sequence[float], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN: no interval)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or not np.isfinite(x).all():
        return (math.nan, math.nan)
    if x.size == 1 or np.all(x == x[0]):
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (resamples, x.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return (float(low), float(high))


def median_range(values: Sequence[float | None]) -> dict[str, float | None]:
    """Median, min and max of the finite values: how a chaotic per-seed figure is shown."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return {"median": None, "min": None, "max": None}
    return {"median": float(np.median(x)), "min": float(x.min()), "max": float(x.max())}


@dataclass(frozen=True)
class T50:
    """The length at which the probability of success crosses 1/2, and how sure that is.

    ``estimate`` and ``low``/``high`` (95% bootstrap interval) are lengths; None where the data
    give none (an interval open on that side). ``statement`` reads "succeeds at 20 in 10/10,
    at 50 in 4/10".
    """

    estimate: float | None
    low: float | None
    high: float | None
    status: str
    statement: str

    def to_dict(self) -> dict[str, object]:
        return jsonable(asdict(self))


def _logistic_fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2) -> tuple[float, float]:
    """(a, b) maximising sum log-likelihood of y ~ sigmoid(a + b x) minus ridge (a^2 + b^2)/2,
    by Newton's method (the objective is strictly concave)."""
    w = np.zeros(2)
    X = np.stack([np.ones_like(x), x], axis=1)  # (n, 2)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (y - p) - ridge * w
        hess = -(X.T * (p * (1 - p))) @ X - ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def _crossing(x: np.ndarray, y: np.ndarray, centre: float) -> float:
    """T50 of one fit, on the log scale centred at ``centre``; +inf/-inf when the fitted curve
    never falls through 1/2 going longer (slope >= 0)."""
    a, b = _logistic_fit(x - centre, y)
    if b >= 0:
        return math.inf if a > 0 else -math.inf
    return centre - a / b


def fit_t50(
    lengths: Sequence[int],
    successes: Sequence[Sequence[bool]],
    resamples: int = 1000,
    seed: int = 0,
) -> T50:
    """Fit the cliff of one series.

    Arguments:
        lengths: the grid, one entry per length (any order; each length once).
        successes: per length, the per-seed outcomes (True = the seed learned the task).
        resamples: bootstrap resamples (seeds redrawn within each length).
    """
    order = np.argsort(lengths)
    L = [int(lengths[i]) for i in order]
    S = [[bool(s) for s in successes[i]] for i in order]
    if len(L) != len(set(L)) or any(not s for s in S):
        raise ConfigError("successes", successes, "one non-empty list of outcomes per length")
    k, n = [sum(s) for s in S], [len(s) for s in S]
    bounds = [wilson(ki, ni) for ki, ni in zip(k, n, strict=True)]
    statement = "succeeds " + ", ".join(
        f"at {length} in {ki}/{ni}" for length, ki, ni in zip(L, k, n, strict=True)
    )
    x = np.concatenate([np.full(len(s), math.log(length)) for length, s in zip(L, S, strict=True)])
    y = np.concatenate([np.asarray(s, dtype=np.float64) for s in S])
    centre = float(np.mean(np.log(L)))
    mixed = 0 < y.sum() < y.size
    estimate = _crossing(x, y, centre) if mixed else (math.inf if y.all() else -math.inf)
    # the bootstrap, stratified by length
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples if mixed else 0):
        yb = np.concatenate([rng.choice(np.asarray(s, dtype=np.float64), len(s)) for s in S])
        ok = 0 < yb.sum() < yb.size
        draws.append(_crossing(x, yb, centre) if ok else (math.inf if yb.all() else -math.inf))
    if draws:  # no interpolation between resamples: two infinite ones would make a NaN
        lo = float(np.quantile(draws, 0.025, method="lower"))
        hi = float(np.quantile(draws, 0.975, method="higher"))
    else:  # every seed at every length agrees: T50 lies beyond one end of the grid
        lo, hi = (math.log(L[-1]), math.inf) if y.all() else (-math.inf, math.log(L[0]))
    # the bracket of the crossing: between a length most seeds learn and a longer one most
    # fail (both decided by their Wilson intervals), the data cannot place it more finely
    learned = [i for i, (low, _) in enumerate(bounds) if low > 0.5]
    failed = [i for i, (_, high) in enumerate(bounds) if high < 0.5]
    if learned and any(j > learned[0] for j in failed):
        last = max(i for i in learned if any(j > i for j in failed))
        first = min(j for j in failed if j > last)
        lo, hi = min(lo, math.log(L[last])), max(hi, math.log(L[first]))
    inside = math.log(L[0]) <= lo and hi <= math.log(L[-1])
    if learned and learned[-1] == len(L) - 1:
        status = "beyond grid"
    elif failed and failed[0] == 0:
        status = "below grid"
    elif learned and any(j > learned[0] for j in failed) and inside and math.isfinite(estimate):
        status = "found"
    else:
        status = "inconclusive"

    def length(v: float) -> float | None:  # 6 digits: exp(log(20)) is 20, not 19.999999999999996
        return float(f"{math.exp(v):.6g}") if math.isfinite(v) else None

    est = length(estimate) if status in ("found", "inconclusive") else None
    return T50(est, length(lo), length(hi), status, statement)
