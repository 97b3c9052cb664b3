"""One training run of an experiment, and the budget every architecture shares.

``RunConfig`` is everything that decides one run's numbers (its ``to_dict()`` is the store key);
``Setup`` is the budget an experiment gives every architecture; ``train_run`` builds, trains and
measures one run, single-threaded, so it gives the same bits serially and in a worker;
``_Runner`` sends a batch of runs through ``sweep.run_many`` into the store. The experiments
themselves live in :mod:`bpttlab.experiments`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from bpttlab import models
from bpttlab._json import jsonable
from bpttlab.models import _CONFIGS, RecurrentModel, build
from bpttlab.probe import gradient_profile
from bpttlab.store import RunOutput, Store, cached
from bpttlab.sweep import run_many
from bpttlab.tasks import Batch, Task, get_task, parse_task
from bpttlab.train import TrainConfig, evaluate, train

__all__ = ["EVAL_BATCHES", "LESSON", "RUN_KIND", "RunConfig", "Setup", "parse_arch", "train_run"]

RUN_KIND = "experiment-run"  # not "train": `bpttlab train` stores its own shape there
EVAL_BATCHES = 8  # held-out: 8 x batch_size fresh sequences (2048 at the lesson's batch)
Row = dict[str, Any]


# ---------------------------------------------------------------- architecture specs
def parse_arch(spec: str) -> tuple[str, dict[str, Any]]:
    """``"lstm:forget_bias=one"`` -> ``("lstm", {"forget_bias": "one"})``, checked in full.

    The spec is parsed by ``models.parse_arch`` (the CLI's parser: values converted by the type
    of the config field they set, unknown keys rejected with the list of allowed ones); the
    options are then checked by the architecture's config itself (choices, ranges), so a bad
    spec fails before anything trains. Raises ValueError naming the spec.
    """
    name, options = models.parse_arch(str(spec))
    try:
        _CONFIGS[name](1, 1, 1, **options)
    except ValueError as error:
        raise ValueError(f"arch {spec!r}: {error}") from None
    return name, options


# ---------------------------------------------------------------- configs
@dataclass(frozen=True)
class RunConfig:
    """Everything that decides one training run's numbers; ``to_dict()`` is its store key.

    ``arch_options`` and ``task_options`` are sorted (name, value) pairs, e.g.
    ``(("forget_bias", "one"),)``.
    """

    arch: str
    length: int
    train: TrainConfig
    arch_options: tuple[tuple[str, Any], ...] = ()
    hidden_size: int = 32
    task: str = "copy-bit"
    task_options: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        options = {"arch_options": dict(self.arch_options), "task_options": dict(self.task_options)}
        return {**d, **options, "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of ``to_dict``: a stored run's config rebuilds the run."""
        d = dict(data)
        d["train"] = TrainConfig.from_dict(d["train"])
        d["arch_options"], d["task_options"] = _pairs(d["arch_options"]), _pairs(d["task_options"])
        return cls(**d)


@dataclass(frozen=True)
class Setup:
    """The training budget every architecture gets in an experiment, stated in its output.

    Defaults: the lesson's exercise (copy-bit, 500 Adam steps at lr 1e-2 on one fixed batch of
    256, hidden 32). ``task_options`` may be given as a dict; it is kept as sorted pairs.
    Raises ValueError for a bad task, task option or training field.
    """

    task: str = "copy-bit"
    steps: int = 500
    batch_size: int = 256
    hidden_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-2
    fixed_batch: bool = True
    task_options: tuple[tuple[str, Any], ...] = ()
    device: str = "cpu"

    def __post_init__(self) -> None:
        h = self.hidden_size
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ValueError(f"hidden_size={h!r} is not allowed: must be an int >= 1")
        object.__setattr__(self, "task_options", tuple(sorted(dict(self.task_options).items())))
        self.task_at(64 if self.task == "digits" else 8)  # checks the task and its options
        object.__setattr__(self, "lr", self.train_config(seed=0).lr)  # checks training fields

    def task_at(self, length: int) -> Task:
        return get_task(self.task, length, **dict(self.task_options))

    def train_config(self, seed: int, **train_kw: Any) -> TrainConfig:
        return TrainConfig(
            optimizer=self.optimizer,
            lr=self.lr,
            steps=self.steps,
            batch_size=self.batch_size,
            fixed_batch=self.fixed_batch,
            seed=seed,
            device=self.device,
            eval_batches=EVAL_BATCHES,
            **train_kw,
        )

    def run(self, spec: str, length: int, seed: int, **train_kw: Any) -> RunConfig:
        """The RunConfig of arch ``spec`` at ``length`` and ``seed`` (TrainConfig extras)."""
        name, options = parse_arch(spec)
        train_config = self.train_config(seed, **train_kw)
        arch_options = tuple(sorted(options.items()))
        return RunConfig(
            name, length, train_config, arch_options, self.hidden_size, self.task, self.task_options
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "task_options": dict(self.task_options)}


# The lesson's duel (REFERENCES.md): copy-bit at T=30, 300 steps, PyTorch's default inits.
LESSON = Setup(steps=300)
LESSON_LENGTH = 30
PRESETS = {"lesson": (LESSON, LESSON_LENGTH)}


# ---------------------------------------------------------------- one training run
def _ratio(norms: Sequence[float]) -> float:
    """``||dL/dh_0|| / ||dL/dh_T||`` of a profile; NaN when not finite."""
    first, last = float(norms[0]), float(norms[-1])
    ok = math.isfinite(first) and math.isfinite(last) and last > 0
    return first / last if ok else math.nan


