"""probe.gradient_profile against the slow unrolled retain_grad() twins in tests/reference."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from bpttlab.models import ARCHS, build
from bpttlab.probe import Profile, gradient_profile
from bpttlab.testing.unrolled import assert_steps_close, rtol_for, unrolled_model, unrolled_rnn

T, B, IN, H = 6, 3, 4, 5
FUSED = {
    "rnn_tanh": (nn.RNN, {}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, {}),
    "gru": (nn.GRU, {}),
}


def _make_loss(kind: str, seed: int, batch_first: bool) -> Any:
    """A loss on (output, h_n-like) that weights every entry differently."""
    g = torch.Generator().manual_seed(seed)

    def loss_fn(out: Any) -> Tensor:
        seq, rest = out
        w = torch.randn(seq.shape, generator=g.manual_seed(seed), dtype=torch.float64).to(seq)
        if kind == "last":
            last = seq[:, -1] if batch_first else seq[-1]
            return (torch.tanh(last) * (w[:, -1] if batch_first else w[-1])).sum()
        tail = sum((r.sum() for r in rest), torch.zeros(())) if isinstance(rest, tuple) else 0
        return (seq * w).sum() + 0.5 * (rest.sum() if isinstance(rest, Tensor) else tail)

    return loss_fn


def _fused_module(
    arch: str, layers: int, bidir: bool, batch_first: bool, dtype: torch.dtype, **kw: Any
) -> nn.RNNBase:
    torch.manual_seed(0)
    cls, opts = FUSED[arch]
    m = cls(IN, H, num_layers=layers, bidirectional=bidir, batch_first=batch_first, **opts, **kw)
    return m.to(dtype)


def _check(prof: Profile, ref: Any, module: nn.Module, dtype: torch.dtype) -> None:
    rtol = rtol_for(dtype)
    assert prof.loss == pytest.approx(ref.loss, rel=rtol)
    for key, g in ref.grads.items():
        assert prof.grads is not None
        assert_steps_close(prof.grads[key], g, rtol)
        norms = g.double().flatten(1).norm(dim=1).numpy()
        np.testing.assert_allclose(prof.per_layer[key], norms, rtol=rtol, atol=0)
    top = np.sqrt((prof.per_layer[-1] ** 2).sum(0))
    np.testing.assert_allclose(prof.norms, top, rtol=1e-12)
    scale = max(float(g.abs().max()) for g in ref.param_grads.values() if g is not None)
    for name, p in module.named_parameters():  # some are exactly 0 in theory (softmax's key bias)
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, ref.param_grads[name], rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("loss_kind", ["last", "every"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("arch", list(FUSED))
def test_fused_modules_match_unrolled_reference(
    arch: str, layers: int, bidir: bool, batch_first: bool, dtype: torch.dtype, loss_kind: str
) -> None:
    module = _fused_module(arch, layers, bidir, batch_first, dtype)
    x = torch.randn((B, T, IN) if batch_first else (T, B, IN), dtype=dtype)
    loss_fn = _make_loss(loss_kind, 1, batch_first)
    ref = unrolled_rnn(copy.deepcopy(module), x, loss_fn)
    methods = ["unrolled"] if arch == "gru" else ["fused", "unrolled"]
    for method in methods:
        m = copy.deepcopy(module)
        prof = gradient_profile(m, x, loss_fn, method=method, keep_grads=True)
        assert prof.method == method and prof.per_layer.shape == (layers, 1 + bidir, T + 1)
        _check(prof, ref, m, dtype)
        if arch == "lstm" and method == "unrolled":
            assert ref.cell_grads is not None and prof.cell_per_layer is not None
            for key, c in ref.cell_grads.items():
                norms = c.double().flatten(1).norm(dim=1).numpy()
                np.testing.assert_allclose(prof.cell_per_layer[key], norms, rtol=rtol_for(dtype))
        elif arch == "lstm":
            assert prof.cell_norms is None  # c_t stays inside the fused kernel


@pytest.mark.parametrize("method", ["fused", "unrolled"])
def test_lstm_projection_and_no_bias(method: str) -> None:
    for kw in ({"proj_size": 3}, {"bias": False}):
        module = _fused_module("lstm", 2, True, True, torch.float64, **kw)
        x = torch.randn(B, T, IN, dtype=torch.float64)
        loss_fn = _make_loss("every", 2, True)
        ref = unrolled_rnn(copy.deepcopy(module), x, loss_fn)
        m = copy.deepcopy(module)
        _check(
            gradient_profile(m, x, loss_fn, method=method, keep_grads=True), ref, m, torch.float64
        )


def test_param_grads_equal_plain_backward_and_accumulate() -> None:
    module = _fused_module("lstm", 2, True, False, torch.float64)
    x = torch.randn(T, B, IN, dtype=torch.float64)
    loss_fn = _make_loss("every", 3, False)
    plain = copy.deepcopy(module)
    for _ in range(2):  # twice: .grad accumulates exactly as loss.backward() does
        loss_fn(plain(x)).backward()
        gradient_profile(module, x, loss_fn)
    for (name, p), q in zip(module.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14, msg=name)


def test_h0_entry_is_what_h0_grad_norm_prints() -> None:
    module = _fused_module("rnn_tanh", 2, True, True, torch.float64)
    x = torch.randn(B, T, IN, dtype=torch.float64)
    h0 = torch.randn(4, B, H, dtype=torch.float64, requires_grad=True)
    loss_fn = _make_loss("last", 4, True)
    loss_fn(copy.deepcopy(module)(x, h0)).backward()
    prof = gradient_profile(module, x, loss_fn, h0=h0.detach())
    assert prof.norms[0] == pytest.approx(float(h0.grad[2:].norm()), rel=1e-12)


def test_unbatched_input_matches_batch_of_one() -> None:
    module = _fused_module("gru", 2, True, False, torch.float64)
    x = torch.randn(T, 1, IN, dtype=torch.float64)
    batched = gradient_profile(copy.deepcopy(module), x, lambda o: o[0].sum() + o[1].sum())
    single = gradient_profile(copy.deepcopy(module), x[:, 0], lambda o: o[0].sum() + o[1].sum())
    np.testing.assert_allclose(single.per_layer, batched.per_layer, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("arch", [*ARCHS, "rnn-sigmoid"])
def test_bpttlab_models_match_reference(arch: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    if arch == "rnn-sigmoid":
        model = build("rnn", IN, H, 2, activation="sigmoid", num_layers=2, bidirectional=True)
    else:
        model = build(arch, IN, H, 2, **({"skip": 2} if arch == "skip-rnn" else {}))
    model = model.to(dtype)
    x = torch.randn(B, T, IN, dtype=dtype)
    if arch == "irnn" and dtype == torch.float32:
        # A pre-activation within float32 rounding of relu's kink takes relu' = 0 in one
        # computation and 1 in the other (the fused kernel and the loop sum in other orders):
        # a discrete difference that no tolerance bounds (seen: 1.75e-3 at step 0 on AVX-512).
        # With W_ih >= 0, x >= 0, zero biases and W_hh = I every z_t is > 0, so both compute
        # the same linear map and differ by float32 rounding only; float64 covers the kinks.
        with torch.no_grad():
            model.core.weight_ih_l0.abs_()
        x = x.abs()
    for kind in ("last", "every"):
        loss_fn = _make_loss(kind, 5, True)
        ref = unrolled_model(model, x, loss_fn)
        m = copy.deepcopy(model)
        prof = gradient_profile(m, x, loss_fn, keep_grads=True)
        cells = ("rnn-sigmoid", "skip-rnn", "orthogonal-rnn", "lru")
        expected = "cell-hook" if arch in cells else "fused" if arch == "lstm" else "unrolled"
        assert prof.method == expected
        _check(prof, ref, m, dtype)


class UserLSTM(nn.Module):
    """A user's own model: an LSTMCell called once per step, optionally retaining grads."""

    def __init__(self, retain: bool = False) -> None:
        super().__init__()
        self.cell, self.out, self.retain = nn.LSTMCell(IN, H), nn.Linear(H, 1), retain
        self.states: list[tuple[Tensor, Tensor]] = []

    def forward(self, x: Tensor) -> Tensor:  # x (T, B, IN) -> (B, 1)
        state = None
        for x_t in x:
            if state is None and self.retain:  # the reference: h_0 = c_0 = 0 as leaves
                z = x_t.new_zeros(x_t.shape[0], H)
                state = (z.clone().requires_grad_(), z.clone().requires_grad_())
                self.states.append(state)
            state = self.cell(x_t, state)
            if self.retain:
                state[0].retain_grad()
                state[1].retain_grad()
                self.states.append(state)
        assert state is not None
        return self.out(torch.tanh(state[0]))


