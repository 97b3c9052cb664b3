"""clipping_demo(): the documented configurations, measured over seeds."""

from __future__ import annotations

from bpttlab.experiments import ClippingConfig, clipping_demo
from bpttlab.training import CLIPS

from .conftest import strict_json


def test_clipping_demo_real_config() -> None:
    """As measured: the unclipped explosion diverges, every clipping rule trains without
    diverging, and nothing rescues the vanishing gradient."""
    doc = clipping_demo(ClippingConfig(steps=40, seeds=(0, 1)), workers=1).to_dict()
    assert strict_json(doc) == doc
    rows = {(r["case"], r["clip"]): r for r in doc["rows"]}
    assert set(rows) == {(case, clip) for case in ("exploding", "vanishing") for clip in CLIPS}
    assert rows["exploding", "none"]["diverged"] == 2 and rows["exploding", "none"]["seeds"] == 2
    assert rows["exploding", "none"]["diverged_low"] > 0.3
    for clip in ("norm", "variable-norm", "value"):
        assert rows["exploding", clip]["diverged"] == 0
    for clip in CLIPS:
        vanishing = rows["vanishing", clip]
        assert vanishing["diverged"] == 0 and vanishing["grad_h0_ratio"]["max"] < 1e-10
        assert vanishing["grad_h0_ratio_init"]["max"] < 1e-10
    assert rows["exploding", "none"]["grad_h0_ratio_init"]["min"] > 1e3
    runs = {(r["case"], r["clip"], r["seed"]): r for r in doc["runs"]}
    assert len(runs) == 16 and runs["exploding", "none", 0]["diverged_at_step"] is not None
    assert doc["setup"]["clips"] == {"none": None, "norm": 1.0, "variable-norm": 1.0, "value": 0.1}
