"""The lab's experiments: configs in, JSON-able dicts out, every run kept in the store.

    duel()             two architectures head to head; the lesson's claims beside the measurements
    cliff()            accuracy against length per architecture, and where each falls to chance
    tbptt_sweep()      truncation window k against the longest dependency learned
    decay_vs_length()  measured ||dL/dh_0|| / ||dL/dh_T|| against (rho <f'>)^T and exp(lambda_1 T)
    clipping_demo()    clipping stops an explosion; it does nothing for a vanishing gradient

Definitions used throughout:

- accuracy: on held-out sequences (``train.evaluate`` on the task itself, never the fixed batch:
  ``8 x batch_size`` fresh samples from a generator seeded ``seed ^ 0x5EED5EED``), in the
  task's own sense (argmax for classification, |error| < 0.04 for the adding task).
  ``train_accuracy`` is measured on the training batch after the last update (the one fixed
  batch when ``fixed_batch``, as the lesson does; otherwise the last step's batch, before its
  update). Both are reported, labelled.
- a clear margin over chance: ``accuracy >= chance + margin * (1 - chance)``, margin 0.5 by
  default (0.75 on copy-bit, whose chance is 0.5): halfway from chance to perfect. A length is
  learned when the mean accuracy over seeds clears it; ``success_rate`` is the fraction of seeds
  that clear it on their own. The cliff is the first length not learned (``find_cliff``).
- ``grad_h0_ratio = ||dL/dh_0|| / ||dL/dh_T||`` (``probe.gradient_profile``, float64 norms):
  how much of the gradient at the readout survives the T steps back to h_0, free of the loss's
  own scale.

Every training run is one ``runs.train_run(RunConfig)``, single-threaded, stored under kind
``"experiment-run"`` with its config, the library versions, its seed, the per-step metrics and its
gradient profiles; ``sweep.run_many`` runs them in a process pool and skips those already
stored. Each experiment also stores its summary under its own kind (``"duel"``, ``"cliff"``,
...) keyed by its arguments: the same call returns the stored result, an interrupted one
resumes from the runs it finished, and ``force=True`` recomputes both.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from bpttlab.dynamics import Trajectory, lyapunov_exponents
from bpttlab.models import RecurrentModel, build, check_choice
from bpttlab.probe import gradient_profile
from bpttlab.runs import (
    LESSON,
    LESSON_LENGTH,
    PRESETS,
    RUN_KIND,
    Row,
    RunConfig,
    Setup,
    _experiment,
    _number,
    _ratio,
    _Runner,
    _specs,
    _task,
    parse_arch,
    train_run,
)
from bpttlab.store import Store
from bpttlab.tasks import Batch, Task, get_task

__all__ = [
    "CLIP_CASES",
    "LESSON",
    "RUN_KIND",
    "RunConfig",
    "Setup",
    "cliff",
    "clipping_demo",
    "decay_vs_length",
    "duel",
    "find_cliff",
    "parse_arch",
    "success_threshold",
    "tbptt_sweep",
    "train_run",
]


def _setup(task: str, task_options: dict[str, Any] | None, **budget: Any) -> Setup:
    """The shared budget for a task spec (``"latch:noise=0.1"``) and options given apart."""
    name, options = _task(task, task_options)
    return Setup(task=name, task_options=options, **budget)


# ---------------------------------------------------------------- cliffs
def success_threshold(chance: float, margin: float = 0.5) -> float:
    """``chance + margin * (1 - chance)``: the accuracy that beats chance by a clear margin."""
    if not 0 < margin < 1:
        raise ValueError(f"margin={margin!r} is not allowed: must lie in (0, 1)")
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


def _stats(accuracies: list[float | None], threshold: float) -> Row:
    """Mean, min, max over seeds and the fraction of seeds at or above ``threshold``. A run
    without an accuracy (diverged: None) makes the mean NaN and counts as a failure."""
    acc = [_number(a) for a in accuracies]
    finite = [a for a in acc if math.isfinite(a)] or [math.nan]
    return {
        "accuracy_mean": statistics.fmean(acc),
        "accuracy_min": min(finite),
        "accuracy_max": max(finite),
        "success_rate": sum(a >= threshold for a in acc) / len(acc),
        "seeds": len(acc),
        "threshold": threshold,
    }


def _cliff_search(
    series: dict[str, Callable[[int, int], RunConfig]],
    setup: Setup,
    lengths: list[int],
    seeds: list[int],
    margin: float,
    refine: bool,
    run: _Runner,
) -> tuple[list[Row], dict[str, int | None]]:
    """Train each series (label -> (length, seed) -> RunConfig) at every length and seed, all in
    one pool, then find each cliff, training the lengths the bisection asks for.

    Returns rows (by label, then length; ``grid`` False for bisection lengths) and cliffs.
    """
    acc: dict[tuple[str, int], list[float | None]] = {}

    def measure(pairs: list[tuple[str, int]]) -> None:
        pairs = sorted(pairs, key=lambda p: -p[1])  # longest first: the pool's tail stays short
        results = iter(run([series[label](n, seed) for label, n in pairs for seed in seeds]))
        for pair in pairs:
            acc[pair] = [next(results)["accuracy"] for _ in seeds]

    def mean_accuracy(label: str, length: int) -> float:
        if (label, length) not in acc:
            measure([(label, length)])
        return _stats(acc[label, length], 0.0)["accuracy_mean"]

    def chance(length: int) -> float:
        return setup.task_at(length).chance

    measure([(label, n) for label in series for n in lengths])
    cliffs = {
        label: find_cliff(lambda n, s=label: mean_accuracy(s, n), lengths, chance, margin, refine)
        for label in series
    }
    rows = [
        {"arch": label, "length": n, "grid": n in lengths,
         **_stats(acc[label, n], success_threshold(chance(n), margin))}
        for label in series for n in sorted(n for (s, n) in acc if s == label)
    ]  # fmt: skip
    return rows, cliffs


def cliff(
    archs: Sequence[str] = ("rnn", "lstm"),
    lengths: Iterable[int] = (5, 20, 50),
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 500,
    task: str = "copy-bit",
    refine: bool = False,
    *,
    margin: float = 0.5,
    task_options: dict[str, Any] | None = None,
    hidden_size: int = 32,
    batch_size: int = 256,
    lr: float = 1e-2,
    optimizer: str = "adam",
    fixed_batch: bool = True,
    device: str = "cpu",
    store: Store | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Accuracy against length per architecture, and each architecture's cliff.

    Defaults: the lesson's exercise (rnn and lstm at T = 5, 20, 50; 500 Adam steps at 1e-2 on
    one fixed batch of 256, hidden 32), 3 seeds; every architecture gets that same budget.
    Arch specs may carry options, ``"lstm:forget_bias=one"`` (the spec is the label), and so
    may the task, ``"copy-bit:noise=0.5"`` (``task_options`` given apart win).

    Returns:
        ``{"rows": [{"arch", "length", "accuracy_mean", "accuracy_min", "accuracy_max",
        "success_rate", "seeds", "threshold", "grid"}], "cliffs": {arch: length | None},
        "budget": {...}}``; ``grid`` is False for lengths the bisection added.
    """
    setup = _setup(task, task_options, device=device, steps=steps, batch_size=batch_size,
                   hidden_size=hidden_size, optimizer=optimizer, lr=lr,
                   fixed_batch=fixed_batch)  # fmt: skip
    specs, lengths, seeds = _specs(archs), sorted({int(n) for n in lengths}), [*map(int, seeds)]
    success_threshold(0.0, margin)
    config = {
        "archs": specs,
        "lengths": lengths,
        "seeds": seeds,
        "refine": refine,
        "margin": float(margin),
        "setup": setup.to_dict(),
    }

    def compute() -> dict[str, Any]:
        run = _Runner(store, force, workers, progress)
        series = {spec: (lambda n, s, spec=spec: setup.run(spec, n, s)) for spec in specs}
        rows, cliffs = _cliff_search(series, setup, lengths, seeds, margin, refine, run)
        budget = run.budget(setup, seeds, lengths=lengths, margin=margin, refine=refine)
        return {"rows": rows, "cliffs": cliffs, "budget": budget}

    return _experiment(store, "cliff", config, compute, force)


