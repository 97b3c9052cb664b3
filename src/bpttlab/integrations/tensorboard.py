"""A TensorBoard sink for :class:`bpttlab.monitor.GradientFlowMonitor` (the tensorboard extra).

    from torch.utils.tensorboard import SummaryWriter
    from bpttlab.integrations.tensorboard import TensorBoardSink

    mon = GradientFlowMonitor(model, every=10, sink=TensorBoardSink("runs/tb"))

Per profiled training step, under one tag group (``tag``, default "gradient_flow"):

- scalars ``ratio`` (``||dL/dh_0|| / ||dL/dh_T||``), ``log10_ratio``, ``rate`` (the fitted
  decay rate per step, natural log) and ``horizon`` (steps back to 1e-3 of the readout's
  gradient; not written when it lies beyond T, nor ``rate`` when there is none);
- ``profile``: an image, training steps left to right and t = T (top) to 0 (bottom), coloured
  by ``log10 ||dL/dh_t||`` (viridis; black where the gradient is exactly zero), rewritten at
  every record so that the last image holds the whole run. Rows are positions t/T, so runs
  whose T changes still line up;
- ``log10_norms``: the histogram of ``log10 ||dL/dh_t||`` over the kept steps t.

TensorBoard keeps scalars as float32: a ratio under ~1e-45 reads back as 0 (``log10_ratio``
keeps it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TensorBoardSink", "heatmap"]


def heatmap(records: list[dict[str, Any]], rows: int = 128, scale: int = 4) -> np.ndarray:
    """The time x step picture of ``records``: (rows, scale * len(records), 3) uint8, row 0 is
    t = T, the last row t = 0, one column block per record, colour by log10 norm."""
    from matplotlib import colormaps

    grid = np.linspace(1.0, 0.0, rows)  # t / T, top to bottom
    cols = []
    for r in records:
        frac = np.asarray(r["t"], dtype=float) / max(r["T"], 1)
        with np.errstate(divide="ignore"):
            logs = np.log10(np.asarray(r["norms"], dtype=float))
        finite = np.isfinite(logs)
        col = np.full(rows, -np.inf)
        if finite.any():
            col = np.interp(grid, frac[finite], logs[finite])
            nearest = np.abs(grid[:, None] - frac[None, :]).argmin(axis=1)
            col[~finite[nearest]] = -np.inf  # an exact zero stays black
        cols.append(col)
    Z = np.stack(cols, axis=1)  # (rows, n)
    ok = np.isfinite(Z)
    lo, hi = (float(Z[ok].min()), float(Z[ok].max())) if ok.any() else (0.0, 1.0)
    unit = (Z - lo) / (hi - lo) if hi > lo else np.full_like(Z, 0.5)
    rgb = colormaps["viridis"](np.where(ok, unit, 0.0))[..., :3]  # (rows, n, 3)
    rgb[~ok] = 0.0
    return (np.repeat(rgb, scale, axis=1) * 255).round().astype(np.uint8)


class TensorBoardSink:
    """Writes each record to TensorBoard; see the module docstring for the tags.

    Arguments:
        log_dir: where a new ``SummaryWriter`` writes (closed by :meth:`close`), or
        writer: an open ``SummaryWriter`` (e.g. Lightning's ``TensorBoardLogger.experiment``;
            flushed, not closed).
        tag: the tag group.
        scalars: write the scalars too (False when a logger already writes them).
        rows: image height (positions t/T).
    """

    def __init__(
        self,
        log_dir: str | Path | None = None,
        *,
        writer: Any = None,
        tag: str = "gradient_flow",
        scalars: bool = True,
        rows: int = 128,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter  # the tensorboard extra

        if (log_dir is None) == (writer is None):
            raise ValueError("give TensorBoardSink a log_dir or a writer (one of them)")
        self._own = writer is None
        self.writer = SummaryWriter(str(log_dir)) if writer is None else writer
        self.tag, self.scalars, self.rows = tag, scalars, rows
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        step, tag, w = record["step"], self.tag, self.writer
        self.records.append(record)
        if self.scalars:
            w.add_scalar(f"{tag}/ratio", record["ratio"], step)
            ratio = record["ratio"]
            w.add_scalar(f"{tag}/log10_ratio", math.log10(ratio) if ratio > 0 else -math.inf,
                         step)  # fmt: skip
            for key in ("rate", "horizon"):
                if record[key] is not None:
                    w.add_scalar(f"{tag}/{key}", record[key], step)
        w.add_image(f"{tag}/profile", heatmap(self.records, self.rows), step, dataformats="HWC")
        with np.errstate(divide="ignore"):
            logs = np.log10(np.asarray(record["norms"], dtype=float))
        if np.isfinite(logs).any():
            w.add_histogram(f"{tag}/log10_norms", logs[np.isfinite(logs)], step)
        w.flush()

    def close(self) -> None:
        if self._own:
            self.writer.close()
        else:
            self.writer.flush()
