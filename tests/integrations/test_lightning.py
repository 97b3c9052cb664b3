"""integrations.lightning: a tiny LightningModule trains with the callback; what the trainer's
logger received equals the monitor's records, and training is bitwise the uncallbacked one."""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import pytest
import torch
from torch import Tensor, nn

L = pytest.importorskip("lightning.pytorch", reason="the lightning extra is not installed")

from lightning.pytorch.loggers import Logger  # noqa: E402

from bpttlab.integrations.lightning import GradientFlowCallback, metrics_of  # noqa: E402


class Memory(Logger):
    """Keeps every log_metrics call."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.append((step, dict(metrics)))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.head = nn.Linear(8, 2)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        out, _ = self.lstm(x)
        return nn.functional.cross_entropy(self.head(out[:, -1]), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.05)


def _fit(module: L.LightningModule, callbacks: list[Any], logger: Any) -> None:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(40, 25, 3, generator=g),
                                          torch.randint(0, 2, (40,), generator=g))  # fmt: skip
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    trainer = L.Trainer(max_steps=5, callbacks=callbacks, logger=logger, accelerator="cpu",
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, deterministic=True,
                        log_every_n_steps=1)  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*max_steps=5.*")
        trainer.fit(module, loader)


def test_logged_metrics_equal_the_records_and_training_is_unchanged() -> None:
    torch.manual_seed(0)
    module = Tiny()
    twin = copy.deepcopy(module)
    logger = Memory()
    callback = GradientFlowCallback(every=2)
    _fit(module, [callback], logger)
    _fit(twin, [], Memory())
    records = callback.records
    assert [r["step"] for r in records] == [0, 2, 4]
    assert {r["method"] for r in records} == {"replay"} and records[0]["T"] == 25
    ours = [(step, m) for step, m in logger.logged if any(k.startswith("gradient_flow/")
                                                          for k in m)]  # fmt: skip
    assert ours == [(r["step"], metrics_of(r)) for r in records]
    assert ours[0][1]["gradient_flow/ratio"] == records[0]["ratio"]  # exact floats, no rounding
    for (name, p), q in zip(module.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert callback.monitor is not None and callback.monitor._active is None


def test_named_module_and_exception_leave_nothing_attached() -> None:
    class Boom(Tiny):
        def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
            self.lstm(batch[0])
            raise RuntimeError("boom in training_step")

    torch.manual_seed(0)
    module = Boom()
    callback = GradientFlowCallback(every=1, rnn="lstm")
    with pytest.raises(RuntimeError, match="boom in training_step"):
        _fit(module, [callback], Memory())
    assert "forward" not in vars(module.lstm) and callback.records == []
