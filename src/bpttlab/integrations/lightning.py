"""A PyTorch Lightning callback for :class:`bpttlab.monitor.GradientFlowMonitor` (the
lightning extra).

    import lightning.pytorch as L
    from bpttlab.integrations.lightning import GradientFlowCallback

    trainer = L.Trainer(callbacks=[GradientFlowCallback(every=10)])

Hooks (all documented in ``lightning.pytorch.Callback``): ``setup`` builds the monitor on the
LightningModule (the one nn.RNN/LSTM/GRU or cell inside it, or ``rnn=``/``cell=``, a module or
the attribute path of one, e.g. ``"encoder.lstm"``); ``on_train_batch_start`` attaches probes
when ``trainer.global_step`` is due (once per optimiser step, so the first micro-batch of an
accumulated step); ``on_after_backward`` reads them (manual optimisation: after
``manual_backward``); ``on_train_batch_end`` and ``on_exception`` detach anything left;
``teardown`` closes the monitor. Each record is logged through every logger of the trainer
(``logger.log_metrics``, at ``trainer.global_step``) as ``{prefix}/ratio``,
``{prefix}/log10_ratio``, ``{prefix}/rate`` and ``{prefix}/horizon`` (the last two when
defined); the full records are in ``callback.records``, and go to ``store=``/``sink=`` as the
monitor's do.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as L  # the lightning extra
from torch import nn

from bpttlab.monitor import GradientFlowMonitor
from bpttlab.store import Store

__all__ = ["GradientFlowCallback", "metrics_of"]


def metrics_of(record: dict[str, Any], prefix: str = "gradient_flow") -> dict[str, float]:
    """The numbers of a record as logger metrics (None values left out)."""
    ratio = record["ratio"]
    out = {f"{prefix}/ratio": float(ratio),
           f"{prefix}/log10_ratio": math.log10(ratio) if ratio > 0 else -math.inf}  # fmt: skip
    for key in ("rate", "horizon"):
        if record[key] is not None:
            out[f"{prefix}/{key}"] = float(record[key])
    return out


class GradientFlowCallback(L.Callback):
    """Profiles ``||dL/dh_t||`` every ``every`` optimiser steps; see the module docstring.

    Arguments are those of :class:`GradientFlowMonitor`, except ``rnn``/``cell``, which may
    also be attribute paths in the LightningModule, and ``prefix``, the metrics' tag group.
    """

    def __init__(
        self,
        every: int = 10,
        *,
        rnn: nn.Module | str | None = None,
        cell: nn.Module | str | None = None,
        store: Store | str | Path | None = None,
        sink: Any = None,
        max_points: int = 200,
        prefix: str = "gradient_flow",
    ) -> None:
        super().__init__()
        self.every, self.rnn, self.cell, self.store, self.sink = every, rnn, cell, store, sink
        self.max_points, self.prefix = max_points, prefix
        self.monitor: GradientFlowMonitor | None = None
        self._last_started: int | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.monitor.records if self.monitor is not None else []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self.monitor is not None:
            return

        def resolve(m: nn.Module | str | None) -> nn.Module | None:
            return pl_module.get_submodule(m) if isinstance(m, str) else m

        self.monitor = GradientFlowMonitor(
            pl_module, self.every, rnn=resolve(self.rnn), cell=resolve(self.cell),
            store=self.store, sink=self.sink, max_points=self.max_points,
            name=type(pl_module).__name__,
        )  # fmt: skip

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.monitor is None or step == self._last_started:
            return
        if self.monitor.start(step):
            self._last_started = step

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.monitor is None:
            return
        record = self.monitor.finish()
        if record is not None:
            metrics = metrics_of(record, self.prefix)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=record["step"])

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if self.monitor is not None:
            self.monitor.cancel()  # a step whose backward never came (skipped by the module)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self.monitor is not None:
            self.monitor.cancel()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.monitor is not None:
            self.monitor.close()