def _first_batch(model: RecurrentModel, task: Task, config: TrainConfig) -> Batch:
    """The first training batch (the fixed one), redrawn exactly as ``train`` drew it."""
    batch = task.sample(config.batch_size, torch.Generator().manual_seed(config.seed), "train")
    param = next(model.parameters())
    return Batch(batch.x.to(param), batch.target.to(param.device), batch.index)


def _after_training(
    model: RecurrentModel, task: Task, config: TrainConfig, diverged: bool
) -> tuple[float | None, list[float] | None]:
    """Accuracy on the fixed batch and a profile on it (if ``profile_every``), after training."""
    batch = _first_batch(model, task, config)
    accuracy = None
    if config.fixed_batch and not diverged:
        with torch.no_grad():
            accuracy = task.accuracy(model(batch.x)[0], batch)
    profile = None
    if config.profile_every:
        prof = gradient_profile(model, batch.x, lambda out: task.loss(out[0], batch))
        profile = [float(v) for v in prof.norms]
    return accuracy, profile


def train_run(config: RunConfig) -> RunOutput:
    """Build, train (``train.train``), evaluate: one run, single-threaded, so that it gives the
    same bits in this process and in any worker (and runs fastest at these sizes).

    Returns a ``RunOutput`` whose result has: accuracy, loss (held-out), train_accuracy,
    final_train_loss, grad_h0_init / grad_h0_final (``||dL/dh_0||`` at the first and last step),
    grad_h0_ratio_init / grad_h0_ratio (first profile; profile after training; None without
    ``profile_every``), max_grad_norm (before clipping), diverged, diverged_at_step, steps_run,
    eval_sequences, wall_time_s. Metrics: the per-step lists of ``TrainResult``; profiles: every
    ``profile_every`` steps, plus one after training. Non-finite numbers become None.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = get_task(config.task, config.length, **dict(config.task_options))
        torch.manual_seed(config.train.seed)  # then build: core first, head second
        options = dict(config.arch_options)
        model = build(config.arch, task.input_size, config.hidden_size, task.output_size, **options)
        res = train(model, task, config.train)
        accuracy, loss = evaluate(model, task, config.train)  # fresh held-out sequences
        fixed_accuracy, final = _after_training(model, task, config.train, res.diverged)
    finally:
        torch.set_num_threads(threads)
    profiles = {p["step"]: p["norms"] for p in res.profiles}
    if final is not None and res.steps_run not in profiles:
        profiles[res.steps_run] = final
    ratios = [_ratio(norms) for _, norms in sorted(profiles.items())] or [None]
    result = {
        "accuracy": accuracy, "loss": loss,
        "train_accuracy": res.train_accuracy[-1] if fixed_accuracy is None else fixed_accuracy,
        "final_train_loss": res.train_loss[-1],
        "grad_h0_init": res.grad_h0[0], "grad_h0_final": res.grad_h0[-1],
        "grad_h0_ratio_init": ratios[0], "grad_h0_ratio": ratios[-1],
        "max_grad_norm": max(res.grad_norm), "diverged": res.diverged,
        "diverged_at_step": res.diverged_at_step, "steps_run": res.steps_run,
        "eval_sequences": config.train.eval_batches * config.train.batch_size,
        "wall_time_s": res.wall_time_s,
    }  # fmt: skip
    names = ("train_loss", "train_accuracy", "grad_h0", "grad_norm", "clipped_grad_norm")
    metrics: dict[str, Any] = {name: getattr(res, name) for name in names}
    metrics["eval_accuracy"] = [(e["step"], e["accuracy"]) for e in res.eval_history]
    return RunOutput(jsonable(result), metrics, profiles, seed=config.train.seed)


@dataclass
class _Runner:
    """Runs RunConfigs through ``sweep.run_many`` (kind ``RUN_KIND``) and keeps every result."""

    store: Store | None
    force: bool
    workers: int | None
    progress: bool
    done: list[Row] = field(default_factory=list)

    def __call__(self, configs: Sequence[RunConfig]) -> list[Row]:
        results = run_many(
            train_run,
            configs,
            workers=self.workers,
            store=self.store,
            kind=RUN_KIND,
            force=self.force,
            progress=self.progress,
        )
        self.done.extend(results)
        return results

    def budget(self, setup: Setup, seeds: Sequence[int], **extra: Any) -> dict[str, Any]:
        """What every architecture got, stated once, with the total training time."""
        return {
            **setup.to_dict(),
            "seeds": list(seeds),
            **extra,
            "eval_sequences": EVAL_BATCHES * setup.batch_size,
            "runs": len(self.done),
            "train_seconds": sum(r["wall_time_s"] for r in self.done),
        }


def _experiment(
    store: Store | None, kind: str, config: dict[str, Any], compute: Callable[[], Any], force: bool
) -> dict[str, Any]:
    """The experiment's summary, stored under ``kind`` when there is a store."""
    if store is None:
        return jsonable(compute())
    return cached(store, kind, config, lambda: jsonable(compute()), force=force)


def _specs(archs: Sequence[str]) -> list[str]:
    """Arch specs, checked (parse_arch) before anything trains."""
    specs = [str(a).strip() for a in archs]
    for spec in specs:
        parse_arch(spec)
    return specs


def _task(spec: str, options: dict[str, Any] | None) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """A task spec (``"copy-bit:noise=0.5"``, ``tasks.parse_task``) and options given apart
    -> (name, sorted option pairs); an option given apart wins over the spec's."""
    name, parsed = parse_task(spec)
    return name, _pairs({**parsed, **(options or {})})


def _number(value: float | None) -> float:
    """A stored figure as a float: None (non-finite in JSON) becomes NaN."""
    return math.nan if value is None else float(value)


def _pairs(options: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((options or {}).items()))
