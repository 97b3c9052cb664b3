"""The six long-range tasks; ``tasks.get_task`` builds them by name (see ``tasks.py``)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bpttlab._task import ADDING_TOLERANCE, SPLITS, Batch, Task, TaskConfig
from bpttlab._util import check_choice

__all__ = [
    "AGREEMENT_VOCAB",
    "AddingTask",
    "AgreementTask",
    "CopyBitTask",
    "CopyMemoryTask",
    "DigitsTask",
    "LatchTask",
]


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
        check_choice("split", split, SPLITS)
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
