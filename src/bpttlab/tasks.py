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

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ADDING_TOLERANCE",
    "AGREEMENT_VOCAB",
    "SPLITS",
    "TASKS",
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
]

TASKS = ("copy-bit", "latch", "adding", "copy-memory", "digits", "agreement")
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
        _check_int("batch_size", batch_size, minimum=1)
        _check_choice("split", split, SPLITS)
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator={generator!r} is not allowed: must be a torch.Generator")
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


class CopyBitTask(Task):
    """The lesson's copy-bit: remember the bit at step 0, report it at step T-1.

    x[:, 0, 0] = +1 or -1 (bit 1 or 0); later steps are 0, or N(0, noise^2) when ``noise`` > 0.
    input_size 1, two classes, chance 0.5, baseline log 2.
    """

    input_size, output_size, chance, baseline_loss = 1, 2, 0.5, math.log(2)

    def _sample(self, batch_size: int, generator: torch.Generator, split: str) -> Batch:
        B, T = batch_size, self.length
        bit = torch.randint(0, 2, (B,), generator=generator)  # (B,)
        noise = self.option("noise")
        x = noise * torch.randn(B, T, 1, generator=generator) if noise else torch.zeros(B, T, 1)
        x[:, 0, 0] = 2.0 * bit - 1.0
        return Batch(x, bit)


class LatchTask(Task):
    """Latch (the latching problem of Bengio, Simard & Frasconi 1994): the class sits in the
    first input, the rest is noise, the class is predicted at the end.

    x[:, 0] = one_hot(class) over n_classes channels; later steps are N(0, noise^2) per channel.
    """

    def __init__(self, config: TaskConfig) -> None:
        super().__init__(config)
        n = self.input_size = self.output_size = self.option("n_classes")
        self.chance, self.baseline_loss = 1.0 / n, math.log(n)

    def _sample(self, batch_size: int, generator: torch.Generator, split: str) -> Batch:
        B, T, n = batch_size, self.length, self.output_size
        label = torch.randint(0, n, (B,), generator=generator)  # (B,)
        x = self.option("noise") * torch.randn(B, T, n, generator=generator)  # (B, T, n)
        x[:, 0] = F.one_hot(label, n).float()
        return Batch(x, label)