# ---------------------------------------------------------------- duel
def _claims(rows: list[Row], chance: float, margin: float) -> list[Row]:
    """The lesson's claim, in its two parts, beside held-out and training-batch accuracies."""
    threshold = success_threshold(chance, margin)

    def measured(arch: str) -> tuple[list[float], str]:
        mine = [r for r in rows if r["arch"] == arch]
        acc = [_number(r["accuracy"]) for r in mine]
        per_seed = ", ".join(f"{a:.4f}" for a in acc)
        on_batch = statistics.fmean(_number(r["train_accuracy"]) for r in mine)
        text = f"held-out accuracy {statistics.fmean(acc):.4f} (per seed: {per_seed}); "
        return acc, text + f"on the training batch {on_batch:.4f}"

    (rnn, rnn_text), (lstm, lstm_text) = measured("rnn"), measured("lstm")
    at_chance = f"held-out accuracy below {threshold:g} (chance {chance:g} + half the way to 1)"
    return [
        {"claim": "at T=30 a vanilla tanh RNN stays at chance", "measured": rnn_text,
         "criterion": at_chance + " for every seed", "holds": all(a < threshold for a in rnn)},
        {"claim": "at T=30 an LSTM reaches 99.8%", "measured": lstm_text,
         "criterion": "held-out accuracy >= 0.998 for every seed",
         "holds": all(a >= 0.998 for a in lstm)},
    ]  # fmt: skip


