"""The measurements the claims audit draws on, each taken once per audit and kept in the store.

``Evidence`` holds a runner (store, workers) and takes each shared measurement on first use:
the lesson's duel under Adam and SGD, the exercise grid, cliffs by initialisation, gate and
connection, the latch task at two budgets, truncated BPTT, clipping, decay against length,
profiles of untrained models and per-position profiles on the agreement task. Every training
run goes through ``train_run`` (and the store), so a second audit, or a ``bpttlab cliff`` with
the same config, reads them back.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from bpttlab.experiments._runs import (
    PROFILE_KIND,
    RUN_KIND,
    Budget,
    ProfileConfig,
    Runner,
    Setting,
    profile_run,
)
from bpttlab.experiments.cliff import CliffConfig, CliffResult, cliff
from bpttlab.experiments.clipping import ClippingConfig, ClippingResult, clipping_demo
from bpttlab.experiments.decay import DecayConfig, DecayResult, decay_vs_length
from bpttlab.experiments.duel import LESSON_BUDGET, DuelConfig, DuelResult, duel
from bpttlab.experiments.tbptt import TbpttConfig, TbpttResult, tbptt_sweep
from bpttlab.probe import gradient_profile
from bpttlab.store import cached

__all__ = ["GRID_SEEDS", "Evidence", "fmt", "fraction"]

GRID_SEEDS = tuple(range(8))  # cliffs by architecture: 8 seeds decide 0/8 and 8/8 (Wilson)
INIT_ARCHS = ("rnn", "rnn:init=orthogonal", "irnn", "rnn:init=gaussian,gain=0.5",
              "rnn:activation=relu", "rnn:activation=sigmoid")  # fmt: skip
GATE_ARCHS = ("lstm", "lstm:forget_bias=one", "lstm:forget_bias=chrono", "gru")  # + rnn
DIRECT_ARCHS = ("attention-rnn", "skip-rnn")
LATCH_BUDGET = Budget(task="latch", steps=300, batch_size=64, fixed_batch=False)


def fmt(x: float | None, digits: int = 3) -> str:
    """A figure for a sentence: ``1.2e-05``, ``0.45``; "—" when there is none."""
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def fraction(row: dict[str, Any]) -> str:
    """``"4/10"``: the seeds of a cliff row that learned."""
    return f"{row['successes']}/{row['seeds']}"


@dataclass
class Evidence:
    """Shared measurements for the audit, each taken on first use (see the module docstring)."""

    runner: Runner
    profiles: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)

    # ---------------------------------------------------------------- training
    @cached_property
    def duel_adam(self) -> DuelResult:
        return duel(DuelConfig(), self.runner)

    @cached_property
    def duel_sgd(self) -> DuelResult:
        return duel(DuelConfig(budget=LESSON_BUDGET.replace(optimizer="sgd")), self.runner)

    @cached_property
    def grid(self) -> CliffResult:
        """The lesson's exercise: rnn and lstm at T = 5, 20, 50, 500 Adam steps, 10 seeds."""
        return cliff(CliffConfig(), self.runner)

    @cached_property
    def history(self) -> CliffResult:
        """The tanh rnn at T = 8, 20, 50 under Adam and under SGD (the lesson's budget)."""
        config = CliffConfig(archs=("rnn",), lengths=(8, 20, 50), optimizers=("adam", "sgd"))
        return cliff(config, self.runner)

    def _archs(self, archs: tuple[str, ...], lengths: tuple[int, ...]) -> CliffResult:
        return cliff(CliffConfig(archs=archs, lengths=lengths, seeds=GRID_SEEDS), self.runner)

    @cached_property
    def inits(self) -> CliffResult:
        """Vanilla RNNs by initialisation and activation, copy-bit T = 20, 50."""
        return self._archs(INIT_ARCHS, (20, 50))

    @cached_property
    def gates(self) -> CliffResult:
        """LSTM by forget-gate bias, and GRU, copy-bit T = 20, 50."""
        return self._archs(GATE_ARCHS, (20, 50))

    @cached_property
    def direct(self) -> CliffResult:
        """Attention and skip connections, copy-bit T = 20, 50, 100."""
        return self._archs(DIRECT_ARCHS, (20, 50, 100))

    @cached_property
    def latch(self) -> CliffResult:
        """Bengio et al. 1994's latch: rnn at T = 5..80 after 300 and after 1200 Adam steps."""
        config = CliffConfig(archs=("rnn",), lengths=(5, 10, 20, 40, 80), budget=LATCH_BUDGET,
                             steps=(300, 1200))  # fmt: skip
        return cliff(config, self.runner)

    @cached_property
    def tbptt(self) -> TbpttResult:
        """Windows 4, 8, 16 and 32 (full BPTT at every length) on latch T = 4..32, 10 seeds."""
        config = TbpttConfig(windows=(4, 8, 16, 32), seeds=tuple(range(10)))
        return tbptt_sweep(config, self.runner)

    @cached_property
    def clipping(self) -> ClippingResult:
        return clipping_demo(ClippingConfig(), self.runner)

    @cached_property
    def decay(self) -> DecayResult:
        return decay_vs_length(DecayConfig(lengths=(10, 30, 50)), self.runner)

    def grad_h0_series(self, arch: str, length: int) -> list[list[float]]:
        """``||dL/dh_0||`` per training step of every seed of the exercise grid's runs."""
        store = self.runner.store
        self.grid  # noqa: B018  (the runs must exist)
        if store is None:
            return []
        budget = CliffConfig().budget
        series = []
        for seed in CliffConfig().seeds:
            record = store.finished(RUN_KIND, budget.run(arch, length, seed), _env(self.runner))
            if record is not None:
                series.append([v for _, v in store.metrics(record)["grad_h0"]])
        return series

    # ---------------------------------------------------------------- untrained models
    def profile(self, arch: str, length: int, task: str = "copy-bit") -> dict[str, Any]:
        """The float64 profile and diagnosis of an untrained model (hidden 32, batch 64)."""
        key = (arch, task, length)
        if key not in self.profiles:
            config = ProfileConfig(**Setting.specs(arch, task), length=length, hidden_size=32,
                                   batch_size=64, dtype="float64")  # fmt: skip
            store = self.runner.store
            if store is None:
                self.profiles[key] = profile_run(config)
            else:
                compute = functools.partial(profile_run, config)
                env = _env(self.runner)
                self.profiles[key] = cached(store, PROFILE_KIND, config, compute, env=env)
        return self.profiles[key]

    def ratio(self, arch: str, length: int) -> float:
        """``||dL/dh_0|| / ||dL/dh_T||`` of the untrained model on copy-bit."""
        return float(self.profile(arch, length)["diagnosis"]["ratio"])

    def cell_rate(self, arch: str, length: int = 100) -> float:
        """Fitted decay rate per step of ``||dL/dc_t||`` (LSTM cell state), untrained."""
        setting = Setting(**Setting.specs(arch, "copy-bit"), length=length)
        with torch.random.fork_rng():
            task = setting.make_task()
            model = setting.make_model(0, task).double()
            batch = task.sample(64, torch.Generator().manual_seed(1), "test")
            prof = gradient_profile(model, batch.x.double(), lambda out: task.loss(out[0], batch),
                                    method="unrolled")  # fmt: skip
        c = np.asarray(prof.cell_norms)
        steps_back = np.arange(len(c))[::-1]
        ok = c > 0
        return float(np.polyfit(steps_back[ok], np.log(c[ok]), 1)[0])

    def agreement(self, arch: str, trained: bool) -> dict[str, float]:
        """Per-position ``||dL/dh_t|| / ||dL/dh_T||`` on the agreement task (a subject, 13
        clause tokens, the verb: 15 positions as in the lesson's sentence), untrained or after
        300 Adam steps; the median over 5 seeds of the first position's ratio and its range."""
        ratios = []
        for seed in range(5):
            config = ProfileConfig(**Setting.specs(arch, "agreement"), length=13, hidden_size=32,
                                   batch_size=64, train_steps=300 if trained else 0, seed=seed,
                                   dtype="float64")  # fmt: skip
            store = self.runner.store
            compute = functools.partial(profile_run, config)
            env = _env(self.runner)
            doc = compute() if store is None else cached(store, PROFILE_KIND, config, compute,
                                                         env=env)  # fmt: skip
            norms = [n for n in doc["norms"] if n is not None]
            ratios.append(norms[1] / norms[-1])  # position 1: the subject's state h_1
        return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def _env(runner: Runner) -> dict[str, Any] | None:
    from bpttlab.environment import fingerprint

    return fingerprint() if runner.store is not None else None
