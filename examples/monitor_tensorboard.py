"""Gradient flow through time in TensorBoard: ``GradientFlowMonitor`` with ``TensorBoardSink``.

A GRU trained in a plain loop; every ``--every`` steps the monitor writes, under the tag group
``gradient_flow``: the scalars ratio, log10_ratio, rate and horizon, the time x step heatmap of
``log10 ||dL/dh_t||`` as an image, and its histogram. Then

    tensorboard --logdir <the folder printed>

    python examples/monitor_tensorboard.py [--logdir DIR] [--steps 60] [--every 10]

(the tensorboard extra: ``pip install 'bpttlab[tensorboard]'``).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

from bpttlab.integrations.tensorboard import TensorBoardSink
from bpttlab.monitor import GradientFlowMonitor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logdir", help="where to write the event file (default: a new temp dir)")
    ap.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    ap.add_argument("--every", type=int, default=10, help="profile every N steps (default 10)")
    ap.add_argument("--length", type=int, default=50, help="sequence length T (default 50)")
    args = ap.parse_args()
    logdir = args.logdir or tempfile.mkdtemp(prefix="bpttlab-tb-")

    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    gru, head = nn.GRU(1, 32, batch_first=True), nn.Linear(32, 2)
    opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=1e-2)
    with GradientFlowMonitor(gru, every=args.every, sink=TensorBoardSink(logdir)) as mon:
        for step in range(args.steps):
            y = torch.randint(0, 2, (64,), generator=gen)  # (B,)
            x = 0.1 * torch.randn(64, args.length, 1, generator=gen)  # (B, T, 1)
            x[:, 0, 0] = 2.0 * y - 1.0  # the class, at the first step only
            with mon.step(step):
                out, _ = gru(x)  # (B, T, 32)
                F.cross_entropy(head(out[:, -1]), y).backward()
            opt.step()
            opt.zero_grad()

    print(f"wrote {len(mon.records)} profiles to {logdir}  (tensorboard --logdir {logdir})")
    for r in mon.records:
        print(
            f"step {r['step']:4d}: {r['verdict']}, ratio {r['ratio']:.2e}, horizon {r['horizon']}"
        )


if __name__ == "__main__":
    main()
