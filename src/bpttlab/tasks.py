"""Long-range tasks: what a recurrent net must carry across T steps to be right at the end.

Every task draws batches from a ``torch.Generator`` alone (same seed, same batch) and reads the
model's readout ``y`` of shape (B, T, output_size) where the label lives: the last step for all
tasks but copy-memory, whose answer fills its last K steps. Each task states the accuracy of a
memoryless guesser (``chance``) and the loss of the best memoryless predictor (``baseline_loss``),
so "stuck at chance" and "beats the baseline" are numbers, not impressions.

Steps are indexed 0..T-1 in the tensor; in DESIGN's notation tensor step ``i`` is ``x_{i+1}``.

    task       length means                x steps           label read at    chance
    copy-bit   steps                       T                 last step        0.5
    latch      steps                       T                 last step        1/n_classes
    adding     minimum steps (original)    T .. T + T//10    last step        see AddingTask
    copy-mem   blank stretch L             L + 20            last 10 steps    1/8
    digits     must be 64 (pixels)         64                last step        0.1
    agreement  distractor clause length    T + 2             last step        0.5
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from bpttlab._task import ADDING_TOLERANCE, SPLITS, Batch, Task, TaskConfig
from bpttlab._task_zoo import (
    AGREEMENT_VOCAB,
    AddingTask,
    AgreementTask,
    CopyBitTask,
    CopyMemoryTask,
    DigitsTask,
    LatchTask,
)
from bpttlab._util import ConfigError, check_bool, check_choice, check_float, check_int
from bpttlab.specs import parse_spec

__all__ = [
    "ADDING_TOLERANCE",
    "AGREEMENT_VOCAB",
    "SPLITS",
    "TASKS",
    "TASK_OPTIONS",
    "AddingTask",
    "AgreementTask",
    "Batch",
    "CopyBitTask",
    "CopyMemoryTask",
    "DigitsTask",
    "FixedBatch",
    "LatchTask",
    "Task",
    "TaskConfig",
    "get_task",
    "parse_task",
]

TASKS = ("copy-bit", "latch", "adding", "copy-memory", "digits", "agreement")
_Check = Callable[[str, Any], Any]  # (option, value) -> the value, checked and normalised


def _noise(key: str, v: Any) -> float:
    return check_float(key, v, low=0)


# task -> (class, {option: (default, check)})
_REGISTRY: dict[str, tuple[type[Task], dict[str, tuple[Any, _Check]]]] = {
    "copy-bit": (CopyBitTask, {"noise": (0.0, _noise)}),
    "latch": (LatchTask, {"n_classes": (2, lambda k, v: check_int(k, v, 2)),
                          "noise": (0.2, _noise)}),
    "adding": (AddingTask, {"variant": ("original",
                                        lambda k, v: check_choice(k, v, ("original", "modern")))}),
    "copy-memory": (CopyMemoryTask, {}),
    "digits": (DigitsTask, {"permuted": (False, check_bool)}),
    "agreement": (AgreementTask, {"noun_rate": (0.25, lambda k, v: check_float(
        k, v, low=0, high=1, low_open=True))}),
}  # fmt: skip
# task -> {option: type}: what a spec such as "copy-bit:noise=0.5" may set
TASK_OPTIONS: dict[str, dict[str, type]] = {
    name: {k: type(default) for k, (default, _) in options.items()}
    for name, (_, options) in _REGISTRY.items()
}
_MIN_LENGTH = {"adding": 4}  # original: X2 needs T//2 - 1 >= 1 candidate pairs


def get_task(name: str, length: int, *, fixed_batch: bool = False, **options: Any) -> Task:
    """Build a task by name; ``fixed_batch=True`` wraps it in ``FixedBatch``.

    Raises ConfigError naming the argument, the value and what is allowed.
    """
    check_choice("name", name, TASKS)
    cls, spec = _REGISTRY[name]
    check_int("length", length, _MIN_LENGTH.get(name, 1))
    if name == "digits" and length != 64:
        raise ConfigError("length", length, "'digits' images have 64 pixels: use 64")
    check_bool("fixed_batch", fixed_batch)
    resolved = {}
    for key, (default, check) in spec.items():
        resolved[key] = check(key, options.pop(key, default))
    if options:
        key, value = next(iter(options.items()))
        raise ConfigError(key, value, f"not an option of {name!r}; allowed: "
                          f"{', '.join(spec) or 'none'}")  # fmt: skip
    task = cls(TaskConfig(name, int(length), False, tuple(sorted(resolved.items()))))
    return FixedBatch(task) if fixed_batch else task


def parse_task(spec: str, field: str = "task") -> tuple[str, dict[str, Any]]:
    """``"copy-bit:noise=0.5"`` -> ``("copy-bit", {"noise": 0.5})``, checked in full (values
    take the type of the option's default, then the task's own checks).

    Raises:
        ConfigError: for ``field`` (the spec), naming the option and what is allowed.
    """
    parsed = parse_spec(spec, TASK_OPTIONS, field)
    _, checks = _REGISTRY[parsed.name]
    for key, value in parsed.options:
        try:
            checks[key][1](key, value)
        except ConfigError as error:
            raise ConfigError(field, spec, f"option {key}={value!r}: {error.allowed}") from None
    return parsed.name, parsed.kwargs


class FixedBatch(Task):
    """The same batch on every call (per batch_size and split): the lesson trains on one batch.

    The first call draws the batch from its generator; later calls ignore theirs. Other
    attributes (``full_batch``, ``decode``, ``permutation``) pass through to the wrapped task.
    """

    def __init__(self, task: Task) -> None:
        self.task: Task = task
        self._cache: dict[tuple[int, str], Batch] = {}
        super().__init__(replace(task.config, fixed_batch=True))
        for key in ("input_size", "output_size", "kind", "chance", "baseline_loss", "max_steps"):
            setattr(self, key, getattr(task, key))

    def _sample(self, batch_size: int, generator: torch.Generator, split: str) -> Batch:
        if (batch_size, split) not in self._cache:
            self._cache[batch_size, split] = self.task.sample(batch_size, generator, split)
        return self._cache[batch_size, split]

    def loss(self, y: Tensor, batch: Batch) -> Tensor:
        return self.task.loss(y, batch)

    def accuracy(self, y: Tensor, batch: Batch) -> float:
        return self.task.accuracy(y, batch)

    def __getattr__(self, key: str) -> Any:
        if key == "task":  # not yet set (e.g. during unpickling): no recursion
            raise AttributeError(key)
        return getattr(self.task, key)
