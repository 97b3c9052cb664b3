"""``duel()``: two architectures head to head on one task, seed by seed.

The lesson's duel (``DuelConfig()``): copy-bit at T = 30, one fixed batch of 256, hidden 32,
300 Adam steps at lr 1e-2, PyTorch's default inits. On exactly that setup (any optimizer and
lr) with archs rnn and lstm, each part of the lesson's claim is set beside the measurement with
a verdict that the evidence decides (``stats.wilson`` over seeds), or "inconclusive".
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bpttlab._util import ConfigError, check_float, check_int
from bpttlab.experiments._runs import Budget, Runner, experiment
from bpttlab.experiments.cliff import success_threshold
from bpttlab.models import parse_arch
from bpttlab.stats import bootstrap_mean, wilson

__all__ = ["LESSON_BUDGET", "DuelConfig", "DuelResult", "duel"]

Row = dict[str, Any]
# The lesson's duel (REFERENCES.md): copy-bit at T=30, 300 steps, PyTorch's default inits.
LESSON_BUDGET = Budget(steps=300)
LESSON_LENGTH = 30
_RESULT_KEYS = ("accuracy", "train_accuracy", "grad_h0_init", "grad_h0_final", "loss", "diverged")


@dataclass(frozen=True)
class DuelConfig:
    """Two architecture specs at one ``length`` with one ``budget``, over ``seeds``."""

    archs: tuple[str, str] = ("rnn", "lstm")
    seeds: tuple[int, ...] = tuple(range(10))
    length: int = LESSON_LENGTH
    margin: float = 0.5
    budget: Budget = field(default_factory=lambda: LESSON_BUDGET)

    def __post_init__(self) -> None:
        archs = tuple(str(a).strip() for a in self.archs)
        if len(archs) != 2:
            raise ConfigError("archs", list(archs), "a duel takes two architectures")
        for a in archs:
            parse_arch(a, "archs")
        seeds = tuple(self.seeds)
        if not seeds:
            raise ConfigError("seeds", [], "give at least one seed")
        object.__setattr__(self, "archs", archs)
        object.__setattr__(self, "seeds", tuple(check_int("seeds", s, 0, 2**32 - 1) for s in seeds))
        self.budget.check_lengths([check_int("length", self.length)], "length")
        for arch in archs:  # every run fits in memory (RunConfig checks)
            self.budget.run(arch, self.length, self.seeds[0])
        check_float("margin", self.margin, low=0, high=1, low_open=True, high_open=True)

    @property
    def is_lesson(self) -> bool:
        """The lesson's setup, whatever the optimizer and learning rate."""
        b = self.budget.replace(optimizer=LESSON_BUDGET.optimizer, lr=LESSON_BUDGET.lr)
        return (b, self.length, self.archs) == (LESSON_BUDGET, LESSON_LENGTH, ("rnn", "lstm"))

    def to_dict(self) -> dict[str, Any]:
        return {"archs": list(self.archs), "seeds": list(self.seeds), "length": self.length,
                "margin": float(self.margin), "budget": self.budget.to_dict()}  # fmt: skip


@dataclass(frozen=True)
class DuelResult:
    """``results``: per (arch, seed): accuracy (held-out), train_accuracy (training batch),
    grad_h0_init, grad_h0_final, loss, diverged; ``summary``: per arch, successes with the
    Wilson interval and the mean accuracy with its bootstrap interval; ``claims``: the
    lesson's claim in parts, each with "measured", "criterion" and "verdict" ("holds", "does
    not hold", "inconclusive"); ``budget``: what both got."""

    results: list[Row]
    summary: dict[str, Row]
    claims: list[Row]
    claims_note: str
    budget: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DuelResult:
        return cls(**data)

    def figure(self) -> Any:
        """Accuracy and ``||dL/dh_0||`` per seed: a plotly figure (the report extra)."""
        from bpttlab.views.figures import duel_figure

        return duel_figure(self.to_dict())

    def _repr_html_(self) -> str:
        """Jupyter shows the figure."""
        from bpttlab.views.figures import notebook_html

        return notebook_html(self.figure())


def _summary(rows: list[Row], threshold: float) -> Row:
    acc = [r["accuracy"] if r["accuracy"] is not None else float("nan") for r in rows]
    wins = sum(a >= threshold for a in acc)
    low, high = wilson(wins, len(acc))
    mean_low, mean_high = bootstrap_mean(acc)
    return {"successes": wins, "seeds": len(acc), "success_low": low, "success_high": high,
            "accuracy_mean": statistics.fmean(acc), "accuracy_low": mean_low,
            "accuracy_high": mean_high, "threshold": threshold}  # fmt: skip


def _verdict(holds: bool, fails: bool) -> str:
    return "holds" if holds else ("does not hold" if fails else "inconclusive")


def _claims(summary: dict[str, Row]) -> list[Row]:
    """The lesson's claim in two parts; a verdict only where the 95% intervals decide it."""
    rnn, lstm = summary["rnn"], summary["lstm"]

    def text(s: Row) -> str:
        return (
            f"{s['successes']}/{s['seeds']} seeds learn it (95% interval of the rate "
            f"{s['success_low']:.2f}-{s['success_high']:.2f}); mean held-out accuracy "
            f"{s['accuracy_mean']:.4f} ({s['accuracy_low']:.4f}-{s['accuracy_high']:.4f})"
        )

    return [
        {"claim": "at T=30 a vanilla tanh RNN stays at chance", "measured": text(rnn),
         "criterion": f"a seed learns it when its held-out accuracy >= {rnn['threshold']:g}; "
                      "holds if the success rate's interval lies below 1/2, fails if above",
         "verdict": _verdict(rnn["success_high"] < 0.5, rnn["success_low"] > 0.5)},
        {"claim": "at T=30 an LSTM reaches 99.8%", "measured": text(lstm),
         "criterion": "holds if the mean accuracy's interval lies at or above 0.998, fails if "
                      "below",
         "verdict": _verdict(lstm["accuracy_low"] >= 0.998, lstm["accuracy_high"] < 0.998)},
    ]  # fmt: skip


def duel(config: DuelConfig | None = None, runner: Runner | None = None, **run: Any) -> DuelResult:
    """Run the duel (``DuelConfig()``: the lesson's); ``runner`` or its fields as keywords."""
    config = config or DuelConfig()
    runner = runner or Runner(**run)
    chance = config.budget.task_at(config.length).chance
    threshold = success_threshold(chance, config.margin)

    def compute() -> dict[str, Any]:
        pairs = [(spec, seed) for spec in config.archs for seed in config.seeds]
        results = runner([config.budget.run(s, config.length, seed) for s, seed in pairs])
        rows = [{"arch": spec, "seed": seed, **{k: r[k] for k in _RESULT_KEYS}}
                for (spec, seed), r in zip(pairs, results, strict=True)]  # fmt: skip
        summary = {a: _summary([r for r in rows if r["arch"] == a], threshold)
                   for a in config.archs}  # fmt: skip
        claims = _claims(summary) if config.is_lesson else []
        note = "" if config.is_lesson else "checked only on the lesson's setup with rnn, lstm"
        budget = runner.budget(config.budget, config.seeds, length=config.length,
                               chance=chance, margin=config.margin)  # fmt: skip
        return DuelResult(rows, summary, claims, note, budget).to_dict()

    return DuelResult.from_dict(experiment(runner, "duel", config, compute))