class AddingTask(Task):
    """Adding problem; x[..., 0] holds values, x[..., 1] markers; the readout is one number.

    original (Hochreiter & Schmidhuber 1997, Sec. 5.4, Experiment 4): values U[-1, 1]; one length
    per batch drawn uniformly from T .. T + T//10; X1 is marked (marker 1) among the first 10
    pairs, X2 among the first T//2 - 1 still unmarked pairs; the first and the final pair carry
    marker -1 unless marked; a marked first pair has its value set to 0 (the paper: "in the
    rare case where the first pair of the sequence gets marked, we set X1 to zero"). Target
    0.5 + (X1 + X2) / 4; correct if |error| < 0.04. Best constant: 0.5 (mean and mode).
    modern (Le, Jaitly & Hinton 2015): exactly T steps, values U[0, 1], one marker in each half
    (first T//2 steps, the rest), target X1 + X2, scored by MSE; the best constant, 1, scores
    MSE 1/6 ~ 0.167. "Accuracy" is again the fraction with |error| < 0.04.
    """

    input_size, output_size, kind = 2, 1, "regression"

    def __init__(self, config: TaskConfig) -> None:
        super().__init__(config)
        T, a = config.length, ADDING_TOLERANCE
        if self.option("variant") == "original":
            # One term is 0 when the first pair is marked (probability p0), leaving X1 + X2
            # uniform on [-1, 1]; else triangular on [-2, 2]. 0.5 is right when |X1 + X2| < 4a.
            m, n = min(10, T), T // 2 - 1  # X1's and X2's candidate counts
            p0 = 1.0 / m + (1.0 - 1.0 / m) / n
            chance = (1 - p0) * (4 * a - (4 * a) ** 2 / 4) + p0 * (4 * a)
            self.chance, self.baseline_loss = chance, (1 - p0) / 24 + p0 / 48
            self.max_steps = T + T // 10
        else:  # X1 + X2 triangular on [0, 2]; the guess 1 is right when |X1 + X2 - 1| < a.
            self.chance, self.baseline_loss = 2 * a - a * a, 1.0 / 6.0

    def _sample(self, batch_size: int, generator: torch.Generator, split: str) -> Batch:
        B, T, g = batch_size, self.length, generator
        rows = torch.arange(B)
        if self.option("variant") == "original":
            steps = T + int(torch.randint(0, T // 10 + 1, (1,), generator=g))
            values = 2.0 * torch.rand(B, steps, generator=g) - 1.0  # (B, steps)
            first = torch.randint(0, min(10, T), (B,), generator=g)  # (B,) position of X1
            j = torch.randint(0, T // 2 - 1, (B,), generator=g)  # j-th unmarked pair
            second = j + (j >= first).long()  # (B,) position of X2, skipping X1's
            markers = torch.zeros(B, steps)
            markers[:, 0] = markers[:, -1] = -1.0
        else:
            steps = T
            values = torch.rand(B, T, generator=g)  # (B, T)
            first = torch.randint(0, T // 2, (B,), generator=g)
            second = T // 2 + torch.randint(0, T - T // 2, (B,), generator=g)
            markers = torch.zeros(B, T)
        markers[rows, first] = markers[rows, second] = 1.0
        if self.option("variant") == "original":
            values[markers[:, 0] == 1, 0] = 0.0  # a marked first pair counts as 0
        total = values[rows, first] + values[rows, second]  # (B,) X1 + X2
        target = 0.5 + total / 4.0 if self.option("variant") == "original" else total
        return Batch(torch.stack([values, markers], dim=-1), target)  # x: (B, steps, 2)


class CopyMemoryTask(Task):
    """Copy memory (Arjovsky, Shah & Bengio 2016, Sec. 4.1; expRNN's ``1_copying.py``).

    Tokens: K = 10 symbols from {1..8}, L blanks (0), the marker 9, K - 1 blanks: L + 20 steps,
    one-hot over 10 tokens. Target per step: blank for the first L + 10 steps, then the K symbols
    (9 classes, 0 = blank). The loss is cross-entropy averaged over all L + 20 steps, so the
    memoryless baseline (blanks, then uniform over 8 symbols) scores 10 log(8) / (L + 20).
    Accuracy counts the last K steps only; chance there is 1/8.
    """

    K = 10
    input_size, output_size, chance = 10, 9, 1.0 / 8.0

    def __init__(self, config: TaskConfig) -> None:
        super().__init__(config)
        L, K = config.length, self.K
        self.baseline_loss, self.max_steps = K * math.log(8) / (L + 2 * K), L + 2 * K

    def _sample(self, batch_size: int, generator: torch.Generator, split: str) -> Batch:
        B, L, K = batch_size, self.length, self.K
        symbols = torch.randint(1, 9, (B, K), generator=generator)  # (B, K)
        tokens = torch.zeros(B, L + 2 * K, dtype=torch.long)
        tokens[:, :K] = symbols
        tokens[:, L + K] = 9  # the marker: "start writing now"
        target = torch.zeros(B, L + 2 * K, dtype=torch.long)
        target[:, -K:] = symbols
        return Batch(F.one_hot(tokens, 10).float(), target)  # x: (B, L + 2K, 10)

    def loss(self, y: Tensor, batch: Batch) -> Tensor:
        self._readout(y, batch)  # shape check
        return F.cross_entropy(y.reshape(-1, self.output_size), batch.target.reshape(-1))

    def accuracy(self, y: Tensor, batch: Batch) -> float:
        self._readout(y, batch)
        guess = y[:, -self.K :].detach().argmax(-1)  # (B, K)
        return (guess == batch.target[:, -self.K :]).double().mean().item()


@lru_cache(maxsize=1)
def _digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's bundled 8x8 digits: pixels (1797, 64) in [0, 1], labels, train/test rows."""
    from sklearn.datasets import load_digits  # lazy: only this task needs scikit-learn

    data = load_digits()
    pixels = torch.tensor(data.data, dtype=torch.float32) / 16.0  # (1797, 64), row by row
    labels = torch.tensor(data.target, dtype=torch.long)  # (1797,)
    # Stratified: 36 images of each class, picked by one fixed shuffle, form the test split.
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))  # (1797,)
    per_class = DigitsTask.TEST_SIZE // 10
    test = torch.cat([order[labels[order] == c][:per_class] for c in range(10)]).sort().values
    train = torch.from_numpy(np.setdiff1d(order.numpy(), test.numpy()))  # sorted
    return pixels, labels, train, test


class DigitsTask(Task):
    """Sequential digits: 8x8 images read pixel by pixel (64 steps, input_size 1), 10 classes.

    The offline stand-in for sequential MNIST (Le et al. 2015); ``permuted`` reorders the pixels
    by one fixed permutation (seed 1), as in permuted sMNIST. The 1,797 images are split once,
    stratified by a fixed shuffle (seed 0): 360 test (36 per class, so a constant guess scores
    exactly 0.1 there), 1,437 train; ``sample`` draws rows of the split with replacement.
    """

    TEST_SIZE = 360
    input_size, output_size, chance = 1, 10, 0.1

    def __init__(self, config: TaskConfig) -> None:
        super().__init__(config)
        _, labels, train, _ = _digits()
        # The best memoryless predictor outputs the class prior; its loss is the prior's entropy.
        prior = torch.bincount(labels[train], minlength=10).double() / len(train)  # (10,)
        self.baseline_loss = -(prior * prior.log()).sum().item()
        self.permutation: Tensor | None = None  # (64,) pixel order when permuted
        if self.option("permuted"):
            self.permutation = torch.randperm(64, generator=torch.Generator().manual_seed(1))

    def rows(self, split: str) -> Tensor:
        """(N,) int64 rows of the split: 1437 train, 360 test, disjoint."""
        _check_choice("split", split, SPLITS)
        return _digits()[2] if split == "train" else _digits()[3]

    def full_batch(self, split: str = "test") -> Batch:
        """Every image of ``split`` in row order, e.g. to evaluate on the whole test set."""
        return self._batch(self.rows(split))

    def _batch(self, index: Tensor) -> Batch:
        pixels, labels = _digits()[:2]
        x = pixels[index]  # (B, 64)
        if self.permutation is not None:
            x = x[:, self.permutation]
        return Batch(x.unsqueeze(-1), labels[index], index)  # x: (B, 64, 1)

    def _sample(self, batch_size: int, generator: torch.Generator, split: str) -> Batch:
        rows = self.rows(split)
        return self._batch(rows[torch.randint(0, len(rows), (batch_size,), generator=generator)])


AGREEMENT_VOCAB = (
    *("dog", "cat", "boy", "girl", "bird"),  # singular nouns: tokens 0..4
    *("dogs", "cats", "boys", "girls", "birds"),  # plural nouns: tokens 5..9
    *("the", "who", "had", "been", "chasing", "near", "with", "and", "old"),  # fillers
    "[verb]",  # "... finally [MASK]": the step where the number is asked for
)
_N_NOUNS, _N_FILLERS = 5, 9


class AgreementTask(Task):
    """Subject-verb agreement across a distractor clause (Linzen, Dupoux & Goldberg 2016 style).

    Tokens (one-hot over AGREEMENT_VOCAB): a subject noun whose number is the label
    (0 singular, 1 plural), a clause of T tokens, then "[verb]": T + 2 steps. Each clause token
    is a noun with probability ``noun_rate`` (either number, 50/50) else a filler. The clause is
    drawn independently of the subject, so it holds attractors (nouns of the other number) as
    often as agreeing nouns, and anything that does not see the subject is at chance 0.5.
    """

    input_size, output_size, chance, baseline_loss = len(AGREEMENT_VOCAB), 2, 0.5, math.log(2)

    def __init__(self, config: TaskConfig) -> None:
        super().__init__(config)
        self.max_steps = config.length + 2

    def _sample(self, batch_size: int, generator: torch.Generator, split: str) -> Batch:
        B, T, g = batch_size, self.length, generator
        number = torch.randint(0, 2, (B,), generator=g)  # (B,) 0 singular, 1 plural
        subject = number * _N_NOUNS + torch.randint(0, _N_NOUNS, (B,), generator=g)
        is_noun = torch.rand(B, T, generator=g) < self.option("noun_rate")  # (B, T)
        noun = torch.randint(0, 2 * _N_NOUNS, (B, T), generator=g)
        filler = 2 * _N_NOUNS + torch.randint(0, _N_FILLERS, (B, T), generator=g)
        verb = torch.full((B, 1), len(AGREEMENT_VOCAB) - 1)
        tokens = torch.cat([subject[:, None], torch.where(is_noun, noun, filler), verb], dim=1)
        return Batch(F.one_hot(tokens, len(AGREEMENT_VOCAB)).float(), number)  # (B, T+2, V)

    @staticmethod
    def decode(x: Tensor) -> str:
        """One sequence (T + 2, V) back to words, e.g. "dogs the cat who [verb]"."""
        return " ".join(AGREEMENT_VOCAB[i] for i in x.argmax(-1).tolist())


def _nonneg_float(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < math.inf


# task -> (class, {option: (default, check, what is allowed)})
_Option = tuple[Any, Callable[[Any], bool], str]
_REGISTRY: dict[str, tuple[type[Task], dict[str, _Option]]] = {
    "copy-bit": (CopyBitTask, {"noise": (0.0, _nonneg_float, "a finite float >= 0")}),
    "latch": (
        LatchTask,
        {
            "n_classes": (
                2,
                lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2,
                "an int >= 2",
            ),
            "noise": (0.2, _nonneg_float, "a finite float >= 0"),
        },
    ),
    "adding": (
        AddingTask,
        {"variant": ("original", lambda v: v in ("original", "modern"), "'original' or 'modern'")},
    ),
    "copy-memory": (CopyMemoryTask, {}),
    "digits": (DigitsTask, {"permuted": (False, lambda v: isinstance(v, bool), "True or False")}),
    "agreement": (
        AgreementTask,
        {"noun_rate": (0.25, lambda v: _nonneg_float(v) and 0 < v <= 1, "a float in (0, 1]")},
    ),
}
_MIN_LENGTH = {"adding": 4}  # original: X2 needs T//2 - 1 >= 1 candidate pairs


def get_task(name: str, length: int, *, fixed_batch: bool = False, **options: Any) -> Task:
    """Build a task by name; ``fixed_batch=True`` wraps it in ``FixedBatch``.

    Raises ValueError naming the argument, the value and what is allowed.
    """
    _check_choice("name", name, TASKS)
    cls, spec = _REGISTRY[name]
    _check_int("length", length, minimum=_MIN_LENGTH.get(name, 1))
    if name == "digits" and length != 64:
        raise ValueError(f"length={length!r} is not allowed for 'digits': images have 64 pixels")
    if not isinstance(fixed_batch, bool):
        raise ValueError(f"fixed_batch={fixed_batch!r} is not allowed: must be True or False")
    for key, value in options.items():
        if key not in spec:
            allowed = ", ".join(spec) or "none"
            raise ValueError(
                f"option {key}={value!r} is not accepted by {name!r}; allowed: {allowed}"
            )
        default, check, what = spec[key]
        if not check(value):
            raise ValueError(f"{key}={value!r} is not allowed for {name!r}: must be {what}")
    resolved = {k: options.get(k, default) for k, (default, _, _) in spec.items()}
    resolved = {k: float(v) if isinstance(spec[k][0], float) else v for k, v in resolved.items()}
    task = cls(TaskConfig(name, int(length), False, tuple(sorted(resolved.items()))))
    return FixedBatch(task) if fixed_batch else task


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


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed: must be an int >= {minimum}")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed: choose one of {', '.join(allowed)}")


def parse_task(spec: str) -> tuple[str, dict[str, Any]]:
    """``"copy-bit:noise=0.5"`` -> ``("copy-bit", {"noise": 0.5})``; values take the type of the
    option's default. Raises ValueError naming the unknown task, key or value."""
    name, _, rest = spec.strip().partition(":")
    _check_choice("task", name, TASKS)
    defaults = {k: default for k, (default, _, _) in _REGISTRY[name][1].items()}
    options: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq or key not in defaults:
            allowed = ", ".join(defaults) or "none"
            raise ValueError(
                f"task option {item!r} in {spec!r} is not KEY=VALUE with KEY one of "
                f"{name}'s options: {allowed}"
            )
        kind = type(defaults[key])
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"task option {key}={raw!r} in {spec!r} is not a valid bool")
            options[key] = raw.lower() in ("true", "1")
            continue
        try:
            options[key] = kind(raw)
        except ValueError:
            raise ValueError(
                f"task option {key}={raw!r} in {spec!r} is not a valid {kind.__name__}"
            ) from None
    return name, options
