"""A user's own recurrent model for ``bpttlab diagnose --model examples/my_model.py:factory``.

The model calls its cell once per step, so the probe reads ``dL/dh_t`` with a hook on that cell
(``cell=model.cell``). The contract for ``--model FILE:NAME``: ``NAME(input_size, output_size)``
returns a dict with

- ``model``: an ``nn.Module`` taking x (B, T, input_size);
- ``loss``: ``loss(output, target) -> scalar``, here cross-entropy of the readout at step T;
- ``probe``: keyword arguments for ``gradient_profile`` (``{"cell": ...}`` or ``{"rnn": ...}``).

Run it directly for a small demo on a remember-the-first-bit batch:

    python examples/my_model.py
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bpttlab.diagnosis import diagnose


class MinimalGatedCell(nn.Module):
    """Minimal gated unit (Zhou et al. 2016): one gate both forgets and writes.

    ``f_t = sigmoid(W_f [x_t, h_{t-1}] + b_f)``,
    ``h~_t = tanh(W_h [x_t, f_t * h_{t-1}] + b_h)``,
    ``h_t = (1 - f_t) * h_{t-1} + f_t * h~_t``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.candidate = nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x_t: Tensor, h: Tensor) -> Tensor:  # (B, I), (B, H) -> (B, H)
        f = torch.sigmoid(self.gate(torch.cat([x_t, h], dim=-1)))  # (B, H)
        h_new = torch.tanh(self.candidate(torch.cat([x_t, f * h], dim=-1)))  # (B, H)
        return (1 - f) * h + f * h_new


class MyModel(nn.Module):
    """x (B, T, I) -> logits at every step (B, T, out)."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 32) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.cell = MinimalGatedCell(input_size, hidden_size)
        self.readout = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        h = x.new_zeros(x.shape[0], self.hidden_size)  # h_0: (B, H)
        hs = []
        for x_t in x.unbind(1):  # one cell call per step: the probe hooks it
            h = self.cell(x_t, h)
            hs.append(h)
        return self.readout(torch.stack(hs, dim=1))  # (B, T, out)


def last_step_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output[:, -1], target)  # the readout at step T only


def factory(input_size: int = 1, output_size: int = 2) -> dict[str, Any]:
    model = MyModel(input_size, output_size)
    return {"model": model, "loss": last_step_cross_entropy, "probe": {"cell": model.cell}}


def main(T: int = 50, batch: int = 32, seed: int = 0) -> None:
    torch.manual_seed(seed)
    spec = factory(input_size=1, output_size=2)
    bit = torch.randint(0, 2, (batch,))  # the class sits in the first input, noise after it
    x = 0.1 * torch.randn(batch, T, 1)
    x[:, 0, 0] = 2.0 * bit - 1.0
    d = diagnose(spec["model"], x, lambda out: spec["loss"](out, bit), **spec["probe"])
    print(f"T={T}: {d.verdict}, {d.factor_per_step:.3g} per step, horizon {d.horizon}")
    for advice in d.advice:
        print(" -", advice.text)


if __name__ == "__main__":
    main()
