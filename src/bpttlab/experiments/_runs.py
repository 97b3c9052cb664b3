"""The one run pipeline: every training run and every profile of a model, CLI and library alike.

    RunConfig     -> train_run()   -> RunOutput(RunResult, per-step metrics, profiles)
    ProfileConfig -> profile_run() -> ProfileResult (norms, diagnosis, what training it had)

A config holds everything that decides a run's numbers; its ``to_dict()`` is the run's store
key (with the machine's fingerprint, ``environment.fingerprint``). ``Budget`` is what an
experiment gives every architecture; ``Runner`` sends a batch of runs through
``sweep.run_many`` into the store. ``bpttlab train`` and ``bpttlab profile`` call the same
functions the experiments, the README generator and the results scripts call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from bpttlab._util import ConfigError, check_choice, check_int, check_memory, jsonable
from bpttlab.diagnosis import diagnose_profile
from bpttlab.models import RecurrentModel, arch_config, build, parse_arch
from bpttlab.probe import gradient_profile
from bpttlab.specs import Spec
from bpttlab.store import RunOutput, Store, cached
from bpttlab.sweep import run_many
from bpttlab.tasks import Batch, Task, get_task, parse_task
from bpttlab.training import MAX_STEPS, TrainConfig, train

__all__ = [
    "EVAL_BATCHES",
    "PROFILE_KIND",
    "RUN_KIND",
    "Budget",
    "ProfileConfig",
    "ProfileResult",
    "RunConfig",
    "RunResult",
    "Runner",
    "Setting",
    "experiment",
    "grad_ratio",
    "profile_run",
    "train_run",
]

RUN_KIND = "run"  # every training run: `bpttlab train` and every experiment's
PROFILE_KIND = "profile"
EVAL_BATCHES = 8  # held-out: 8 x batch_size fresh sequences (2048 at the lesson's batch)
Pairs = tuple[tuple[str, Any], ...]


def _pairs(options: dict[str, Any] | Pairs | None) -> Pairs:
    return tuple(sorted(dict(options or {}).items()))


# ---------------------------------------------------------------- what is run
@dataclass(frozen=True)
class Setting:
    """A model on a task: architecture and options, task and options, length, hidden size.

    Build one from specs with :meth:`from_specs` (``"lstm:forget_bias=one"``,
    ``"copy-bit:noise=0.5"``); the options are kept as sorted (name, value) pairs.
    """

    arch: str = "rnn"
    length: int = 20
    arch_options: Pairs = ()
    hidden_size: int = 32
    task: str = "copy-bit"
    task_options: Pairs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch_options", _pairs(self.arch_options))
        object.__setattr__(self, "task_options", _pairs(self.task_options))
        check_int("hidden_size", self.hidden_size)
        self.make_task()  # checks the task, its options and the length
        arch_config(self.arch, 1, 1, 1, **dict(self.arch_options))  # checks the architecture

    @staticmethod
    def specs(arch: str, task: str, arch_field: str = "arch") -> dict[str, Any]:
        """``arch``/``task`` specs -> the fields they set (checked; errors name the field)."""
        name, options = parse_arch(arch, arch_field)
        task_name, task_options = parse_task(task)
        return {"arch": name, "arch_options": _pairs(options), "task": task_name,
                "task_options": _pairs(task_options)}  # fmt: skip

    def make_task(self) -> Task:
        return get_task(self.task, self.length, **dict(self.task_options))

    def check_memory(self, batch_size: int) -> None:
        """Refuse a run that cannot fit in memory, before anything is allocated.

        The estimate: parameters with their gradients and Adam's two moments, and the
        activations BPTT keeps, ``B x T x (G H + I)`` floats for ``G`` gate blocks per layer
        and direction, times 8 for autograd's saved tensors, the probes and the gradients.
        The error names whichever of hidden_size, length or batch_size is furthest above its
        default.
        """
        task = self.make_task()
        opts = dict(self.arch_options)
        layers = int(opts.get("num_layers", 1)) * (2 if opts.get("bidirectional") else 1)
        gates = {"lstm": 4, "gru": 3}.get(self.arch, 1) * (2 if self.arch == "lru" else 1)
        H, n_in, T, B = self.hidden_size, task.input_size, task.max_steps, batch_size
        params = layers * gates * H * (H + n_in + 2) + (H + 1) * task.output_size
        acts = B * T * (layers * gates * H + n_in) * 8
        needed = 4.0 * (4 * params + acts)
        ratios = {"hidden_size": H / 32, "length": self.length / 20, "batch_size": B / 64}
        field = max(ratios, key=lambda k: ratios[k])
        value = {"hidden_size": H, "length": self.length, "batch_size": B}[field]
        check_memory(field, value, needed, f"{self.arch} with hidden {H}, {T} steps and batch {B}")

    def make_model(self, seed: int, task: Task | None = None) -> RecurrentModel:
        """The model, its weights drawn after ``torch.manual_seed(seed)`` (core, then head)."""
        task = task or self.make_task()
        torch.manual_seed(seed)
        return build(self.arch, task.input_size, self.hidden_size, task.output_size,
                     **dict(self.arch_options))  # fmt: skip

    def setting_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Setting)}


@dataclass(frozen=True)
class RunConfig(Setting):
    """One training run: a :class:`Setting` and how it is trained."""

    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_memory(self.train.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return {**self.setting_dict(), "arch_options": dict(self.arch_options),
                "task_options": dict(self.task_options), "train": self.train.to_dict()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of ``to_dict``: a stored run's config rebuilds the run."""
        return cls(**{**data, "train": TrainConfig.from_dict(data["train"])})


