"""``cliff()``: accuracy against length for each architecture, and where each one falls off.

Definitions (shared with ``tbptt_sweep``):

- accuracy: on held-out sequences (``training.evaluate``: ``8 x batch_size`` fresh samples from
  a generator seeded ``seed ^ 0x5EED5EED``), in the task's own sense (argmax, or |error| < 0.04
  on the adding task). A diverged run has none and counts as a failure.
- success: a seed whose accuracy clears ``chance + margin * (1 - chance)`` (margin 0.5: halfway
  from chance to perfect). Per (series, length): the success rate with its Wilson 95% interval
  and the mean accuracy with a bootstrap 95% interval (``stats``).
- T50: the length at which the probability of success crosses 1/2, from a logistic fit against
  log T with a bootstrap interval, and its status ("found", "beyond grid", "below grid",
  "inconclusive"; ``stats.fit_t50``). This is the cliff as a measured quantity.
- ``cliffs`` (kept from the first version): the first length whose mean accuracy fails the line.

A series is an architecture under one condition; the conditions that change the answer are
axes: ``optimizers``, ``steps`` (the training budget) and ``tasks`` (e.g. copy-bit with and
without noise); the initialisation is part of the architecture spec (``lstm:forget_bias=one``).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bpttlab._util import ConfigError, check_bool, check_choice, check_float, check_int
from bpttlab.experiments._runs import Budget, RunConfig, Runner, experiment
from bpttlab.models import parse_arch
from bpttlab.stats import bootstrap_mean, fit_t50, median_range, wilson
from bpttlab.tasks import parse_task
from bpttlab.training import OPTIMIZERS

__all__ = [
    "CliffConfig",
    "CliffResult",
    "Series",
    "cliff",
    "find_cliff",
    "grid_search",
    "success_threshold",
]

Row = dict[str, Any]


def success_threshold(chance: float, margin: float = 0.5) -> float:
    """``chance + margin * (1 - chance)``: the accuracy that beats chance by a clear margin."""
    check_float("margin", margin, low=0, high=1, low_open=True, high_open=True)
    return chance + margin * (1.0 - chance)


def find_cliff(
    accuracy_of_length: Callable[[int], float],
    lengths: Iterable[int],
    chance: float | Callable[[int], float],
    margin: float = 0.5,
    refine: bool = False,
) -> int | None:
    """The first length whose accuracy does not beat chance by a clear margin; None if none.

    Grid lengths are tried in increasing order, stopping at the first failure (NaN fails). With
    ``refine`` the cliff is bisected between the last grid length that passed and the first
    that failed, down to one step (``ceil(log2(gap))`` more calls), assuming accuracy falls
    monotonically there. A failure at the smallest grid length returns that length.

    Arguments:
        accuracy_of_length: length -> accuracy (e.g. the mean over seeds); called lazily.
        chance: the chance accuracy, or length -> chance where it depends on the length.
    """
    chance_of = chance if callable(chance) else (lambda _length: chance)

    def passes(length: int) -> bool:
        return accuracy_of_length(length) >= success_threshold(chance_of(length), margin)

    passed: int | None = None
    for length in sorted(set(lengths)):
        if not passes(length):
            break
        passed = length
    else:
        return None
    failed = length
    while refine and passed is not None and failed - passed > 1:
        mid = (passed + failed) // 2
        passed, failed = (mid, failed) if passes(mid) else (passed, mid)
    return failed


@dataclass(frozen=True)
class Series:
    """One curve of a grid: an architecture spec under one budget (``label`` names it)."""

    label: str
    spec: str
    budget: Budget
    train_kw: tuple[tuple[str, Any], ...] = ()

    def run(self, length: int, seed: int) -> RunConfig:
        return self.budget.run(self.spec, length, seed, **dict(self.train_kw))


def _chance(budget: Budget, length: int) -> float:
    return budget.task_at(length).chance


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def cell_stats(results: Sequence[Row], threshold: float) -> Row:
    """One (series, length) over its seeds: accuracies with their interval, success count and
    rate with its Wilson interval, and the chaotic per-seed ``||dL/dh_0||`` as median and range.
    A run without an accuracy (diverged: None) makes the mean NaN and counts as a failure."""
    acc = [_number(r["accuracy"]) for r in results]
    finite = [a for a in acc if math.isfinite(a)] or [math.nan]
    wins = sum(a >= threshold for a in acc)
    low, high = wilson(wins, len(acc))
    acc_low, acc_high = bootstrap_mean(acc)
    return {
        "accuracy_mean": statistics.fmean(acc), "accuracy_min": min(finite),
        "accuracy_max": max(finite), "accuracy_low": acc_low, "accuracy_high": acc_high,
        "success_rate": wins / len(acc), "successes": wins, "success_low": low,
        "success_high": high, "seeds": len(acc), "threshold": threshold, "accuracies": acc,
        "grad_h0_init": median_range([r["grad_h0_init"] for r in results]),
        "grad_h0_final": median_range([r["grad_h0_final"] for r in results]),
    }  # fmt: skip


def grid_search(
    series: Sequence[Series],
    lengths: Sequence[int],
    seeds: Sequence[int],
    margin: float,
    refine: bool,
    run: Runner,
) -> tuple[list[Row], dict[str, int | None], dict[str, Any]]:
    """Train every series at every length and seed, all in one pool; then find each cliff
    (training the lengths a bisection asks for) and fit each T50.

    Returns rows (by series, then length; ``grid`` False for bisection lengths), cliffs
    (label -> length | None) and T50s (label -> ``T50.to_dict()``).
    """
    by_label = {s.label: s for s in series}
    results: dict[tuple[str, int], list[Row]] = {}

    def measure(pairs: list[tuple[str, int]]) -> None:
        pairs = sorted(pairs, key=lambda p: -p[1])  # longest first: the pool's tail stays short
        out = iter(run([by_label[label].run(n, seed) for label, n in pairs for seed in seeds]))
        for pair in pairs:
            results[pair] = [next(out) for _ in seeds]

    def threshold(label: str, length: int) -> float:
        return success_threshold(by_label[label].budget.task_at(length).chance, margin)

    def mean_accuracy(label: str, length: int) -> float:
        if (label, length) not in results:
            measure([(label, length)])
        return statistics.fmean(_number(r["accuracy"]) for r in results[label, length])

    measure([(s.label, n) for s in series for n in lengths])
    cliffs: dict[str, int | None] = {}
    for s in series:
        accuracy: Callable[[int], float] = functools.partial(mean_accuracy, s.label)
        chance: Callable[[int], float] = functools.partial(_chance, s.budget)
        cliffs[s.label] = find_cliff(accuracy, lengths, chance, margin, refine)
    rows, t50 = [], {}
    for s in series:
        measured = sorted(n for (label, n) in results if label == s.label)
        cells = {n: cell_stats(results[s.label, n], threshold(s.label, n)) for n in measured}
        for n in measured:
            rows.append({"arch": s.spec, "series": s.label, "length": n, "grid": n in lengths,
                         "optimizer": s.budget.optimizer, "steps": s.budget.steps,
                         "task": s.budget.task, **cells[n]})  # fmt: skip
        outcomes = [[a >= cells[n]["threshold"] for a in cells[n]["accuracies"]] for n in measured]
        t50[s.label] = fit_t50(measured, outcomes).to_dict()
    return rows, cliffs, t50


def _tuple(field_name: str, values: Iterable[Any], check: Callable[[str, Any], Any]) -> tuple:
    items = tuple(values)
    if not items:
        raise ConfigError(field_name, list(items), "give at least one value")
    return tuple(check(field_name, v) for v in items)


def _seed(name: str, value: Any) -> int:
    return check_int(name, value, 0, 2**32 - 1)


@dataclass(frozen=True)
class CliffConfig:
    """A cliff grid: ``archs`` x conditions, at every length, over ``seeds``.

    Defaults: the lesson's exercise (rnn and lstm at T = 5, 20, 50; 500 Adam steps at 1e-2 on
    one fixed batch of 256, hidden 32), over 10 seeds. ``optimizers``, ``steps`` and ``tasks``
    are axes (empty: the budget's one value); every series gets the same budget otherwise.
    """

    archs: tuple[str, ...] = ("rnn", "lstm")
    lengths: tuple[int, ...] = (5, 20, 50)
    seeds: tuple[int, ...] = tuple(range(10))
    refine: bool = False
    margin: float = 0.5
    budget: Budget = field(default_factory=Budget)
    optimizers: tuple[str, ...] = ()
    steps: tuple[int, ...] = ()
    tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        def spec(name: str, value: Any) -> str:
            parse_arch(value, name)
            return str(value).strip()

        def task(name: str, value: Any) -> str:
            parse_task(value, name)
            return str(value).strip()

        set_ = object.__setattr__
        set_(self, "archs", tuple(dict.fromkeys(_tuple("archs", self.archs, spec))))
        set_(self, "lengths", tuple(sorted(set(_tuple("lengths", self.lengths, check_int)))))
        set_(self, "seeds", tuple(dict.fromkeys(_tuple("seeds", self.seeds, _seed))))
        check_bool("refine", self.refine)
        set_(self, "margin", check_float("margin", self.margin, low=0, high=1, low_open=True,
                                         high_open=True))  # fmt: skip
        opt = lambda k, v: check_choice(k, v, OPTIMIZERS)  # noqa: E731
        for name, check in (("optimizers", opt), ("steps", check_int), ("tasks", task)):
            values = getattr(self, name)
            set_(self, name, tuple(dict.fromkeys(_tuple(name, values, check))) if values else ())
        for s in self.series():
            s.budget.check_lengths(self.lengths)
            for n in self.lengths:  # every run fits in memory (RunConfig checks)
                s.run(n, self.seeds[0])

    def series(self) -> list[Series]:
        """Every architecture under every combination of the axes, labelled by what varies."""
        b = self.budget
        opts, steps = self.optimizers or (b.optimizer,), self.steps or (b.steps,)
        tasks = self.tasks or (b.task,)
        out = []
        for arch in self.archs:
            for o in opts:
                for st in steps:
                    for t in tasks:
                        parts = [o] * (len(opts) > 1) + [f"{st} steps"] * (len(steps) > 1)
                        parts += [t] * (len(tasks) > 1)
                        label = arch + (f" [{', '.join(parts)}]" if parts else "")
                        budget = replace(b, optimizer=o, steps=st, task=t)
                        out.append(Series(label, arch, budget))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budget"] = self.budget.to_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CliffConfig:
        d: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**{**d, "budget": Budget.from_dict(data["budget"])})


@dataclass(frozen=True)
class CliffResult:
    """``rows``: per series and length, the statistics of ``cell_stats`` plus arch, series,
    length, grid, optimizer, steps, task; ``cliffs``: series -> first failing length | None;
    ``t50``: series -> ``T50.to_dict()``; ``budget``: what every series got."""

    rows: list[Row]
    cliffs: dict[str, int | None]
    t50: dict[str, dict[str, Any]]
    budget: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CliffResult:
        return cls(**data)

    def figure(self) -> Any:
        """Success rate and accuracy against T with T50: a plotly figure (the report extra)."""
        from bpttlab.views.figures import cliff_figure

        return cliff_figure(self.to_dict())

    def _repr_html_(self) -> str:
        """Jupyter shows the figure."""
        from bpttlab.views.figures import notebook_html

        return notebook_html(self.figure())


def cliff(
    config: CliffConfig | None = None, runner: Runner | None = None, **run: Any
) -> CliffResult:
    """Run a cliff grid (``CliffConfig()``: the lesson's exercise). ``runner`` (or its fields as
    keywords: store, force, workers, progress, executor, address) says how runs are run; with
    a store every run is kept, an interrupted grid resumes and a finished one is read back."""
    config = config or CliffConfig()
    runner = runner or Runner(**run)

    def compute() -> dict[str, Any]:
        rows, cliffs, t50 = grid_search(config.series(), config.lengths, config.seeds,
                                        config.margin, config.refine, runner)  # fmt: skip
        budget = runner.budget(config.budget, config.seeds, lengths=list(config.lengths),
                               margin=config.margin, refine=config.refine)  # fmt: skip
        return CliffResult(rows, cliffs, t50, budget).to_dict()

    return CliffResult.from_dict(experiment(runner, "cliff", config, compute))
