"""``decay_vs_length()``: measured gradient decay against length beside its two predictions.

No training. For each radius and seed, an untrained tanh rnn (``build("rnn")``, PyTorch's
default init drawn with that seed) has its W_hh rescaled by ``radius / rho(W_hh)`` and runs in
float64 on copy-bit sequences with N(0, noise^2) inputs after the bit (one batch of the longest
length; length T uses its first T steps). Per (radius, T, seed):

- ``ratio = ||dL/dh_0|| / ||dL/dh_T||`` (``gradient_profile``, Frobenius over the batch) and
  ``measured_rate = log(ratio) / T``;
- ``naive = (rho <f'>)^T`` (the heuristic behind Pascanu et al. 2013, eq. 7), ``<f'>`` the mean
  tanh'(z_t) over this trajectory's batch, steps and units;
- ``lyapunov = exp(lambda_1 T)``, ``lambda_1`` the top finite-time Lyapunov exponent of the
  trajectory (``dynamics.lyapunov_exponents``, mean over ``lyapunov_samples`` sequences;
  Engelken, Wolf & Abbott 2023).

A row gives each figure as the median over seeds with its range (``*_min``, ``*_max``), and
``per_seed``. The ratio is a norm over the whole batch, so the sequences with the largest
gradients dominate it, while lambda_1 averages log-rates over sequences: by Jensen's inequality
the measured rate tends to sit above (less negative than) the Lyapunov rate.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from bpttlab._util import ConfigError, check_float, check_int, check_memory
from bpttlab.dynamics import Trajectory, lyapunov_exponents
from bpttlab.experiments._runs import Runner, experiment, grad_ratio
from bpttlab.models import RecurrentModel, build
from bpttlab.probe import gradient_profile
from bpttlab.tasks import Batch, Task, get_task

__all__ = ["DecayConfig", "DecayResult", "decay_vs_length"]

Row = dict[str, Any]


def _scaled_rnn(radius: float, hidden_size: int, seed: int) -> RecurrentModel:
    """An untrained bpttlab tanh rnn in float64, W_hh rescaled to spectral radius ``radius``."""
    torch.manual_seed(seed)
    model = build("rnn", 1, hidden_size, 2).double()
    core: Any = model.core
    W_hh: torch.Tensor = core.weight_hh_l0  # (H, H)
    with torch.no_grad():
        W_hh.mul_(radius / torch.linalg.eigvals(W_hh).abs().max())
    return model


def _lyapunov_rate(model: RecurrentModel, x: torch.Tensor, hs: torch.Tensor, n: int) -> float:
    """Mean top Lyapunov exponent over the first ``n`` sequences of the batch.

    Each sequence's trajectory is rebuilt from the model's own weights and states,
    ``z_t = W_hh h_{t-1} + W_ih x_t + b``, and handed to ``dynamics.lyapunov_exponents``
    (QR on ``J_t = diag(tanh'(z_t)) W_hh``; Benettin et al. 1980).
    """
    core: Any = model.core
    W = core.weight_hh_l0.detach().numpy()  # (H, H)
    U = core.weight_ih_l0.detach().numpy()  # (H, 1)
    b = (core.bias_ih_l0 + core.bias_hh_l0).detach().numpy()  # (H,)
    rates = []
    for i in range(min(n, x.shape[0])):
        h = np.concatenate([np.zeros((1, W.shape[0])), hs[i].numpy()])  # (T+1, H), h_0 = 0
        z = h[:-1] @ W.T + x[i].numpy() @ U.T + b  # (T, H)
        traj = Trajectory(W=W, activation="tanh", z=z, h=h, d=1.0 - h[1:] ** 2)
        rates.append(float(lyapunov_exponents(traj, k=1).exponents[0]))
    return statistics.fmean(rates)


def _measure(model: RecurrentModel, radius: float, batch: Batch, task: Task, n: int) -> Row:
    """One (radius, T, seed): the measured ratio beside the naive and the Lyapunov predictions."""
    T = batch.x.shape[1]
    prof = gradient_profile(model, batch.x, lambda out: task.loss(out[0], batch))  # float64
    with torch.no_grad():
        hs = model(batch.x)[1]  # (B, T, H)
    mean_d = (1.0 - hs**2).mean().item()  # <tanh'(z_t)> on the actual trajectory
    lam = _lyapunov_rate(model, batch.x, hs, n)
    ratio = grad_ratio(list(prof.norms))
    return {
        "grad_h0": float(prof.norms[0]), "grad_hT": float(prof.norms[-1]), "ratio": ratio,
        "measured_rate": math.log(ratio) / T if ratio > 0 else -math.inf,
        "mean_derivative": mean_d, "naive": (radius * mean_d) ** T,
        "naive_rate": math.log(radius * mean_d), "lyapunov_rate": lam,
        "lyapunov": math.exp(lam * T),
    }  # fmt: skip


_SUMMARISED = ("ratio", "naive", "lyapunov", "measured_rate", "naive_rate", "lyapunov_rate")


def _row(radius: float, length: int, per_seed: list[Row]) -> Row:
    """Median over seeds (and its range) of each figure; ``per_seed`` keeps every value."""
    row: Row = {"radius": radius, "length": length, "seeds": len(per_seed)}
    for key in (*_SUMMARISED, "mean_derivative", "grad_h0", "grad_hT"):
        values = [r[key] for r in per_seed]
        row[key] = float(np.median(values))
        if key in _SUMMARISED:
            row[f"{key}_min"], row[f"{key}_max"] = float(min(values)), float(max(values))
    row["per_seed"] = per_seed
    return row


@dataclass(frozen=True)
class DecayConfig:
    """Lengths, spectral radii and seeds (one random W_hh and batch per seed)."""

    lengths: tuple[int, ...] = tuple(range(10, 101, 10))
    radii: tuple[float, ...] = (0.95, 1.05)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    hidden_size: int = 32
    batch_size: int = 32
    noise: float = 1.0
    lyapunov_samples: int = 8

    def __post_init__(self) -> None:
        for name, values in (("lengths", self.lengths), ("radii", self.radii),
                             ("seeds", self.seeds)):  # fmt: skip
            if not tuple(values):
                raise ConfigError(name, list(values), "give at least one value")
        set_ = object.__setattr__
        set_(self, "lengths", tuple(sorted({check_int("lengths", n) for n in self.lengths})))
        set_(self, "radii", tuple(dict.fromkeys(
            check_float("radii", r, low=0, low_open=True) for r in self.radii)))  # fmt: skip
        set_(self, "seeds", tuple(dict.fromkeys(
            check_int("seeds", s, 0, 2**32 - 2) for s in self.seeds)))  # fmt: skip
        for name in ("hidden_size", "batch_size", "lyapunov_samples"):
            check_int(name, getattr(self, name))
        set_(self, "noise", check_float("noise", self.noise, low=0))
        T, H, B = self.lengths[-1], self.hidden_size, self.batch_size
        ratios = {"hidden_size": H / 32, "lengths": T / 100, "batch_size": B / 32}
        name = max(ratios, key=lambda k: ratios[k])
        value = {"hidden_size": H, "lengths": T, "batch_size": B}[name]
        check_memory(name, value, 8.0 * (B * T * H * 16 + H * H * 8),
                     f"a float64 rnn with hidden {H} over {T} steps and batch {B}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DecayResult:
    """``rows``: per (radius, length), the medians over seeds with their ranges (see the
    module docstring); ``config``: ``DecayConfig.to_dict()``."""

    rows: list[Row]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecayResult:
        return cls(**data)

    def figure(self) -> Any:
        """Measured decay against its two predictions: a plotly figure (the report extra)."""
        from bpttlab.views.figures import decay_length_figure

        return decay_length_figure(self.to_dict())

    def _repr_html_(self) -> str:
        """Jupyter shows the figure."""
        from bpttlab.views.figures import notebook_html

        return notebook_html(self.figure())


def decay_vs_length(
    config: DecayConfig | None = None, runner: Runner | None = None, **run: Any
) -> DecayResult:
    """Measure (``DecayConfig()``: radii 0.95 and 1.05, T = 10..100, 5 seeds); the store of
    ``runner`` (or ``store=``) keeps the result."""
    config = config or DecayConfig()
    runner = runner or Runner(**run)
    longest = get_task("copy-bit", config.lengths[-1], noise=config.noise)

    def compute() -> dict[str, Any]:
        per: dict[tuple[float, int], list[Row]] = {}
        for seed in config.seeds:
            full = longest.sample(config.batch_size, torch.Generator().manual_seed(seed))
            x = full.x.double()  # (B, T_max, 1)
            for radius in config.radii:
                model = _scaled_rnn(radius, config.hidden_size, seed)
                for T in config.lengths:
                    task = get_task("copy-bit", T, noise=config.noise)
                    batch = Batch(x[:, :T], full.target)  # the first T steps
                    per.setdefault((radius, T), []).append(
                        _measure(model, radius, batch, task, config.lyapunov_samples))  # fmt: skip
        rows = [_row(r, T, per[r, T]) for r in config.radii for T in config.lengths]
        return DecayResult(rows, config.to_dict()).to_dict()

    return DecayResult.from_dict(experiment(runner, "decay-vs-length", config, compute))