def test_user_cell_hook_gives_h_and_c() -> None:
    torch.manual_seed(0)
    model = UserLSTM().double()
    ref_model = copy.deepcopy(model)
    ref_model.retain = True
    x = torch.randn(T, B, IN, dtype=torch.float64)
    ref_model(x).pow(2).sum().backward()
    prof = gradient_profile(model, x, lambda y: y.pow(2).sum(), cell=model.cell)
    h_ref = [float(s[0].grad.norm()) for s in ref_model.states]
    c_ref = [float(s[1].grad.norm()) for s in ref_model.states]
    assert prof.method == "cell-hook"
    np.testing.assert_allclose(prof.norms, h_ref, rtol=1e-10)
    assert prof.cell_norms is not None
    np.testing.assert_allclose(prof.cell_norms, c_ref, rtol=1e-10)
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14)


def _snapshot(model: nn.Module) -> tuple[dict, list]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    attrs = [
        (m, set(vars(m)), len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()
    ]
    return state, attrs


def _assert_clean(model: nn.Module, snap: tuple[dict, list]) -> None:
    state, attrs = snap
    for m, keys, n_hooks, n_pre in attrs:
        assert set(vars(m)) == keys, set(vars(m)) ^ keys
        assert (len(m._forward_hooks), len(m._forward_pre_hooks)) == (n_hooks, n_pre)
        assert "forward" not in vars(m)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("target", ["rnn", "lstm", "lru", "bare-gru", "user-cell"])
def test_no_probe_survives_success_or_exception(target: str) -> None:
    torch.manual_seed(0)
    kw: dict[str, Any] = {}
    if target == "bare-gru":
        model: nn.Module = nn.GRU(IN, H, num_layers=2)
        x, loss_fn = torch.randn(T, B, IN), (lambda o: o[0].sum())
    elif target == "user-cell":
        model = UserLSTM()
        x, loss_fn, kw = torch.randn(T, B, IN), (lambda y: y.sum()), {"cell": model.cell}
    else:
        model = build(target, IN, H, 2)
        x, loss_fn = torch.randn(B, T, IN), (lambda o: o[0].sum())
    before = copy.deepcopy(model)(x)
    snap = _snapshot(model)
    gradient_profile(model, x, loss_fn, **kw)
    _assert_clean(model, snap)

    def boom(out: Any) -> Tensor:
        raise RuntimeError("boom in loss_fn")

    with pytest.raises(RuntimeError, match="boom in loss_fn"):
        gradient_profile(model, x, boom, **kw)
    _assert_clean(model, snap)
    after = model(x)  # the module works as before
    first = before[0] if isinstance(before, tuple) else before
    torch.testing.assert_close(after[0] if isinstance(after, tuple) else after, first)


def test_tanh_rnn_underflow_at_T200() -> None:
    """Small W: the float64 profile reaches 1e-40 and below, where a float32 .norm() gives 0."""
    torch.manual_seed(0)
    rnn = nn.RNN(IN, 8).double()
    with torch.no_grad():
        nn.init.orthogonal_(rnn.weight_hh_l0, gain=0.3)
    x = torch.randn(200, 2, IN, dtype=torch.float64)
    loss_fn = _make_loss("last", 6, False)
    p64 = gradient_profile(copy.deepcopy(rnn), x, loss_fn, keep_grads=True)
    assert p64.norms.dtype == np.float64 and np.all(p64.norms > 0) and p64.norms[0] < 1e-40
    t = int(np.flatnonzero(p64.norms < 1e-25)[-1])  # entries < 1e-25: their squares underflow
    assert p64.grads is not None and float(p64.grads[(0, 0)][t].float().norm()) == 0.0
    assert p64.log10_norms[t] == pytest.approx(np.log10(p64.norms[t]))
    t64 = p64.float32_underflow_at  # where a float32 copy of the gradient is all zero
    assert t64 is not None and p64.norms[t64] < 1e-44 and p64.norms[t64 + 1] > 0

    p32 = gradient_profile(copy.deepcopy(rnn).float(), x.float(), loss_fn, keep_grads=True)
    t32 = p32.float32_underflow_at
    assert t32 is not None and p32.norms[t32] == 0 and p32.log10_norms[t32] == -np.inf
    assert p32.grads is not None and torch.all(p32.grads[(0, 0)][t32] == 0)
    assert np.all(p32.norms[t32 + 1 :] > 0) and abs(t32 - t64) <= 3
    normal = p64.norms > 1e-30  # float32 agrees with float64 where float32 is well in range
    np.testing.assert_allclose(p32.norms[normal], p64.norms[normal], rtol=1e-3)
    json.dumps(p32.to_dict(), allow_nan=False)


def test_errors_name_the_argument() -> None:
    module = nn.GRU(IN, H)
    x = torch.randn(T, B, IN)
    with pytest.raises(
        ValueError, match="method='nope' is not allowed: choose one of auto, fused, unrolled"
    ):
        gradient_profile(module, x, lambda o: o[0].sum(), method="nope")
    with pytest.raises(ValueError, match="method='fused' is not exact for nn.GRU"):
        gradient_profile(module, x, lambda o: o[0].sum(), method="fused")
    with pytest.raises(ValueError, match="scalar"):
        gradient_profile(module, x, lambda o: o[0])
    with pytest.raises(ValueError, match="cannot probe Linear"):
        gradient_profile(nn.Linear(IN, 1), x, lambda o: o.sum())
    twice = nn.Sequential(module, nn.Identity())
    with pytest.raises(ValueError, match="more than once"):
        gradient_profile(twice, x, lambda o: module(x)[0].sum() + o[0].sum(), rnn=module)
    assert "forward" not in vars(module)


def test_profile_to_dict_is_json() -> None:
    torch.manual_seed(0)
    model = build("lstm", IN, H, 2, num_layers=2)
    prof = gradient_profile(
        model, torch.randn(B, T, IN), lambda o: o[0][:, -1].sum(), method="unrolled"
    )
    d = json.loads(json.dumps(prof.to_dict(), allow_nan=False))
    assert d["T"] == T and len(d["norms"]) == T + 1 and np.shape(d["per_layer"]) == (2, 1, T + 1)
    assert len(d["cell_norms"]) == T + 1 and d["method"] == "unrolled"


@settings(max_examples=24, deadline=None)
@given(arch=st.sampled_from(ARCHS), steps=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_last_entry_is_the_direct_gradient_at_the_readout(arch: str, steps: int, seed: int) -> None:
    """With the loss at step T, nothing downstream of h_T but the readout: dL/dh_T is direct."""
    torch.manual_seed(seed)
    model = build(arch, 2, 4, 1).double()
    x = torch.randn(2, steps, 2, dtype=torch.float64)

    def loss_fn(out: Any) -> Tensor:
        return out[0][:, -1].sum()

    prof = gradient_profile(copy.deepcopy(model), x, loss_fn)
    y, hs = model(x)
    (g,) = torch.autograd.grad(loss_fn((y, hs)), hs)
    assert prof.T == steps and prof.norms[steps] == pytest.approx(float(g[:, -1].norm()), rel=1e-10)


class UserStack(nn.Module):
    """Two nn.RNNCell layers in a ModuleList, called without hx on the first step."""

    def __init__(self) -> None:
        super().__init__()
        self.cells = nn.ModuleList([nn.RNNCell(IN, H), nn.RNNCell(H, H)])
        self.retained: list[list[Tensor]] | None = None

    def forward(self, x: Tensor) -> Tensor:  # (T, B, IN) -> (B, H)
        hs: list[Tensor | None] = [None, None]
        if self.retained is not None:  # the reference: zero leaves, retain_grad on every state
            hs = [x.new_zeros(x.shape[1], H).requires_grad_() for _ in range(2)]
            self.retained = [[h] for h in hs]
        for x_t in x:
            inp = x_t
            for i, cell in enumerate(self.cells):
                hs[i] = inp = cell(inp, hs[i])
                if self.retained is not None:
                    inp.retain_grad()
                    self.retained[i].append(inp)
        return inp


def test_user_cells_as_layers_without_initial_state() -> None:
    torch.manual_seed(0)
    model = UserStack().double()
    ref = copy.deepcopy(model)
    ref.retained = []
    x = torch.randn(T, B, IN, dtype=torch.float64)
    ref(x).tanh().sum().backward()
    prof = gradient_profile(model, x, lambda y: y.tanh().sum(), cell=model.cells, keep_grads=True)
    assert prof.per_layer.shape == (2, 1, T + 1) and ref.retained is not None
    for i, states in enumerate(ref.retained):
        assert prof.grads is not None
        assert_steps_close(prof.grads[(i, 0)], torch.stack([s.grad for s in states]), 1e-10)
