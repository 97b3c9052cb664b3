"""Gradient flow through time in PyTorch Lightning: ``GradientFlowCallback``.

A LightningModule with an LSTM inside; the callback finds it, profiles ``||dL/dh_t||`` every
``--every`` optimiser steps from the training step itself, and logs ratio, log10_ratio, rate and
horizon through the trainer's loggers (here a CSVLogger) under ``gradient_flow/``.

    python examples/monitor_lightning.py [--steps 40] [--every 10]

(the lightning extra: ``pip install 'bpttlab[lightning]'``).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import warnings

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor, nn

from bpttlab.integrations.lightning import GradientFlowCallback


class Classifier(L.LightningModule):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        out, _ = self.lstm(x)  # (B, T, H)
        return F.cross_entropy(self.head(out[:, -1]), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def data(n: int, length: int) -> torch.utils.data.DataLoader:
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=gen)  # (N,)
    x = 0.1 * torch.randn(n, length, 1, generator=gen)  # (N, T, 1)
    x[:, 0, 0] = 2.0 * y - 1.0  # the class, at the first step only
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="optimiser steps (default 40)")
    ap.add_argument("--every", type=int, default=10, help="profile every N steps (default 10)")
    ap.add_argument("--length", type=int, default=40, help="sequence length T (default 40)")
    args = ap.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)

    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    torch.manual_seed(0)
    callback = GradientFlowCallback(every=args.every)
    trainer = L.Trainer(max_steps=args.steps, callbacks=[callback], accelerator="cpu",
                        logger=CSVLogger(tempfile.mkdtemp(prefix="bpttlab-pl-")),
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, log_every_n_steps=1)  # fmt: skip
    trainer.fit(Classifier(), data(640, args.length))
    for r in callback.records:
        print(
            f"step {r['step']:4d}: {r['verdict']}, ratio {r['ratio']:.2e}, horizon {r['horizon']}"
        )


if __name__ == "__main__":
    main()
