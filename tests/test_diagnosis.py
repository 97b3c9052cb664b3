"""diagnose: closed-form decay rates, verdict thresholds and evidence-backed advice."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import bpttlab.diagnosis as dg
from bpttlab.diagnosis import Diagnosis, diagnose, diagnose_profile
from bpttlab.models import build
from bpttlab.probe import gradient_profile

B = 4


class LinearCell(nn.Module):
    """h_t = W h_{t-1} + U x_t: the identity activation, through a user's own cell."""

    def __init__(self, W: Tensor, U: Tensor) -> None:
        super().__init__()
        self.W, self.U = nn.Parameter(W), nn.Parameter(U)

    def forward(self, x_t: Tensor, h: Tensor) -> Tensor:
        return h @ self.W.T + x_t @ self.U.T  # (B, H)


class LinearRNN(nn.Module):
    """W = rho Q, Q orthogonal; readout w . h_T. Then dL/dh_t = (W^T)^(T-t) w per sample, so
    ||dL/dh_t|| = rho^(T-t) sqrt(B) ||w|| exactly."""

    def __init__(self, rho: float, H: int = 8) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        Q, _ = torch.linalg.qr(torch.randn(H, H, generator=g, dtype=torch.float64))
        self.cell = LinearCell(rho * Q, torch.randn(H, 2, generator=g, dtype=torch.float64))
        self.w = nn.Parameter(torch.randn(H, generator=g, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:  # (B, T, 2) -> (B,)
        h = x.new_zeros(x.shape[0], self.w.shape[0])
        for x_t in x.unbind(1):
            h = self.cell(x_t, h)
        return h @ self.w


def _linear(rho: float, T: int) -> tuple[LinearRNN, Diagnosis, np.ndarray]:
    model = LinearRNN(rho)
    x = torch.randn(B, T, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    prof = gradient_profile(model, x, lambda y: y.sum(), cell=model.cell)
    expected = rho ** (T - np.arange(T + 1)) * math.sqrt(B) * float(model.w.detach().norm())
    np.testing.assert_allclose(prof.norms, expected, rtol=1e-10)
    return model, diagnose_profile(prof, model, cell=model.cell), prof.norms


def test_linear_rnn_decays_exactly_as_rho_to_the_steps_back() -> None:
    rho, T = 0.8, 60
    _, d, norms = _linear(rho, T)
    assert d.rate_per_step == pytest.approx(math.log(rho), abs=1e-8)
    assert d.factor_per_step == pytest.approx(rho, abs=1e-8) and d.fit_r2 == pytest.approx(1.0)
    assert d.verdict == "vanishing" and d.ratio == pytest.approx(rho**T, rel=1e-8)
    assert d.horizon == 31  # 0.8^30 = 1.2e-3, 0.8^31 = 9.9e-4
    assert d.horizon_fit == pytest.approx(math.log(1e-3) / math.log(rho), rel=1e-8)
    s32 = math.log(dg.FLOAT32_SMALLEST / norms[-1]) / math.log(rho)
    assert d.horizon_float32_fit == pytest.approx(s32, rel=1e-8) and d.horizon_float32 is None
    horizon = [a for a in d.advice if "steps back" in a.text and a.evidence.get("horizon") == 31]
    assert horizon and "31 steps back" in horizon[0].text
    json.dumps(d.to_dict(), allow_nan=False)


def test_exploding_gets_clipping_advice_and_healthy_gets_none() -> None:
    _, d, _ = _linear(1.1, 100)
    assert d.verdict == "exploding" and d.ratio == pytest.approx(1.1**100, rel=1e-8)
    assert d.rate_per_step == pytest.approx(math.log(1.1), abs=1e-8)
    clip = [a for a in d.advice if "clip_grad_norm_" in a.text]
    assert clip and clip[0].evidence["ratio"] == d.ratio
    _, ok, _ = _linear(1.0, 20)
    assert ok.verdict == "healthy" and abs(ok.rate_per_step or 1) < 1e-10
    assert [a.text for a in ok.advice] == [ok.advice[0].text] and "no change" in ok.advice[0].text


def test_healthy_but_growing_gets_clipping_advice_not_no_change() -> None:
    _, d, _ = _linear(1.1, 50)  # 1.1^50 = 117: under the exploding line, growing every step
    assert d.verdict == "healthy" and d.ratio == pytest.approx(1.1**50, rel=1e-8)
    texts = [a.text for a in d.advice]
    assert not any("no change" in t for t in texts), texts
    grow = [a for a in d.advice if "grows x1.1 per step" in a.text]
    assert grow and "clip_grad_norm_" in grow[0].text
    assert grow[0].evidence["rate_per_step"] == pytest.approx(math.log(1.1), abs=1e-8)


def test_thresholds_are_the_documented_ratios() -> None:
    # ratio = rho^T: just inside and outside 1e-3 and 1e3
    assert _linear(0.5, 9)[1].verdict == "healthy"  # 0.5^9 = 1.95e-3 >= 1e-3
    assert _linear(0.5, 10)[1].verdict == "vanishing"  # 9.8e-4 < 1e-3
    assert _linear(2.0, 9)[1].verdict == "healthy"  # 512 <= 1e3
    assert _linear(2.0, 10)[1].verdict == "exploding"  # 1024 > 1e3
    assert (dg.VANISH_RATIO, dg.EXPLODE_RATIO) == (1e-3, 1e3)


def test_lstm_with_forget_bias_zero_is_told_to_raise_it() -> None:
    torch.manual_seed(0)
    x = torch.randn(B, 40, 1)
    for forget_bias, expect in (("zero", True), ("one", False)):
        model = build("lstm", 1, 16, 1, forget_bias=forget_bias)
        d = diagnose(model, x, lambda out: out[0][:, -1].sum())
        advice = [a for a in d.advice if "forget-gate bias" in a.text]
        assert bool(advice) == expect, (forget_bias, [a.text for a in d.advice])
        if expect:
            assert d.facts["forget_bias"] == 0.0 and advice[0].evidence["forget_bias"] == 0.0
            assert "chrono" in advice[0].text and d.rate_per_step is not None
            assert d.rate_per_step < 0
        if d.verdict == "vanishing":  # never advised to switch to what it already is
            assert not any("(lstm, gru)" in a.text for a in d.advice)


def test_tanh_rnn_with_spectral_radius_0_6() -> None:
    torch.manual_seed(0)
    model = build("rnn", 2, 32, 1, init="orthogonal", gain=0.6)
    d = diagnose(model, torch.randn(B, 40, 2), lambda out: out[0][:, -1].sum())
    assert d.facts["spectral_radius"] == pytest.approx(0.6, abs=1e-5)
    assert d.verdict == "vanishing" and d.factor_per_step is not None
    assert d.factor_per_step < 0.6 + 1e-3  # tanh' <= 1 on top of radius 0.6
    radius = [a for a in d.advice if "spectral radius 0.6" in a.text]
    assert radius and radius[0].evidence["spectral_radius"] == d.facts["spectral_radius"]


def test_sigmoid_rnn_is_told_about_the_quarter() -> None:
    torch.manual_seed(0)
    model = build("rnn", 2, 16, 1, activation="sigmoid", init="orthogonal")
    d = diagnose(model, torch.randn(B, 30, 2), lambda out: out[0][:, -1].sum())
    assert d.verdict == "vanishing" and d.facts["activation"] == "sigmoid"
    assert any("0.25" in a.text and a.evidence["activation"] == "sigmoid" for a in d.advice)


def test_float32_underflow_horizon_and_advice() -> None:
    torch.manual_seed(0)
    rnn = nn.RNN(2, 8)
    with torch.no_grad():
        nn.init.orthogonal_(rnn.weight_hh_l0, gain=0.3)
    d = diagnose(rnn, torch.randn(200, 2, 2), lambda out: out[0][-1].sum())
    assert d.facts["kind"] == "rnn" and d.facts["spectral_radius"] == pytest.approx(0.3, abs=1e-5)
    assert d.horizon_float32 is not None and 50 < d.horizon_float32 < 200
    assert any(
        "float32" in a.text and a.evidence["horizon_float32"] == d.horizon_float32 for a in d.advice
    )
    json.dumps(d.to_dict(), allow_nan=False)


def test_public_names() -> None:
    assert set(dg.__all__) >= {"Advice", "Diagnosis", "diagnose", "diagnose_profile"}
    assert all(hasattr(dg, name) for name in dg.__all__)
