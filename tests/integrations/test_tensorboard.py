"""integrations.tensorboard: the event file, read back with TensorBoard's own reader."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from bpttlab.integrations.tensorboard import TensorBoardSink, heatmap  # noqa: E402
from bpttlab.monitor import GradientFlowMonitor  # noqa: E402


def _train(sink: Any, steps: int = 6, every: int = 2) -> GradientFlowMonitor:
    torch.manual_seed(0)
    model = nn.GRU(3, 8, batch_first=True)
    head = nn.Linear(8, 2)
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=0.05)
    g = torch.Generator().manual_seed(1)
    mon = GradientFlowMonitor(model, every=every, sink=sink, max_points=20)
    for step in range(steps):
        x, y = torch.randn(4, 30, 3, generator=g), torch.randint(0, 2, (4,), generator=g)
        with mon.step(step):
            out, _ = model(x)
            nn.functional.cross_entropy(head(out[:, -1]), y).backward()
        opt.step()
        opt.zero_grad()
    mon.close()
    return mon


def test_event_file_holds_scalars_image_and_histogram(tmp_path: Path) -> None:
    mon = _train(TensorBoardSink(tmp_path, tag="gf"))
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0,
                                                         "histograms": 0})  # fmt: skip
    acc.Reload()
    tags = acc.Tags()
    assert {"gf/ratio", "gf/log10_ratio", "gf/rate", "gf/horizon"} <= set(tags["scalars"])
    assert tags["images"] == ["gf/profile"] and tags["histograms"] == ["gf/log10_norms"]
    steps = [r["step"] for r in mon.records]
    assert steps == [0, 2, 4]
    for key, tag in (("ratio", "gf/ratio"), ("rate", "gf/rate"), ("horizon", "gf/horizon")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == steps
        expected = [float(r[key]) for r in mon.records]  # float32 in the event file
        np.testing.assert_allclose([e.value for e in events], expected, rtol=1e-6)
    logs = [e.value for e in acc.Scalars("gf/log10_ratio")]
    np.testing.assert_allclose(logs, [np.log10(r["ratio"]) for r in mon.records], rtol=1e-6)
    images = acc.Images("gf/profile")
    assert [im.step for im in images] == steps
    from PIL import Image

    last = np.asarray(Image.open(io.BytesIO(images[-1].encoded_image_string)).convert("RGB"))
    assert last.shape == (128, 4 * len(steps), 3)
    np.testing.assert_array_equal(last, heatmap(mon.records))  # PNG is lossless
    hist = acc.Histograms("gf/log10_norms")
    assert [h.step for h in hist] == steps
    for h, r in zip(hist, mon.records, strict=True):
        logs = np.log10(r["norms"])
        assert h.histogram_value.num == len(r["norms"])
        assert h.histogram_value.min == pytest.approx(logs.min())
        assert h.histogram_value.max == pytest.approx(logs.max())


def test_heatmap_rows_follow_t_and_zero_is_black() -> None:
    """Row 0 is t = T (the readout, largest norm: the top colour), the last row t = 0."""
    recs = [{"step": 0, "T": 4, "t": [0, 1, 2, 3, 4], "norms": [0.0, 1e-4, 1e-3, 1e-2, 1.0]},
            {"step": 1, "T": 2, "t": [0, 1, 2], "norms": [1e-2, 1e-1, 1.0]}]  # fmt: skip
    img = heatmap(recs, rows=5, scale=1)
    assert img.shape == (5, 2, 3)
    assert np.all(img[-1, 0] == 0)  # an exact zero gradient
    top = img[0, 0].astype(int)
    assert top.sum() > img[1, 0].astype(int).sum() > 0  # viridis brightens with log10 norm
    np.testing.assert_array_equal(img[0, 0], img[0, 1])  # both readouts at 1.0


def test_sink_needs_one_destination(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="log_dir or a writer"):
        TensorBoardSink()