@dataclass(frozen=True)
class RunResult:
    """What one training run measured (held-out means ``training.evaluate``'s fresh batches).

    ``grad_h0_*``: ``||dL/dh_0||`` at the first and last step; ``grad_h0_ratio_*``:
    ``||dL/dh_0|| / ||dL/dh_T||`` of the first profile and of a profile after training (None
    without ``profile_every``); ``train_accuracy``: on the fixed batch after training, else on
    the last step's batch. Non-finite figures are None in ``to_dict()``.
    """

    accuracy: float | None
    loss: float | None
    train_accuracy: float | None
    final_train_loss: float | None
    grad_h0_init: float | None
    grad_h0_final: float | None
    grad_h0_ratio_init: float | None
    grad_h0_ratio: float | None
    max_grad_norm: float | None
    diverged: bool
    diverged_at_step: int | None
    steps_run: int
    eval_sequences: int
    chance: float
    baseline_loss: float
    wall_time_s: float

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def grad_ratio(norms: Sequence[float]) -> float:
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
    """Build, train (``training.train``), measure: one run, single-threaded, so that it gives
    the same bits in this process and in any worker (and runs fastest at these sizes).

    Returns a ``RunOutput``: the result is ``RunResult.to_dict()``; metrics are the per-step
    series (train_loss, train_accuracy, grad_h0, grad_norm, clipped_grad_norm, and
    eval_accuracy/eval_loss at each evaluation); profiles every ``profile_every`` steps plus one
    after training.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = config.make_task()
        model = config.make_model(config.train.seed, task)
        res = train(model, task, config.train)
        fixed_accuracy, final = _after_training(model, task, config.train, res.diverged)
    finally:
        torch.set_num_threads(threads)
    profiles = {p["step"]: p["norms"] for p in res.profiles}
    if final is not None and res.steps_run not in profiles:
        profiles[res.steps_run] = final
    ratios: list[float | None] = [grad_ratio(n) for _, n in sorted(profiles.items())] or [None]
    result = RunResult(
        accuracy=res.accuracy, loss=res.loss,
        train_accuracy=res.train_accuracy[-1] if fixed_accuracy is None else fixed_accuracy,
        final_train_loss=res.train_loss[-1],
        grad_h0_init=res.grad_h0[0], grad_h0_final=res.grad_h0[-1],
        grad_h0_ratio_init=ratios[0], grad_h0_ratio=ratios[-1],
        max_grad_norm=max(res.grad_norm), diverged=res.diverged,
        diverged_at_step=res.diverged_at_step, steps_run=res.steps_run,
        eval_sequences=config.train.eval_batches * config.train.batch_size,
        chance=task.chance, baseline_loss=task.baseline_loss, wall_time_s=res.wall_time_s,
    )  # fmt: skip
    names = ("train_loss", "train_accuracy", "grad_h0", "grad_norm", "clipped_grad_norm")
    metrics: dict[str, Any] = {name: getattr(res, name) for name in names}
    metrics["eval_accuracy"] = [(e["step"], e["accuracy"]) for e in res.eval_history]
    metrics["eval_loss"] = [(e["step"], e["loss"]) for e in res.eval_history]
    return RunOutput(result.to_dict(), metrics, profiles, seed=config.train.seed)


# ---------------------------------------------------------------- profiles
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class ProfileConfig(Setting):
    """A gradient profile of a model (trained first for ``train_steps`` Adam steps at ``lr``)
    on a held-out batch of ``batch_size``, in ``dtype`` (float32 underflows to exact zeros near
    1e-45, float64 does not)."""

    batch_size: int = 64
    train_steps: int = 0
    lr: float = 1e-2
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("batch_size", self.batch_size)
        check_int("train_steps", self.train_steps, 0, MAX_STEPS)
        self.check_memory(self.batch_size)
        check_choice("dtype", self.dtype, tuple(DTYPES))
        TrainConfig(lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                    device=self.device)  # checks lr, seed and device, trained or not  # fmt: skip

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.train_steps, lr=self.lr, batch_size=self.batch_size,
                           seed=self.seed, device=self.device)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**d, "arch_options": dict(self.arch_options),
                "task_options": dict(self.task_options)}  # fmt: skip


@dataclass(frozen=True)
class ProfileResult:
    """``norms``: ``||dL/dh_t||``, t = 0..T (T: the task's steps, e.g. L + 20 on
    copy-memory); ``diagnosis``: ``Diagnosis.to_dict()`` with ``decay_rate`` (its
    ``rate_per_step``); ``trained``: steps, accuracy, loss, diverged, or None."""

    T: int
    norms: list[float | None]
    log10_norms: list[float | None]
    float32_underflow_at: int | None
    method: str
    loss: float | None
    trained: dict[str, Any] | None
    diagnosis: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def profile_run(config: ProfileConfig) -> dict[str, Any]:
    """Build (and train, if ``train_steps``) the model, then take its gradient profile on a
    held-out batch (generator seeded ``seed + 1``) and diagnose it. Returns
    ``ProfileResult.to_dict()``."""
    task = config.make_task()
    model = config.make_model(config.seed, task)
    trained = None
    if config.train_steps > 0:
        res = train(model, task, config.train_config(), progress=True)
        trained = {"steps": res.steps_run, "accuracy": res.accuracy, "loss": res.loss,
                   "diverged": res.diverged}  # fmt: skip
    dtype = DTYPES[config.dtype]
    model = model.to(device=config.device, dtype=dtype)
    generator = torch.Generator().manual_seed(config.seed + 1)
    batch = task.sample(config.batch_size, generator, split="test").to(config.device)
    x = batch.x.to(dtype)  # (B, T, I)
    prof = gradient_profile(model, x, lambda out: task.loss(out[0], batch))
    diagnosis = diagnose_profile(prof, model).to_dict()
    diagnosis["decay_rate"] = diagnosis["rate_per_step"]  # natural log per step back
    result = ProfileResult(
        T=prof.T, norms=list(prof.norms), log10_norms=list(prof.log10_norms),
        float32_underflow_at=prof.float32_underflow_at, method=prof.method, loss=prof.loss,
        trained=trained, diagnosis=diagnosis,
    )  # fmt: skip
    return result.to_dict()


# ---------------------------------------------------------------- budgets and the runner
@dataclass(frozen=True)
class Budget:
    """The training budget every architecture gets in an experiment, stated in its output.

    Defaults: the lesson's exercise (copy-bit, 500 Adam steps at lr 1e-2 on one fixed batch of
    256, hidden 32). ``task`` is a spec (``"copy-bit:noise=0.5"``); it is kept canonical.
    Raises ConfigError for a bad task, task option or training field.
    """

    task: str = "copy-bit"
    steps: int = 500
    batch_size: int = 256
    hidden_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-2
    fixed_batch: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        name, options = parse_task(self.task)
        object.__setattr__(self, "task", str(Spec(name, _pairs(options))))  # canonical
        check_int("hidden_size", self.hidden_size)
        object.__setattr__(self, "lr", self.train_config(seed=0).lr)  # checks training fields

    @property
    def task_name(self) -> str:
        return self.task.partition(":")[0]

    @property
    def task_options(self) -> Pairs:
        return _pairs(parse_task(self.task)[1])

    def task_at(self, length: int) -> Task:
        return get_task(self.task_name, length, **dict(self.task_options))

    def check_lengths(self, lengths: Sequence[int], field: str = "lengths") -> None:
        """Every length must suit the task (adding needs T >= 4, digits is 64)."""
        for n in lengths:
            try:
                self.task_at(n)
            except ConfigError as error:
                raise ConfigError(field, n, f"{self.task}: {error.allowed}") from None

    def train_config(self, seed: int, **train_kw: Any) -> TrainConfig:
        return TrainConfig(optimizer=self.optimizer, lr=self.lr, steps=self.steps,
                           batch_size=self.batch_size, fixed_batch=self.fixed_batch, seed=seed,
                           device=self.device, eval_batches=EVAL_BATCHES, **train_kw)  # fmt: skip

    def run(self, spec: str, length: int, seed: int, **train_kw: Any) -> RunConfig:
        """The RunConfig of arch ``spec`` at ``length`` and ``seed`` (TrainConfig extras)."""
        name, options = parse_arch(spec)
        return RunConfig(arch=name, length=length, arch_options=_pairs(options),
                         hidden_size=self.hidden_size, task=self.task_name,
                         task_options=self.task_options,
                         train=self.train_config(seed, **train_kw))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["task"], d["task_options"] = self.task_name, dict(self.task_options)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Budget:
        d = dict(data)
        d["task"] = str(Spec(d["task"], _pairs(d.pop("task_options", None))))
        return cls(**d)

    def replace(self, **changes: Any) -> Budget:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class Runner:
    """How an experiment's runs are run: ``sweep.run_many`` options, and every result kept."""

    store: Store | None = None
    force: bool = False
    workers: int | None = None
    progress: bool = False
    executor: str = "local"
    address: str | None = None
    done: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, configs: Sequence[RunConfig]) -> list[dict[str, Any]]:
        results = run_many(train_run, configs, executor=self.executor, address=self.address,
                           workers=self.workers, store=self.store, kind=RUN_KIND,
                           force=self.force, progress=self.progress)  # fmt: skip
        self.done.extend(results)
        return results

    def budget(self, budget: Budget, seeds: Sequence[int], **extra: Any) -> dict[str, Any]:
        """What every architecture got, stated once, with the total training time."""
        return {**budget.to_dict(), "seeds": list(seeds), **extra,
                "eval_sequences": EVAL_BATCHES * budget.batch_size, "runs": len(self.done),
                "train_seconds": sum(r["wall_time_s"] for r in self.done)}  # fmt: skip


def experiment(
    runner: Runner, kind: str, config: Any, compute: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The experiment's summary for ``config``, stored under ``kind`` when there is a store."""
    if runner.store is None:
        return jsonable(compute())
    return cached(runner.store, kind, config, lambda: jsonable(compute()), force=runner.force)
