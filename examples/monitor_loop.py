"""Gradient flow through time in your own training loop: ``GradientFlowMonitor``.

The loop below is an ordinary PyTorch loop; the only additions are the monitor and the
``with mon.step(step):`` around the forward and backward. Every ``--every`` steps the monitor
reads ``||dL/dh_t||`` for t = 0..T from that very step (no second pass, parameters trained
bitwise as without it) and prints what it found.

The task: the class sits in the first input only, noise follows; the model must carry it over
``--length`` steps.

    python examples/monitor_loop.py [--steps 60] [--every 20] [--length 40]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bpttlab.monitor import GradientFlowMonitor


class Classifier(nn.Module):
    """x (B, T, 1) -> logits (B, 2) from the last step of an LSTM."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)  # (B, T, H)
        return self.head(out[:, -1])  # (B, 2)


def batch(size: int, length: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    y = torch.randint(0, 2, (size,), generator=gen)  # (B,)
    x = 0.1 * torch.randn(size, length, 1, generator=gen)  # (B, T, 1)
    x[:, 0, 0] = 2.0 * y - 1.0  # the class, at t = 1 only
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    ap.add_argument("--every", type=int, default=20, help="profile every N steps (default 20)")
    ap.add_argument("--length", type=int, default=40, help="sequence length T (default 40)")
    args = ap.parse_args()

    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mon = GradientFlowMonitor(model, every=args.every)  # finds model.lstm by itself

    for step in range(args.steps):
        x, y = batch(64, args.length, gen)
        with mon.step(step):  # probes attached for this forward/backward only when due
            loss = F.cross_entropy(model(x), y)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # against exploding gradients
        opt.step()
        opt.zero_grad()

    for r in mon.records:
        horizon = r["horizon"] if r["horizon"] is not None else f"beyond {r['T']}"
        print(f"step {r['step']:4d}: {r['verdict']:9s} ||dL/dh_0||/||dL/dh_T|| = "
              f"{r['ratio']:.2e}, rate {r['rate']:+.3f}/step, horizon {horizon}")  # fmt: skip


if __name__ == "__main__":
    main()
