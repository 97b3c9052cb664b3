"""Slow reference implementations, for tests and benchmarks only (never the product path)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["lesson_loop", "lesson_train"]


def lesson_loop(W: np.ndarray, d: np.ndarray) -> list[float]:
    """The lesson's NumPy loop, as printed: build ``D = np.diag(f')``, form ``J = D @ W`` and fold
    it into the running product in forward order, ``grad = grad @ J``, taking a Frobenius norm
    each step. O(H^3) per step for the diag construction plus O(H^3) for the product.

    Arguments:
        W: (H, H) recurrent matrix.
        d: (T, H) derivatives f'(z_1)..f'(z_T).

    Returns:
        T + 1 Frobenius norms, starting with ``||I||_F``.
    """
    grad = np.eye(W.shape[0])
    norms = [float(np.linalg.norm(grad))]
    for t in range(d.shape[0]):
        D = np.diag(d[t])  # (H, H)
        J = D @ W  # (H, H)
        grad = grad @ J  # J_1 J_2 ... J_t: forward order
        norms.append(float(np.linalg.norm(grad)))
    return norms


def lesson_train(
    arch: str,
    length: int,
    seed: int = 0,
    steps: int = 500,
    batch_size: int = 256,
    hidden_size: int = 32,
    lr: float = 1e-2,
) -> dict[str, float]:
    """The lesson's copy-bit training loop in plain PyTorch: ``nn.RNN`` (tanh) or ``nn.LSTM``
    plus ``nn.Linear``, Adam, one fixed batch, full BPTT, no logging; the slow reference that
    ``benchmarks/bench_cliff.py`` times against ``experiments.cliff``.

    Same seed, same numbers as ``experiments.train_run`` on the lesson's setup: the weights are
    drawn after ``torch.manual_seed(seed)`` in bpttlab's order (core, then head), the batch from
    ``torch.Generator().manual_seed(seed)`` as copy-bit draws it (bits first), and the head
    reads every step and the loss takes the last, as bpttlab's readout does. (``head(out[:,
    -1])`` is the same function, but its weight gradient sums B x T rows, mostly zero, in another
    order: the bits drift apart within a few steps and can tip a run on the edge.)

    Returns:
        ``{"accuracy", "loss"}``: accuracy on the training batch after the last update (what the
        lesson printed); loss of the last step, before its update.
    """
    cores = {"rnn": nn.RNN, "lstm": nn.LSTM}
    if arch not in cores:
        raise ValueError(f"arch={arch!r} is not one of: rnn, lstm")
    torch.manual_seed(seed)
    core = cores[arch](1, hidden_size, batch_first=True)
    head = nn.Linear(hidden_size, 2)
    generator = torch.Generator().manual_seed(seed)
    bit = torch.randint(0, 2, (batch_size,), generator=generator)  # (B,)
    x = torch.zeros(batch_size, length, 1)  # (B, T, 1)
    x[:, 0, 0] = 2.0 * bit - 1.0  # the bit as +-1 at the first step, zeros after
    optimizer = torch.optim.Adam([*core.parameters(), *head.parameters()], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        out, _ = core(x)  # (B, T, H)
        loss = F.cross_entropy(head(out)[:, -1], bit)  # logits at the last step: (B, 2)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        guess = head(core(x)[0])[:, -1].argmax(-1)  # (B,)
    return {"accuracy": (guess == bit).double().mean().item(), "loss": loss.item()}
