"""models.build: the shared interface, configs, inits from the papers, and closed forms."""

from __future__ import annotations

import copy
import json
import math
import re

import pytest
import torch
from torch import nn

from bpttlab.models import ARCHS, LRUCell, RecurrentModel, build, config_from_dict
from bpttlab.testing.unrolled import unrolled_model

B, T, IN, H, OUT = 3, 7, 4, 6, 2


def _x(seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(B, T, IN, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_keeps_the_shared_interface(arch: str) -> None:
    torch.manual_seed(0)
    model = build(arch, IN, H, OUT)
    y, hs = model(_x())
    S = 2 * H if arch == "lru" else H
    assert isinstance(model, RecurrentModel) and model.name == arch and model.hidden_size == H
    assert y.shape == (B, T, OUT) and hs.shape == (B, T, S) and model.state_size == S
    d = json.loads(json.dumps(model.config.to_dict()))
    assert d["arch"] == arch and config_from_dict(d) == model.config
    torch.manual_seed(0)
    again = build(arch, IN, H, OUT)  # same seed, same numbers
    torch.testing.assert_close(again(_x())[0], y, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru", "sigmoid"])
def test_layers_and_directions(arch: str) -> None:
    torch.manual_seed(0)
    opts = {"num_layers": 2, "bidirectional": True}
    name, opts = ("rnn", {**opts, "activation": "sigmoid"}) if arch == "sigmoid" else (arch, opts)
    model = build(name, IN, H, OUT, **opts)
    h0 = torch.zeros(4, B, H)
    y, hs = model(_x(), (h0, h0) if arch == "lstm" else h0)
    assert y.shape == (B, T, OUT) and hs.shape == (B, T, 2 * H) and model.num_directions == 2
    assert isinstance(model.core, nn.RNNBase) == (arch != "sigmoid")


@pytest.mark.parametrize("arch", ["rnn-sigmoid", "skip-rnn", "orthogonal-rnn", "lru"])
def test_cell_models_match_the_reference_equations(arch: str) -> None:
    torch.manual_seed(1)
    if arch == "rnn-sigmoid":
        model = build("rnn", IN, H, OUT, activation="sigmoid", num_layers=2, bidirectional=True)
    else:
        model = build(arch, IN, H, OUT, **({"skip": 3} if arch == "skip-rnn" else {}))
    model = model.double()
    x = _x(dtype=torch.float64)
    y, hs = model(x)
    ref = unrolled_model(model, x, lambda out: out[0].sum())
    torch.testing.assert_close(ref.output[0], y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ref.output[1], hs, rtol=1e-12, atol=1e-12)


def test_errors_name_argument_value_and_choices() -> None:
    cases = [
        (
            {"name": "foo"},
            "arch='foo' is not allowed: choose one of rnn, irnn, lstm, gru, skip-rnn, ",
        ),
        (
            {"activation": "foo"},
            "activation='foo' is not allowed: choose one of tanh, sigmoid, relu",
        ),
        (
            {"init": "he"},
            "init='he' is not allowed: choose one of default, orthogonal, identity, gaussian",
        ),
        (
            {"name": "lstm", "forget_bias": 2},
            "forget_bias=2 is not allowed: choose one of default, zero, one",
        ),
        ({"colour": 1}, "colour=1 is not allowed: not one of rnn's options: activation, init"),
        ({"num_layers": 0}, "num_layers=0 is not allowed: must be an int >= 1"),
        (
            {"name": "lru", "r_min": 0.99, "r_max": 0.9},
            "r_max=0.9 is not allowed: must be a finite number in (0.99, 1)",
        ),
        (
            {"name": "attention-rnn", "activation": "sigmoid"},
            "is not allowed: choose one of tanh, relu",
        ),
    ]
    for opts, message in cases:
        name = opts.pop("name", "rnn")
        with pytest.raises(ValueError, match=re.escape(message)):
            build(name, IN, H, OUT, **opts)
    with pytest.raises(ValueError, match="hidden_size=0 is not allowed: must be an int >= 1"):
        build("gru", IN, 0, OUT)
    with pytest.raises(ValueError, match=r"x must be \(B, T, input_size\)"):
        build("gru", IN, H, OUT)(torch.zeros(T, IN))


def test_irnn_and_recurrent_inits() -> None:
    torch.manual_seed(0)
    irnn = build("irnn", IN, H, OUT)
    assert irnn.core.nonlinearity == "relu"
    torch.testing.assert_close(irnn.core.weight_hh_l0, torch.eye(H))  # Le et al. 2015
    assert not irnn.core.bias_ih_l0.any() and not irnn.core.bias_hh_l0.any()
    ortho = build("rnn", IN, 64, OUT, init="orthogonal", gain=0.6)
    W = ortho.core.weight_hh_l0.detach().double()
    torch.testing.assert_close(
        W @ W.T, 0.36 * torch.eye(64, dtype=torch.float64), atol=1e-6, rtol=0
    )
    gauss = build("rnn", IN, 256, OUT, init="gaussian", gain=0.5)  # circular law: radius ~ gain
    radius = torch.linalg.eigvals(gauss.core.weight_hh_l0.detach().double()).abs().max()
    assert 0.45 < float(radius) < 0.55
    skip = build("skip-rnn", IN, H, OUT, init="identity", gain=0.9)
    torch.testing.assert_close(skip.core.cells[0].W_hh.weight, 0.9 * torch.eye(H))


def test_lstm_forget_gate_bias_options() -> None:
    torch.manual_seed(0)

    def gates(model: RecurrentModel, lo: int, hi: int) -> torch.Tensor:
        return (model.core.bias_ih_l0 + model.core.bias_hh_l0)[lo * H : hi * H].detach()

    default = build("lstm", IN, H, OUT)
    assert gates(default, 1, 2).abs().max() <= 2 / math.sqrt(H)  # PyTorch's U(+-1/sqrt(H)) x 2
    assert not gates(build("lstm", IN, H, OUT, forget_bias="zero"), 1, 2).any()
    torch.testing.assert_close(
        gates(build("lstm", IN, H, OUT, forget_bias="one"), 1, 2), torch.ones(H)
    )
    chrono = build("lstm", IN, 64, OUT, forget_bias="chrono", chrono_tmax=50, num_layers=2)
    for layer in range(2):
        b = getattr(chrono.core, f"bias_ih_l{layer}") + getattr(chrono.core, f"bias_hh_l{layer}")
        f, i = b[64:128].detach(), b[:64].detach()  # Tallec & Ollivier 2018: log U[1, T_max-1]
        assert f.min() >= 0 and f.max() <= math.log(49) and f.std() > 0.3
        torch.testing.assert_close(i, -f)


def test_attention_readout_is_causal() -> None:
    torch.manual_seed(0)
    model = build("attention-rnn", IN, H, OUT)
    x = _x()
    y = model(x)[0]
    later = x.clone()
    later[:, 4:] += 1.0
    y2 = model(later)[0]
    torch.testing.assert_close(y2[:, :4], y[:, :4], rtol=0, atol=0)
    assert not torch.allclose(y2[:, 4:], y[:, 4:])


def test_orthogonal_rnn_stays_orthogonal_while_training() -> None:
    torch.manual_seed(0)
    model = build("orthogonal-rnn", IN, H, OUT)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    W0 = model.core.cells[0].W_hh.weight.detach().clone()
    for seed in range(3):
        opt.zero_grad()
        model(_x(seed))[0].pow(2).mean().backward()
        opt.step()
    W = model.core.cells[0].W_hh.weight.detach().double()
    torch.testing.assert_close(W @ W.T, torch.eye(H, dtype=torch.float64), atol=1e-5, rtol=0)
    assert (W.float() - W0).abs().max() > 1e-3  # it did train


def test_lru_ring_and_closed_form() -> None:
    torch.manual_seed(0)
    model = build("lru", IN, 64, OUT, r_min=0.5, r_max=0.8, max_phase=1.0).double()
    cell = model.core.cells[0]
    assert isinstance(cell, LRUCell)
    lam = cell.eigenvalues()
    assert lam.abs().min() >= 0.5 - 1e-9 and lam.abs().max() <= 0.8 + 1e-9
    assert lam.angle().min() >= 0 and lam.angle().max() <= 1.0 + 1e-9
    h0 = torch.randn(1, B, 128, dtype=torch.float64)
    hs = model(torch.zeros(B, T, IN, dtype=torch.float64), h0)[1]  # zero input: h_t = lam^t h0
    z0 = torch.complex(h0[0, :, :64], h0[0, :, 64:])
    for t in (1, T):
        expected = lam**t * z0
        torch.testing.assert_close(hs[:, t - 1], torch.cat([expected.real, expected.imag], -1))


def test_skip_rnn_adds_the_state_k_steps_back() -> None:
    torch.manual_seed(0)
    model = build("skip-rnn", IN, H, OUT, skip=3).double()
    cell = model.core.cells[0]
    with torch.no_grad():
        cell.W_hh.weight.zero_()  # then h_t = tanh(W_xh x_t + b) + h_{t-3}, zero for t <= 3
    x = _x(dtype=torch.float64)
    hs = model(x)[1]
    u = torch.tanh(cell.W_xh(x))  # (B, T, H)
    torch.testing.assert_close(hs[:, :3], u[:, :3])
    torch.testing.assert_close(hs[:, 3:], u[:, 3:] + hs[:, :-3])


def test_fused_models_equal_their_torch_module() -> None:
    torch.manual_seed(0)
    for arch in ("rnn", "lstm", "gru"):
        model = build(arch, IN, H, OUT, num_layers=2)
        core = copy.deepcopy(model.core)
        hs = core(_x())[0]
        torch.testing.assert_close(model(_x())[1], hs, rtol=0, atol=0)
