"""``tbptt_sweep()``: the truncation window k against the longest dependency learned.

For each window k, ``arch`` is trained with ``tbptt=k`` (the state is detached every k steps;
Williams & Peng 1990) at every length. The answer sits at step 0 and is read at step T - 1, so a
gradient reaches it only while T <= k (``grad_h0`` is exactly 0 beyond). The expectation is that
the longest length learned is about k; it need not be: the weights are shared, so recurrent
weights that learn to keep the signal over the last k steps keep it over earlier ones too, and
the forward pass may carry it further than any gradient goes. Success, T50 and intervals are
those of ``cliff`` (each window is a series); a window >= the longest length is full BPTT.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from bpttlab._util import ConfigError, check_bool, check_float, check_int
from bpttlab.experiments._runs import Budget, Runner, experiment
from bpttlab.experiments.cliff import Series, grid_search
from bpttlab.models import parse_arch
from bpttlab.training import check_tbptt

__all__ = ["TbpttConfig", "TbpttResult", "tbptt_sweep"]

# Bengio et al. 1994's latch (noise 0.2), fresh batches of 64, 300 Adam steps.
TBPTT_BUDGET = Budget(task="latch", steps=300, batch_size=64, fixed_batch=False)


def _ints(name: str, values: Any, minimum: int = 1) -> tuple[int, ...]:
    items = tuple(values)
    if not items:
        raise ConfigError(name, [], "give at least one value")
    return tuple(sorted({check_int(name, v, minimum) for v in items}))


@dataclass(frozen=True)
class TbpttConfig:
    """``arch`` trained with truncation ``windows`` at ``lengths`` over ``seeds``."""

    arch: str = "rnn"
    windows: tuple[int, ...] = (4, 8, 16)
    lengths: tuple[int, ...] = (4, 8, 12, 16, 24, 32)
    seeds: tuple[int, ...] = tuple(range(6))
    refine: bool = False
    margin: float = 0.5
    budget: Budget = field(default_factory=lambda: TBPTT_BUDGET)

    def __post_init__(self) -> None:
        parse_arch(self.arch)
        object.__setattr__(self, "arch", self.arch.strip())
        object.__setattr__(self, "windows", _ints("windows", self.windows))
        object.__setattr__(self, "lengths", _ints("lengths", self.lengths))
        seeds = tuple(dict.fromkeys(check_int("seeds", s, 0, 2**32 - 1) for s in self.seeds))
        if not seeds:
            raise ConfigError("seeds", [], "give at least one seed")
        object.__setattr__(self, "seeds", seeds)
        check_bool("refine", self.refine)
        check_float("margin", self.margin, low=0, high=1, low_open=True, high_open=True)
        self.budget.check_lengths(self.lengths)
        for n in self.lengths:  # every run fits in memory (RunConfig checks)
            self.budget.run(self.arch, n, 0, tbptt=self.windows[0])
        with torch.random.fork_rng():  # a throwaway model, the global generator left alone
            check_tbptt(self.budget.run(self.arch, self.lengths[0], 0).make_model(0))

    def to_dict(self) -> dict[str, Any]:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {**d, "budget": self.budget.to_dict()}


@dataclass(frozen=True)
class TbpttResult:
    """``rows``: cliff rows with ``window`` (the series); ``longest_learned``: window -> the
    grid length before the mean accuracy's cliff (None if even the shortest fails);
    ``t50``: window -> ``T50.to_dict()``; ``budget``."""

    rows: list[dict[str, Any]]
    longest_learned: dict[str, int | None]
    t50: dict[str, dict[str, Any]]
    budget: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TbpttResult:
        return cls(**data)

    def figure(self) -> Any:
        """Each window's cliff: a plotly figure (the report extra)."""
        from bpttlab.views.figures import tbptt_figure

        return tbptt_figure(self.to_dict())

    def _repr_html_(self) -> str:
        """Jupyter shows the figure."""
        from bpttlab.views.figures import notebook_html

        return notebook_html(self.figure())


def _longest_learned(cliff_at: int | None, lengths: tuple[int, ...], refine: bool) -> int | None:
    """The longest length learned, given the cliff: the grid length before it (or one less)."""
    if cliff_at is None:
        return lengths[-1]
    if refine and cliff_at > lengths[0]:
        return cliff_at - 1
    shorter = [n for n in lengths if n < cliff_at]
    return shorter[-1] if shorter else None


def tbptt_sweep(
    config: TbpttConfig | None = None, runner: Runner | None = None, **run: Any
) -> TbpttResult:
    """Run the sweep (``TbpttConfig()``: a tanh rnn on latch); ``runner`` or its fields."""
    config = config or TbpttConfig()
    runner = runner or Runner(**run)

    def compute() -> dict[str, Any]:
        series = [Series(str(k), config.arch, config.budget, (("tbptt", k),))
                  for k in config.windows]  # fmt: skip
        rows, cliffs, t50 = grid_search(series, config.lengths, config.seeds, config.margin,
                                        config.refine, runner)  # fmt: skip
        rows = [{"window": int(row.pop("series")), **row} for row in rows]
        longest = {k: _longest_learned(c, config.lengths, config.refine)
                   for k, c in cliffs.items()}  # fmt: skip
        budget = runner.budget(config.budget, config.seeds, arch=config.arch,
                               lengths=list(config.lengths), margin=config.margin)  # fmt: skip
        return TbpttResult(rows, longest, t50, budget).to_dict()

    return TbpttResult.from_dict(experiment(runner, "tbptt-sweep", config, compute))
