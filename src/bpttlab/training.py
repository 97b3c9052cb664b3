"""Training with the gradient in view: ``||dL/dh_0||`` and the parameter-gradient norm every step.

``train(model, task, TrainConfig(...)) -> TrainResult``. The loop is the plain one (zero_grad,
forward, loss, backward, clip, step); around it sit the measurements this lab is about:

- ``grad_h0``: ``||dL/dh_0||`` (float64) of every step, read from an initial state of zeros with
  ``requires_grad=True``: the same backward that trains the model fills ``h0.grad``.
- ``grad_norm`` / ``clipped_grad_norm`` / ``clipped_grad_max_abs``: the total parameter-gradient
  norm before and after clipping, and the largest entry after it.
- ``profiles``: the full ``||dL/dh_t||``, t = 0..T (``probe.gradient_profile``), every
  ``profile_every`` steps: a time x training-step picture of vanishing or exploding gradients.

Step ``s`` means "after ``s`` parameter updates": ``train_loss[s]``, ``grad_h0[s]`` and the profile
at ``s`` are measured on the model after ``s`` updates, and so is an evaluation at ``s`` (held-out
batches, ``split="test"``, the same ones every time). A non-finite loss or gradient at step ``k``
stops the run without updating (``diverged_at_step=k``): it never raises.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn

from bpttlab._util import (
    ConfigError,
    check_bool,
    check_choice,
    check_float,
    check_int,
    is_int,
    jsonable,
)
from bpttlab._util import progress as progress_bar
from bpttlab.cells import CellStack
from bpttlab.models import RecurrentModel
from bpttlab.probe import gradient_profile
from bpttlab.tasks import Batch, FixedBatch, Task

__all__ = [
    "CLIPS",
    "DEVICES",
    "MAX_STEPS",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "check_tbptt",
    "clip_gradients",
    "evaluate",
    "train",
]

OPTIMIZERS = ("adam", "rmsprop", "sgd")
CLIPS = ("none", "norm", "variable-norm", "value")
DEVICES = ("cpu", "cuda")
MAX_STEPS = 10_000_000  # more optimiser steps than any run here needs: a larger value is a typo
# Held-out batches come from their own generator, seeded with seed ^ _EVAL_SEED (never = seed).
# Not seed + 2**32: the CPU generator keeps only the low 32 bits of a seed.
_EVAL_SEED = 0x5EED5EED
State = Tensor | tuple[Tensor, Tensor]


def clip_gradients(params: Iterable[Tensor], rule: str, threshold: float) -> None:
    """Clip the ``.grad`` of ``params`` in place by ``rule`` (one of :data:`CLIPS`), as
    :func:`train` does between the backward and the optimiser step.

    "norm" rescales the whole gradient to total norm <= ``threshold`` (``clip_grad_norm_``,
    Keras's ``global_clipnorm``); "variable-norm" rescales each parameter's gradient by its own
    norm (Keras 3's ``clipnorm``); "value" clamps every entry to ``[-threshold, threshold]``
    (``clipvalue``); "none" leaves them. Parameters without a ``.grad`` are skipped."""
    check_choice("clip", rule, CLIPS)
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold={threshold!r} is not allowed: use a finite number > 0")
    params = [p for p in params if p.grad is not None]
    if rule == "norm":  # against exploding gradients (Pascanu, Mikolov & Bengio 2013)
        torch.nn.utils.clip_grad_norm_(params, threshold)
    elif rule == "variable-norm":
        for p in params:
            torch.nn.utils.clip_grad_norm_([p], threshold)
    elif rule == "value":
        torch.nn.utils.clip_grad_value_(params, threshold)


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every field is checked on construction (ValueError naming it).

    ``clip``: "norm" rescales the whole gradient to total norm <= ``clip_threshold`` (Pascanu,
    Mikolov & Bengio 2013, Algorithm 1; PyTorch's ``clip_grad_norm_``, Keras's
    ``global_clipnorm``); "variable-norm" rescales each parameter's gradient by its own norm
    (Keras 3's ``clipnorm``); "value" clamps each entry to ``[-clip_threshold,
    clip_threshold]`` (Keras's ``clipvalue``). ``tbptt=k`` detaches the state
    every k steps (truncated BPTT, Williams & Peng 1990). ``eval_every=None`` evaluates only at
    the end; ``fixed_batch`` trains on one batch throughout, as the lesson does.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    steps: int = 200
    batch_size: int = 32
    clip: str = "none"
    clip_threshold: float = 1.0
    tbptt: int | None = None
    eval_every: int | None = None
    eval_batches: int = 4
    profile_every: int | None = None
    seed: int = 0
    device: str = "cpu"
    fixed_batch: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (("optimizer", OPTIMIZERS), ("clip", CLIPS), ("device", DEVICES)):
            check_choice(name, getattr(self, name), allowed)
        for name in ("lr", "clip_threshold"):  # as floats: 1 and 1.0 make one config (one key)
            object.__setattr__(self, name, check_float(name, getattr(self, name), low=0,
                                                       low_open=True))  # fmt: skip
        for name in ("steps", "batch_size", "eval_batches"):  # a typo of 1e12 steps is refused
            check_int(name, getattr(self, name), 1, MAX_STEPS)
        for name in ("tbptt", "eval_every", "profile_every"):
            value = getattr(self, name)
            if value is not None and not (is_int(value) and value >= 1):
                raise ConfigError(name, value, "must be an int >= 1 or None")
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_bool("fixed_batch", self.fixed_batch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; unknown keys raise ValueError listing the fields."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; allowed: {', '.join(names)}")
        return cls(**data)


@dataclass(frozen=True)
class TrainResult:
    """What a run measured. Per-step lists have one entry per step 0..steps_run - 1, plus the
    diverged step if any; ``to_dict()`` is JSON-able with non-finite floats as None.

    Attributes:
        accuracy, loss: final evaluation on held-out batches (NaN if the model outputs NaN).
        train_loss, train_accuracy: on each step's training batch.
        grad_h0: ``||dL/dh_0||`` per step, float64, of the top layer's initial state (all
            directions; the h part of an LSTM's (h0, c0)): the profile's ``norms[0]``.
        grad_norm: total parameter-gradient norm before clipping; clipped_grad_norm after it.
        clipped_grad_max_abs: largest |entry| of the parameter gradients after clipping.
        eval_history: ``{"step", "accuracy", "loss"}`` per evaluation.
        profiles: ``{"step", "norms"}``, norms = ``||dL/dh_t||`` for t = 0..T (full BPTT).
        steps_run: parameter updates made. diverged_at_step: the step that was non-finite.
        config: ``TrainConfig.to_dict()``; model, task: the model's and task's config dicts.
    """

    accuracy: float
    loss: float
    train_loss: list[float]
    train_accuracy: list[float]
    grad_h0: list[float]
    grad_norm: list[float]
    clipped_grad_norm: list[float]
    clipped_grad_max_abs: list[float]
    eval_history: list[dict[str, float]]
    profiles: list[dict[str, Any]]
    diverged: bool
    diverged_at_step: int | None
    steps_run: int
    wall_time_s: float
    config: dict[str, Any]
    seed: int
    model: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


# ---------------------------------------------------------------- forward, with truncation
def _initial_state(model: RecurrentModel, batch_size: int, x: Tensor) -> State:
    """Zeros (L*D, B, S) with requires_grad, so ``h0.grad`` is dL/dh_0; (h0, c0) for an LSTM."""
    LD = model.num_layers * model.num_directions
    h0 = x.new_zeros(LD, batch_size, model.state_size // model.num_directions, requires_grad=True)
    if isinstance(model.core, nn.LSTM):
        return h0, x.new_zeros(LD, batch_size, model.hidden_size)  # c0 (L*D, B, H)
    return h0


def check_tbptt(model: nn.Module) -> None:
    """Truncation needs the full state between chunks: fused cores, or a one-layer CellStack."""
    core = getattr(model, "core", None)
    ok = isinstance(core, nn.RNNBase) and not core.bidirectional
    ok = ok or (isinstance(core, CellStack) and core.num_layers == 1 and core.num_directions == 1
                and core.skip == 0)  # fmt: skip
    if not ok:
        name = getattr(model, "name", type(model).__name__)
        raise ValueError(
            f"tbptt is not supported for model {name!r}: needs a unidirectional model whose "
            "state is carried step to step (rnn, irnn, lstm, gru, attention-rnn, "
            "orthogonal-rnn, lru, one-layer sigmoid rnn); use tbptt=None"
        )


def _forward(model: RecurrentModel, x: Tensor, h0: State, tbptt: int | None) -> Tensor:
    """Readout ``y`` (B, T, out) of ``x`` (B, T, I); with ``tbptt=k`` the core runs in chunks of
    k steps and the state is detached between them, so no gradient crosses a chunk boundary."""
    if tbptt is None:
        return model(x, h0)[0]
    core, h, chunks = model.core, h0, []
    for start in range(0, x.shape[1], tbptt):
        x_c = x[:, start : start + tbptt]  # (B, k, I)
        if isinstance(core, nn.RNNBase):
            hs_c, h = core(x_c, h)  # (B, k, S), h_n (L, B, H) or (h_n, c_n)
        else:
            hs_c = core(x_c, h)  # (B, k, S)
            h = hs_c[:, -1].unsqueeze(0)  # (1, B, S): the one layer's last state
        chunks.append(hs_c)
        # truncated BPTT: carry the state forward, cut its gradient path back
        h = (h[0].detach(), h[1].detach()) if isinstance(h, tuple) else h.detach()
    return model.head(torch.cat(chunks, dim=1), x)  # (B, T, out); the head sees every step


def _loss_and_backward(
    model: RecurrentModel, task: Task, batch: Batch, config: TrainConfig, h0: State
) -> tuple[Tensor, Tensor]:
    """Forward (truncated if ``config.tbptt``), ``task.loss``, one backward. Returns the detached
    loss (scalar) and readout ``y`` (B, T, out); gradients land in ``.grad`` and ``h0.grad``."""
    y = _forward(model, batch.x, h0, config.tbptt)  # (B, T, out)
    loss = task.loss(y, batch)
    loss.backward()
    return loss.detach(), y.detach()


# ---------------------------------------------------------------- measurements
def _grad_norm(params: list[nn.Parameter]) -> float:
    """Total norm of the parameter gradients, in float64."""
    norms = [p.grad.detach().double().norm() for p in params if p.grad is not None]
    return torch.stack(norms).norm().item() if norms else 0.0


def _grad_max_abs(params: list[nn.Parameter]) -> float:
    maxima = [p.grad.detach().abs().max().double() for p in params if p.grad is not None]
    return torch.stack(maxima).max().item() if maxima else 0.0


@torch.no_grad()
def evaluate(model: RecurrentModel, task: Task, config: TrainConfig) -> tuple[float, float]:
    """(accuracy, loss) averaged over ``eval_batches`` held-out batches (``split="test"``) drawn
    from a generator seeded with ``seed ^ 0x5EED5EED``: the same batches at every call. A
    ``FixedBatch`` task is evaluated on fresh batches of the task it wraps."""
    generator = torch.Generator().manual_seed(config.seed ^ _EVAL_SEED)
    if isinstance(task, FixedBatch):  # held out means fresh sequences, not the training batch
        task = task.task
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    accuracy = loss = 0.0
    for _ in range(config.eval_batches):
        batch = _to(task.sample(config.batch_size, generator, split="test"), param)
        y, _ = model(batch.x)  # (B, T, out)
        loss += task.loss(y, batch).item() / config.eval_batches
        accuracy += task.accuracy(y, batch) / config.eval_batches
    model.train(was_training)
    return (accuracy if math.isfinite(loss) else math.nan), loss


def _to(batch: Batch, param: Tensor) -> Batch:
    """The batch on the model's device, ``x`` in the model's dtype."""
    batch = batch.to(param.device)
    return Batch(batch.x.to(param.dtype), batch.target, batch.index)


def _loss_of_output(task: Task, batch: Batch, out: tuple[Tensor, Tensor]) -> Tensor:
    return task.loss(out[0], batch)


# ---------------------------------------------------------------- the loop
def train(
    model: RecurrentModel,
    task: Task,
    config: TrainConfig,
    *,
    progress: bool = False,
    profile_fn: Callable[..., Any] | None = None,
) -> TrainResult:
    """Train ``model`` (in place) on ``task``; see the module docstring for what is logged.

    Arguments:
        model: a bpttlab model, ``model(x (B, T, I), h0) -> (y (B, T, out), hs)``.
        task: a bpttlab task; wrapped in a fresh ``FixedBatch`` if ``config.fixed_batch`` (or if
            it already is one, so that a reused task cannot leak a batch from another seed).
        progress: a rich progress bar on stderr (only when stderr is a terminal).
        profile_fn: ``(model, x, loss_fn) -> Profile`` (or anything with ``.norms``);
            default ``probe.gradient_profile``.
    Raises ValueError for ``device="cuda"`` without CUDA or an unsupported ``tbptt``.
    """
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda is not available (no CUDA device found); use --device cpu")
    if config.tbptt is not None:
        check_tbptt(model)
    if config.fixed_batch or isinstance(task, FixedBatch):
        task = FixedBatch(task.task if isinstance(task, FixedBatch) else task)
    profile_fn = profile_fn or gradient_profile
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)  # the training batches
    model.to(config.device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt_class = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
    optimizer = opt_class[config.optimizer](params, lr=config.lr)
    log: dict[str, list[float]] = {k: [] for k in ("train_loss", "train_accuracy", "grad_h0",
        "grad_norm", "clipped_grad_norm", "clipped_grad_max_abs")}  # fmt: skip
    evals: list[dict[str, float]] = []
    profiles: list[dict[str, Any]] = []
    diverged_at: int | None = None
    t0 = time.perf_counter()

    def record_eval(step: int) -> None:
        accuracy, loss = evaluate(model, task, config)
        evals.append({"step": step, "accuracy": accuracy, "loss": loss})

    step = 0
    with progress_bar("train", progress, "loss") as bar:
        bar_task = bar.add_task("train", total=config.steps, loss="-")
        for step in range(config.steps):
            if config.eval_every and step % config.eval_every == 0:
                record_eval(step)
            batch = _to(task.sample(config.batch_size, generator, split="train"), params[0])
            if config.profile_every and step % config.profile_every == 0:
                loss_fn = functools.partial(_loss_of_output, task, batch)
                prof: Any = profile_fn(model, batch.x, loss_fn)
                norms = getattr(prof, "norms", prof)
                profiles.append({"step": step, "norms": [float(v) for v in norms]})

            optimizer.zero_grad(set_to_none=True)
            h0 = _initial_state(model, config.batch_size, batch.x)
            loss, y = _loss_and_backward(model, task, batch, config, h0)
            dL_dh0 = (h0[0] if isinstance(h0, tuple) else h0).grad  # (L*D, B, S)
            if dL_dh0 is not None:  # the top layer's h_0, as a profile's norms[0] (DESIGN)
                dL_dh0 = dL_dh0[-model.num_directions :]  # (D, B, S)
            log["train_loss"].append(loss.item())
            log["train_accuracy"].append(task.accuracy(y, batch))
            log["grad_h0"].append(0.0 if dL_dh0 is None else dL_dh0.double().norm().item())
            log["grad_norm"].append(_grad_norm(params))
            if not all(math.isfinite(log[k][-1]) for k in ("train_loss", "grad_h0", "grad_norm")):
                diverged_at = step  # NaN/Inf: stop before the update spreads it into the weights
                log["clipped_grad_norm"].append(math.nan)
                log["clipped_grad_max_abs"].append(math.nan)
                break

            clip_gradients(params, config.clip, config.clip_threshold)
            log["clipped_grad_norm"].append(_grad_norm(params))
            log["clipped_grad_max_abs"].append(_grad_max_abs(params))
            optimizer.step()
            bar.update(bar_task, advance=1, loss=f"{log['train_loss'][-1]:.4f}")
        else:
            step = config.steps

    if not evals or evals[-1]["step"] != step:
        record_eval(step)
    return TrainResult(
        accuracy=evals[-1]["accuracy"],
        loss=evals[-1]["loss"],
        **log,
        eval_history=evals,
        profiles=profiles,
        diverged=diverged_at is not None,
        diverged_at_step=diverged_at,
        steps_run=step,
        wall_time_s=time.perf_counter() - t0,
        config=config.to_dict(),
        seed=config.seed,
        model=model.config.to_dict() if hasattr(model, "config") else {},
        task=task.config.to_dict(),
    )
