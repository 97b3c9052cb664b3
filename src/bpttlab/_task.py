"""The task interface: ``TaskConfig``, ``Batch`` and the abstract ``Task`` (see ``tasks.py``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from bpttlab._util import ConfigError, check_choice, check_int

__all__ = ["ADDING_TOLERANCE", "SPLITS", "Batch", "Task", "TaskConfig"]

SPLITS = ("train", "test")
ADDING_TOLERANCE = 0.04  # "correct if the absolute error at the sequence end is below 0.04"


@dataclass(frozen=True)
class TaskConfig:
    """What builds a task: ``get_task(**config.to_dict())`` rebuilds an equal one.

    ``options`` holds every option of the task with defaults filled in and floats as floats, as
    sorted (name, value) pairs, so equal tasks have equal configs (and equal store keys).
    """

    name: str
    length: int
    fixed_batch: bool = False
    options: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready dict: name, length, fixed_batch and the task's options."""
        return {
            "name": self.name,
            "length": self.length,
            "fixed_batch": self.fixed_batch,
            **dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskConfig:
        """Inverse of ``to_dict``; validates by building the task's config through ``get_task``."""
        from bpttlab.tasks import get_task

        return get_task(**data).config


@dataclass(frozen=True)
class Batch:
    """One batch of a task.

    Attributes:
        x: (B, T, input_size) float32 inputs.
        target: (B,) int64 class labels; (B,) float32 regression targets (adding); or (B, T)
            int64 labels at every step (copy-memory, 0 = blank).
        index: (B,) int64 rows of the underlying data set, for finite data sets (digits).
    """

    x: Tensor
    target: Tensor
    index: Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        index = None if self.index is None else self.index.to(device)
        return Batch(self.x.to(device), self.target.to(device), index)


class Task(ABC):
    """A long-range task. Subclasses draw batches; loss and accuracy read the readout ``y``.

    Attributes:
        name, length, config: what built it (``config.to_dict()`` round-trips).
        input_size: features per step of ``x``.  output_size: classes, or 1 for regression.
        kind: "classification" (cross-entropy) or "regression" (mean squared error).
        chance: accuracy of the best memoryless guesser.
        baseline_loss: loss of the best memoryless predictor.
        max_steps: the largest number of steps a batch can have.
    """

    input_size: int
    output_size: int
    kind: Literal["classification", "regression"] = "classification"
    chance: float
    baseline_loss: float
    max_steps: int

    def __init__(self, config: TaskConfig) -> None:
        self.config, self.name, self.length = config, config.name, config.length
        self.max_steps = config.length

    def option(self, key: str) -> Any:
        """The value of one option of ``config``."""
        return dict(self.config.options)[key]

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """Draw ``batch_size`` sequences using only ``generator`` (CPU tensors).

        Synthetic tasks draw fresh sequences for either split; digits keeps them apart.
        """
        check_int("batch_size", batch_size)
        check_choice("split", split, SPLITS)
        if not isinstance(generator, torch.Generator):
            raise ConfigError("generator", generator, "must be a torch.Generator")
        return self._sample(batch_size, generator, split)

    @abstractmethod
    def _sample(self, batch_size: int, generator: torch.Generator, split: str) -> Batch: ...

    def _readout(self, y: Tensor, batch: Batch) -> Tensor:
        """(B, T, output_size) -> (B, output_size): the last step carries the answer."""
        B, T = batch.x.shape[:2]
        if tuple(y.shape) != (B, T, self.output_size):
            raise ValueError(
                f"y has shape {tuple(y.shape)}; task {self.name!r} needs (B, T, output_size) = "
                f"({B}, {T}, {self.output_size})"
            )
        return y[:, -1]  # (B, output_size)

    def loss(self, y: Tensor, batch: Batch) -> Tensor:
        """Scalar loss of readout ``y`` (B, T, output_size): cross-entropy or MSE, batch mean."""
        out = self._readout(y, batch)  # (B, output_size)
        if self.kind == "classification":
            return F.cross_entropy(out, batch.target)
        return F.mse_loss(out[:, 0], batch.target.to(out.dtype))

    def accuracy(self, y: Tensor, batch: Batch) -> float:
        """Fraction right: argmax equals the label, or |error| < 0.04 for regression."""
        out = self._readout(y, batch).detach()  # (B, output_size)
        if self.kind == "classification":
            return (out.argmax(-1) == batch.target).double().mean().item()
        error = out[:, 0].double() - batch.target.double()  # (B,)
        return (error.abs() < ADDING_TOLERANCE).double().mean().item()

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config.options)
        return f"{type(self).__name__}(length={self.length}{', ' if options else ''}{options})"