def duel(
    archs: Sequence[str] = ("rnn", "lstm"),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    preset: str = "lesson",
    length: int | None = None,
    steps: int | None = None,
    hidden_size: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    task: str | None = None,
    task_options: dict[str, Any] | None = None,
    fixed_batch: bool | None = None,
    margin: float = 0.5,
    device: str = "cpu",
    store: Store | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Two architectures head to head on one task, over ``seeds``.

    ``preset="lesson"`` is the lesson's exact setup (``LESSON`` at T=30: copy-bit, one fixed
    batch of 256, hidden 32, 300 Adam steps at 1e-2, PyTorch's default inits); any argument
    given overrides it (``task`` may carry options, ``"latch:noise=0.5"``). On exactly that
    setup with archs rnn and lstm, each claim of the lesson is set beside what was measured;
    otherwise ``claims`` is empty and ``claims_note`` says why.

    Returns:
        ``{"results": [{"arch", "seed", "accuracy" (held-out), "train_accuracy" (training
        batch), "grad_h0_init", "grad_h0_final", "loss", "diverged"}], "claims": [{"claim",
        "measured", "criterion", "holds"}], "claims_note": str, "budget": {...}}``.
    """
    check_choice("preset", preset, tuple(PRESETS))
    base, base_length = PRESETS[preset]
    given = {
        "steps": steps,
        "hidden_size": hidden_size,
        "lr": lr,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "fixed_batch": fixed_batch,
        "device": device,
    }
    if task is not None or task_options is not None:
        given["task"], given["task_options"] = _task(task or base.task, task_options)
    setup = replace(base, **{k: v for k, v in given.items() if v is not None})
    length = base_length if length is None else length
    chance = setup.task_at(length).chance  # checks the length too
    specs, seeds = _specs(archs), [*map(int, seeds)]
    if len(specs) != 2:
        raise ValueError(f"archs={specs!r} is not allowed: a duel takes two architectures")
    config = {
        "archs": specs,
        "seeds": seeds,
        "length": length,
        "margin": float(margin),
        "setup": setup.to_dict(),
    }

    def compute() -> dict[str, Any]:
        run = _Runner(store, force, workers, progress)
        pairs = [(spec, seed) for spec in specs for seed in seeds]
        results = run([setup.run(spec, length, seed) for spec, seed in pairs])
        keys = ("accuracy", "train_accuracy", "grad_h0_init", "grad_h0_final", "loss", "diverged")
        rows = [
            {"arch": spec, "seed": seed, **{k: r[k] for k in keys}}
            for (spec, seed), r in zip(pairs, results, strict=True)
        ]
        lesson = (setup, length, specs) == (LESSON, LESSON_LENGTH, ["rnn", "lstm"])
        claims = _claims(rows, chance, margin) if lesson else []
        note = "" if lesson else "checked only on the lesson's exact setup with archs rnn, lstm"
        budget = run.budget(setup, seeds, length=length, chance=chance, margin=margin)
        return {"results": rows, "claims": claims, "claims_note": note, "budget": budget}

    return _experiment(store, "duel", config, compute, force)


# ---------------------------------------------------------------- truncated BPTT
def tbptt_sweep(
    windows: Iterable[int] = (4, 8, 16),
    lengths: Iterable[int] = (4, 8, 12, 16, 24, 32),
    seeds: Sequence[int] = (0, 1),
    *,
    arch: str = "rnn",
    task: str = "latch",
    task_options: dict[str, Any] | None = None,
    steps: int = 300,
    hidden_size: int = 32,
    batch_size: int = 64,
    lr: float = 1e-2,
    optimizer: str = "adam",
    fixed_batch: bool = False,
    margin: float = 0.5,
    refine: bool = False,
    device: str = "cpu",
    store: Store | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Truncation window k against the longest dependency learned.

    For each window k, ``arch`` is trained with ``tbptt=k`` (the state is detached every k
    steps; Williams & Peng 1990) at every length. The answer sits at step 0 and is read at step
    T - 1, so a gradient reaches it only while T <= k (``grad_h0`` is exactly 0 beyond). The
    expectation is that the longest length learned is about k; it need not be: the weights are
    shared, so recurrent weights that learn to keep the signal over the last k steps keep it
    over earlier ones too, and the forward pass may carry it further than any gradient goes.
    "Learned" is the cliff criterion of the module docstring; the longest length learned is
    the grid length before the cliff (the cliff minus one with ``refine``), None if even the
    shortest fails. A window >= the longest length is full BPTT: the baseline.

    Defaults: a tanh rnn on latch (Bengio et al. 1994; noise 0.2, fresh batches), windows
    4, 8, 16, lengths 4..32, 300 Adam steps, 2 seeds.

    Returns:
        ``{"rows": [{"window", "length", "accuracy_mean", "accuracy_min", "accuracy_max",
        "success_rate", ...}], "longest_learned": {str(k): length | None}, "budget": {...}}``.
    """
    setup = _setup(task, task_options, device=device, steps=steps, batch_size=batch_size,
                   hidden_size=hidden_size, optimizer=optimizer, lr=lr,
                   fixed_batch=fixed_batch)  # fmt: skip
    (spec,) = _specs([arch])
    windows = sorted({int(k) for k in windows})
    lengths, seeds = sorted({int(n) for n in lengths}), [*map(int, seeds)]
    success_threshold(0.0, margin)
    config = {
        "arch": spec,
        "windows": windows,
        "lengths": lengths,
        "seeds": seeds,
        "refine": refine,
        "margin": float(margin),
        "setup": setup.to_dict(),
    }

    def compute() -> dict[str, Any]:
        run = _Runner(store, force, workers, progress)
        series = {str(k): (lambda n, s, k=k: setup.run(spec, n, s, tbptt=k)) for k in windows}
        rows, cliffs = _cliff_search(series, setup, lengths, seeds, margin, refine, run)
        rows = [{"window": int(row.pop("arch")), **row} for row in rows]
        longest = {k: _longest_learned(c, lengths, refine) for k, c in cliffs.items()}
        budget = run.budget(setup, seeds, arch=spec, lengths=lengths, margin=margin)
        return {"rows": rows, "longest_learned": longest, "budget": budget}

    return _experiment(store, "tbptt-sweep", config, compute, force)


def _longest_learned(cliff_at: int | None, lengths: list[int], refine: bool) -> int | None:
    """The longest length learned, given the cliff: the grid length before it (or one less)."""
    if cliff_at is None:
        return lengths[-1]
    if refine and cliff_at > lengths[0]:
        return cliff_at - 1
    shorter = [n for n in lengths if n < cliff_at]
    return shorter[-1] if shorter else None


# ---------------------------------------------------------------- decay against length
def _scaled_rnn(radius: float, hidden_size: int, seed: int) -> RecurrentModel:
    """An untrained bpttlab tanh rnn in float64, W_hh rescaled to spectral radius ``radius``."""
    torch.manual_seed(seed)
    model = build("rnn", 1, hidden_size, 2).double()
    W_hh = model.core.weight_hh_l0  # (H, H)
    with torch.no_grad():
        W_hh.mul_(radius / torch.linalg.eigvals(W_hh).abs().max())
    return model


def _lyapunov_rate(model: RecurrentModel, x: torch.Tensor, hs: torch.Tensor, n: int) -> float:
    """Mean top Lyapunov exponent over the first ``n`` sequences of the batch.

    Each sequence's trajectory is rebuilt from the model's own weights and states,
    ``z_t = W_hh h_{t-1} + W_ih x_t + b``, and handed to ``dynamics.lyapunov_exponents``
    (QR on ``J_t = diag(tanh'(z_t)) W_hh``; Benettin et al. 1980).
    """
    core = model.core
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


def _decay_row(model: RecurrentModel, radius: float, batch: Batch, task: Task, n: int) -> Row:
    """One (radius, T) row: the measured ratio beside the naive and the Lyapunov predictions."""
    T = batch.x.shape[1]
    prof = gradient_profile(model, batch.x, lambda out: task.loss(out[0], batch))  # float64
    with torch.no_grad():
        hs = model(batch.x)[1]  # (B, T, H)
    mean_d = (1.0 - hs**2).mean().item()  # <tanh'(z_t)> on the actual trajectory
    lam = _lyapunov_rate(model, batch.x, hs, n)
    ratio = _ratio(prof.norms)
    return {
        "radius": radius, "length": T, "grad_h0": float(prof.norms[0]),
        "grad_hT": float(prof.norms[-1]), "ratio": ratio,
        "measured_rate": math.log(ratio) / T if ratio > 0 else -math.inf,
        "mean_derivative": mean_d, "naive": (radius * mean_d) ** T,
        "naive_rate": math.log(radius * mean_d), "lyapunov_rate": lam,
        "lyapunov": math.exp(lam * T),
    }  # fmt: skip


def decay_vs_length(
    lengths: Iterable[int] = range(10, 101, 10),
    radii: Sequence[float] = (0.95, 1.05),
    *,
    hidden_size: int = 32,
    batch_size: int = 32,
    noise: float = 1.0,
    seed: int = 0,
    lyapunov_samples: int = 8,
    store: Store | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Measured gradient decay against length, beside its two predictions; no training.

    For each radius, one untrained tanh rnn (``build("rnn")``, PyTorch's default init, seed
    ``seed``) has its W_hh rescaled by ``radius / rho(W_hh)`` and runs in float64 on copy-bit
    sequences with N(0, noise^2) inputs after the bit (one batch of the longest length; length
    T uses its first T steps). Per (radius, T):

    - ``ratio = ||dL/dh_0|| / ||dL/dh_T||`` (``gradient_profile``, Frobenius over the batch)
      and ``measured_rate = log(ratio) / T``;
    - ``naive = (rho <f'>)^T`` (the heuristic behind Pascanu et al. 2013, eq. 7), ``<f'>`` the
      mean tanh'(z_t) over this trajectory's batch, steps and units;
    - ``lyapunov = exp(lambda_1 T)``, ``lambda_1`` the top finite-time Lyapunov exponent of
      this trajectory (``dynamics.lyapunov_exponents``, mean over ``lyapunov_samples``
      sequences; Engelken, Wolf & Abbott 2023).

    The ratio is a norm over the whole batch, so the sequences with the largest gradients
    dominate it, while lambda_1 averages log-rates over sequences: by Jensen's inequality the
    measured rate tends to sit above (less negative than) the Lyapunov rate.

    Returns ``{"rows": [{"radius", "length", "grad_h0", "grad_hT", "ratio", "measured_rate",
    "mean_derivative", "naive", "naive_rate", "lyapunov_rate", "lyapunov"}], "config": {...}}``.
    """
    lengths = sorted({int(n) for n in lengths})
    config = {
        "lengths": lengths,
        "radii": [float(r) for r in radii],
        "hidden_size": hidden_size,
        "batch_size": batch_size,
        "noise": float(noise),
        "seed": seed,
        "lyapunov_samples": lyapunov_samples,
    }
    longest = get_task("copy-bit", lengths[-1], noise=float(noise))

    def compute() -> dict[str, Any]:
        full = longest.sample(batch_size, torch.Generator().manual_seed(seed))
        x = full.x.double()  # (B, T_max, 1)
        rows = []
        for radius in config["radii"]:
            model = _scaled_rnn(radius, hidden_size, seed)
            for T in lengths:
                task = get_task("copy-bit", T, noise=float(noise))
                batch = Batch(x[:, :T], full.target)  # the first T steps
                rows.append(_decay_row(model, radius, batch, task, lyapunov_samples))
        return {"rows": rows, "config": config}

    return _experiment(store, "decay-vs-length", config, compute, force)


# ---------------------------------------------------------------- clipping
# Measured (tests/test_experiments.py::test_clipping_demo_real_config): the relu RNN with
# W_hh = 2 I starts with ||dL/dh_0|| ~ 7e4 over 20 noisy steps and one plain SGD step at lr 0.1
# leaves it non-finite; the tanh RNN with W_hh ~ N(0, 0.25/H) starts with a ratio ~1e-13 at T=50.
CLIP_CASES: dict[str, dict[str, Any]] = {
    "exploding": {"arch": "rnn:activation=relu,init=identity,gain=2.0", "length": 20},
    "vanishing": {"arch": "rnn:init=gaussian,gain=0.5", "length": 50},
}
CLIP_KEYS = (
    "diverged",
    "diverged_at_step",
    "grad_h0_ratio",
    "grad_h0_ratio_init",
    "grad_h0_init",
    "grad_h0_final",
    "max_grad_norm",
    "accuracy",
)


def clipping_demo(
    *,
    steps: int = 100,
    seed: int = 0,
    hidden_size: int = 16,
    batch_size: int = 32,
    lr: float = 0.1,
    noise: float = 0.5,
    norm_threshold: float = 1.0,
    value_threshold: float = 0.1,
    profile_every: int = 10,
    device: str = "cpu",
    store: Store | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Clipping (Pascanu, Mikolov & Bengio 2013) against exploding and vanishing gradients.

    Two configurations (``CLIP_CASES``) on copy-bit with N(0, noise^2) inputs, fresh batches,
    plain SGD, each trained with no clipping, clipping by norm (total norm <=
    ``norm_threshold``) and by value (entries clamped to +-``value_threshold``):

    - exploding: relu RNN, W_hh = 2 I, T=20: without clipping the loss or gradient turns
      non-finite (``diverged_at_step``); clipped, it trains and stays finite.
    - vanishing: tanh RNN, W_hh ~ N(0, 0.25/H), T=50: clipping rescales the update but cannot
      create gradient where none arrives; ``grad_h0_ratio`` stays as small as it was.

    ``grad_h0_ratio = ||dL/dh_0|| / ||dL/dh_T||`` after training (a profile of the final model
    on the first training batch; null when that model's gradients are not finite),
    ``grad_h0_ratio_init`` before the first update.

    Returns ``{"runs": [{"case", "clip", "threshold", "diverged", "diverged_at_step",
    "grad_h0_ratio", "grad_h0_ratio_init", "grad_h0_init", "grad_h0_final", "max_grad_norm",
    "accuracy"}], "setup": {...}}``.
    """
    setup = Setup(
        device=device,
        task="copy-bit",
        steps=steps,
        batch_size=batch_size,
        hidden_size=hidden_size,
        optimizer="sgd",
        lr=lr,
        fixed_batch=False,
        task_options=(("noise", float(noise)),),
    )
    clips = {"none": None, "norm": float(norm_threshold), "value": float(value_threshold)}
    plan = [(case, clip) for case in CLIP_CASES for clip in clips]
    config = {
        "setup": setup.to_dict(),
        "seed": seed,
        "clips": clips,
        "profile_every": profile_every,
        "cases": CLIP_CASES,
    }

    def run_config(case: str, clip: str) -> RunConfig:
        c, threshold = CLIP_CASES[case], clips[clip] or 1.0
        return setup.run(
            c["arch"],
            c["length"],
            seed,
            clip=clip,
            clip_threshold=threshold,
            profile_every=profile_every,
        )

    def compute() -> dict[str, Any]:
        results = _Runner(store, force, workers, progress)([run_config(*p) for p in plan])
        runs = [
            {"case": case, "clip": clip, "threshold": clips[clip], **{k: r[k] for k in CLIP_KEYS}}
            for (case, clip), r in zip(plan, results, strict=True)
        ]
        return {"runs": runs, "setup": config}

    return _experiment(store, "clipping-demo", config, compute, force)
