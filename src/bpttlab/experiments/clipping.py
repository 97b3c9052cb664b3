"""``clipping_demo()``: clipping (Pascanu, Mikolov & Bengio 2013) against exploding and
vanishing gradients, measured.

Two configurations (``CLIP_CASES``) on copy-bit with N(0, noise^2) inputs, fresh batches, plain
SGD, each trained without clipping and with every clipping rule of ``training.CLIPS``: by the
global norm (PyTorch's ``clip_grad_norm_``, Keras's ``global_clipnorm``), by each parameter's
own norm (Keras's ``clipnorm``) and by value (Keras's ``clipvalue``):

- exploding: relu RNN, W_hh = 2 I, T = 20: without clipping the loss or gradient turns
  non-finite (``diverged_at_step``); clipped, it trains and stays finite.
- vanishing: tanh RNN, W_hh ~ N(0, 0.25/H), T = 50: clipping rescales the update but cannot
  create gradient where none arrives; ``grad_h0_ratio`` stays as small as it was.

``grad_h0_ratio = ||dL/dh_0|| / ||dL/dh_T||`` after training (a profile of the final model on
the first training batch; None when it is undefined: gradients not finite, or
``||dL/dh_T|| = 0``, a model that fits that batch exactly); ``grad_h0_ratio_init`` before the
first update. Over ``seeds``: divergence as a count with its Wilson interval, ratios as median
and range (chaotic per seed) with ``n``, the seeds that define them, accuracy with its interval.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from bpttlab._util import ConfigError, check_float, check_int
from bpttlab.experiments._runs import Budget, RunConfig, Runner, experiment
from bpttlab.stats import bootstrap_mean, median_range, wilson
from bpttlab.training import CLIPS

__all__ = ["CLIP_CASES", "ClippingConfig", "ClippingResult", "clipping_demo"]

Row = dict[str, Any]
# Measured (tests/test_experiments.py::test_clipping_demo_real_config): the relu RNN with
# W_hh = 2 I starts with ||dL/dh_0|| ~ 7e4 over 20 noisy steps and one plain SGD step at lr 0.1
# leaves it non-finite; the tanh RNN with W_hh ~ N(0, 0.25/H) starts with a ratio ~1e-13 at T=50.
CLIP_CASES: dict[str, dict[str, Any]] = {
    "exploding": {"arch": "rnn:activation=relu,init=identity,gain=2.0", "length": 20},
    "vanishing": {"arch": "rnn:init=gaussian,gain=0.5", "length": 50},
}
RUN_KEYS = ("diverged", "diverged_at_step", "grad_h0_ratio", "grad_h0_ratio_init",
            "grad_h0_init", "grad_h0_final", "max_grad_norm", "accuracy")  # fmt: skip


@dataclass(frozen=True)
class ClippingConfig:
    """Plain SGD on noisy copy-bit; thresholds per rule: ``norm_threshold`` for the global and
    the per-parameter norm, ``value_threshold`` for clipping by value."""

    steps: int = 100
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    hidden_size: int = 16
    batch_size: int = 32
    lr: float = 0.1
    noise: float = 0.5
    norm_threshold: float = 1.0
    value_threshold: float = 0.1
    profile_every: int = 10
    device: str = "cpu"

    def __post_init__(self) -> None:
        seeds = tuple(dict.fromkeys(check_int("seeds", s, 0, 2**32 - 1) for s in self.seeds))
        if not seeds:
            raise ConfigError("seeds", [], "give at least one seed")
        object.__setattr__(self, "seeds", seeds)
        for name in ("norm_threshold", "value_threshold"):
            check_float(name, getattr(self, name), low=0, low_open=True)
        check_float("noise", self.noise, low=0)
        check_int("profile_every", self.profile_every)
        self.budget()  # checks steps, sizes, lr and device

    def budget(self) -> Budget:
        return Budget(task=f"copy-bit:noise={float(self.noise)}", steps=self.steps,
                      batch_size=self.batch_size, hidden_size=self.hidden_size,
                      optimizer="sgd", lr=self.lr, fixed_batch=False,
                      device=self.device)  # fmt: skip

    def thresholds(self) -> dict[str, float | None]:
        value = {"none": None, "value": self.value_threshold}
        return {c: value.get(c, self.norm_threshold) for c in CLIPS}

    def run(self, case: str, clip: str, seed: int) -> RunConfig:
        c = CLIP_CASES[case]
        return self.budget().run(c["arch"], c["length"], seed, clip=clip,
                                 clip_threshold=self.thresholds()[clip] or 1.0,
                                 profile_every=self.profile_every)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {**d, "cases": CLIP_CASES, "clips": self.thresholds()}


@dataclass(frozen=True)
class ClippingResult:
    """``rows``: per (case, clip) over seeds: diverged count with its Wilson interval, ratios
    before and after as median and range, accuracy mean with its bootstrap interval;
    ``runs``: per (case, clip, seed) the run's figures; ``setup``: the config."""

    rows: list[Row]
    runs: list[Row]
    setup: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClippingResult:
        return cls(**data)

    def figure(self) -> Any:
        """Ratios before and after training by clipping rule: a plotly figure (report extra)."""
        from bpttlab.views.figures import clipping_figure

        return clipping_figure(self.to_dict())

    def _repr_html_(self) -> str:
        """Jupyter shows the figure."""
        from bpttlab.views.figures import notebook_html

        return notebook_html(self.figure())


def _spread(values: list[float | None]) -> Row:
    """Median and range of the defined values, and ``n``, how many seeds had one."""
    defined = [v for v in values if v is not None and math.isfinite(v)]
    return {**median_range(defined), "n": len(defined)}


def _summary(runs: list[Row]) -> Row:
    n, k = len(runs), sum(bool(r["diverged"]) for r in runs)
    low, high = wilson(k, n)
    acc = [r["accuracy"] for r in runs if r["accuracy"] is not None]
    acc_low, acc_high = bootstrap_mean(acc) if acc else (None, None)
    return {"seeds": n, "diverged": k, "diverged_low": low, "diverged_high": high,
            "diverged_at_step": median_range([r["diverged_at_step"] for r in runs]),
            "grad_h0_ratio_init": _spread([r["grad_h0_ratio_init"] for r in runs]),
            "grad_h0_ratio": _spread([r["grad_h0_ratio"] for r in runs]),
            "accuracy_mean": statistics.fmean(acc) if acc else None,
            "accuracy_low": acc_low, "accuracy_high": acc_high}  # fmt: skip


def clipping_demo(
    config: ClippingConfig | None = None, runner: Runner | None = None, **run: Any
) -> ClippingResult:
    """Run the demo (``ClippingConfig()``); ``runner`` or its fields as keywords."""
    config = config or ClippingConfig()
    runner = runner or Runner(**run)
    plan = [(case, clip, seed) for case in CLIP_CASES for clip in CLIPS for seed in config.seeds]

    def compute() -> dict[str, Any]:
        results = runner([config.run(*p) for p in plan])
        runs = [{"case": case, "clip": clip, "seed": seed,
                 "threshold": config.thresholds()[clip], **{k: r[k] for k in RUN_KEYS}}
                for (case, clip, seed), r in zip(plan, results, strict=True)]  # fmt: skip
        rows = [{"case": case, "clip": clip, "threshold": config.thresholds()[clip],
                 **_summary([r for r in runs if (r["case"], r["clip"]) == (case, clip)])}
                for case in CLIP_CASES for clip in CLIPS]  # fmt: skip
        return ClippingResult(rows, runs, config.to_dict()).to_dict()

    return ClippingResult.from_dict(experiment(runner, "clipping-demo", config, compute))
