"""monitor.GradientFlowMonitor in a user's loop, and the replay probe it relies on.

The replay path (probe.py, method="replay") is checked against the slow unrolled retain_grad()
twin like the other paths in test_probe.py; the monitor against an unmonitored run of the same
loop (bitwise), against gradient_profile of the same step, and for hooks left behind.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from bpttlab.cells import CellStack
from bpttlab.models import build
from bpttlab.monitor import GradientFlowMonitor, thin
from bpttlab.probe import find_recurrent, gradient_profile
from bpttlab.store import Store
from bpttlab.testing.unrolled import assert_steps_close, rtol_for, unrolled_model, unrolled_rnn

T, B, IN, H = 6, 3, 4, 5
KINDS: dict[str, tuple[type[nn.RNNBase], dict[str, Any]]] = {
    "rnn_tanh": (nn.RNN, {}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, {}),
    "gru": (nn.GRU, {}),
}


def _weighted_loss(seed: int) -> Callable[[Any], Tensor]:
    """Every output entry weighted differently, plus h_n (and c_n): all paths carry gradient."""

    def loss_fn(out: Any) -> Tensor:
        seq, rest = out
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(seq.shape, generator=g, dtype=torch.float64).to(seq)
        tail = sum(r.sum() for r in rest) if isinstance(rest, tuple) else rest.sum()
        return (seq * w).sum() + 0.5 * tail

    return loss_fn


# ---------------------------------------------------------------- the replay path
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", list(KINDS))
def test_replay_matches_unrolled_reference_and_leaves_grads_bitwise(
    kind: str, layers: int, bidir: bool, batch_first: bool, dtype: torch.dtype
) -> None:
    torch.manual_seed(0)
    cls, opts = KINDS[kind]
    module = cls(IN, H, num_layers=layers, bidirectional=bidir, batch_first=batch_first, **opts)
    module = module.to(dtype)
    x = torch.randn((B, T, IN) if batch_first else (T, B, IN), dtype=dtype)
    loss_fn = _weighted_loss(1)
    ref = unrolled_rnn(copy.deepcopy(module), x, loss_fn)
    plain = copy.deepcopy(module)
    loss_fn(plain(x)).backward()
    probed = copy.deepcopy(module)
    prof = gradient_profile(probed, x, loss_fn, method="replay", keep_grads=True)
    assert prof.method == "replay" and prof.grads is not None
    rtol = rtol_for(dtype)
    for key, g in ref.grads.items():
        assert_steps_close(prof.grads[key], g, rtol)
    if kind == "lstm":  # the replay rebuilds c_t, so it gives dL/dc_t too
        assert ref.cell_grads is not None and prof.cell_per_layer is not None
        for key, c in ref.cell_grads.items():
            norms = c.double().flatten(1).norm(dim=1).numpy()
            np.testing.assert_allclose(prof.cell_per_layer[key], norms, rtol=rtol)
    for (name, p), q in zip(probed.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), name  # the kernel ran untouched


@pytest.mark.parametrize("kw", [{"proj_size": 3}, {"bias": False}])
def test_replay_lstm_projection_and_no_bias(kw: dict[str, Any]) -> None:
    torch.manual_seed(0)
    module = nn.LSTM(IN, H, num_layers=2, bidirectional=True, batch_first=True, **kw).double()
    x = torch.randn(B, T, IN, dtype=torch.float64)
    loss_fn = _weighted_loss(2)
    ref = unrolled_rnn(copy.deepcopy(module), x, loss_fn)
    prof = gradient_profile(copy.deepcopy(module), x, loss_fn, method="replay", keep_grads=True)
    assert prof.grads is not None
    for key, g in ref.grads.items():
        assert_steps_close(prof.grads[key], g, 1e-10)


def test_replay_with_dropout_between_layers_is_bitwise_the_training_step() -> None:
    """The layer-by-layer kernel calls draw the same dropout masks as the module's own call."""
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        torch.manual_seed(0)
        module = cls(IN, H, num_layers=3, dropout=0.4, bidirectional=True)
        x = torch.randn(T, B, IN)
        loss_fn = _weighted_loss(3)
        plain, probed = copy.deepcopy(module), copy.deepcopy(module)
        torch.manual_seed(5)
        loss = loss_fn(plain(x))
        loss.backward()
        torch.manual_seed(5)
        prof = gradient_profile(probed, x, loss_fn, method="replay")
        assert prof.loss == loss.item()
        for p, q in zip(probed.parameters(), plain.parameters(), strict=True):
            assert torch.equal(p.grad, q.grad)


# ---------------------------------------------------------------- models for the loop
class Tagger(nn.Module):
    """A user's model: a linear embedding, an nn.RNN/LSTM/GRU inside, a head on the last step."""

    def __init__(self, cls: type[nn.RNNBase] = nn.LSTM, fail: bool = False) -> None:
        super().__init__()
        self.embed = nn.Linear(IN, 8)
        self.encoder = cls(8, 16, num_layers=2, batch_first=True, dropout=0.25)
        self.head = nn.Linear(16, 2)
        self.fail = fail

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.encoder(torch.tanh(self.embed(x)))  # (B, T, 16)
        if self.fail:  # captum's test mode: raise inside forward, after the probed module ran
            raise RuntimeError("boom in forward")
        return self.head(out[:, -1])  # (B, 2)


class GatedCellModel(nn.Module):
    """A user's own cell, called once per step (as examples/my_model.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(IN, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = x.new_zeros(x.shape[0], 8)
        for x_t in x.unbind(1):
            h = self.cell(x_t, h)
        return self.head(h)


def _make(which: str) -> tuple[nn.Module, dict[str, Any], Callable[[nn.Module, Tensor], Tensor]]:
    """(model, monitor keywords, forward returning the logits at the last step)."""
    torch.manual_seed(0)
    if which in ("lstm-inside", "gru-named"):
        model: nn.Module = Tagger(nn.LSTM if which == "lstm-inside" else nn.GRU)
        kw = {} if which == "lstm-inside" else {"rnn": model.encoder}  # type: ignore[union-attr]
        return model, kw, lambda m, x: m(x)
    if which == "user-cell":
        model = GatedCellModel()
        return model, {"cell": model.cell}, lambda m, x: m(x)
    model = build({"bpttlab-lstm": "lstm", "bpttlab-lru": "lru"}[which], IN, 16, 2)
    return model, {}, lambda m, x: m(x)[0][:, -1]


def _batches(n: int, length: int = 12) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(B, length, IN, generator=g), torch.randint(0, 2, (B,), generator=g))
            for _ in range(n)]  # fmt: skip


def _train(model: nn.Module, fwd: Any, monitor: GradientFlowMonitor | None,
           steps: int = 4) -> list[dict[str, Tensor]]:  # fmt: skip
    """The user's loop; returns every step's parameter gradients."""
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    grads = []
    for step, (x, y) in enumerate(_batches(steps)):
        torch.manual_seed(100 + step)  # dropout masks: the same draws in both runs
        ctx = monitor.step(step) if monitor is not None else _nothing()
        with ctx:
            loss = nn.functional.cross_entropy(fwd(model, x), y)
            loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        opt.step()
        opt.zero_grad()
    return grads


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


WHICH = ["lstm-inside", "gru-named", "user-cell", "bpttlab-lstm", "bpttlab-lru"]


@pytest.mark.parametrize("which", WHICH)
def test_monitored_training_is_bitwise_the_unmonitored_one(which: str) -> None:
    model, kw, fwd = _make(which)
    twin = copy.deepcopy(model)
    mon = GradientFlowMonitor(model, every=1, **kw)
    monitored = _train(model, fwd, mon)
    plain = _train(twin, fwd, None)
    for step, (a, b) in enumerate(zip(monitored, plain, strict=True)):
        for name in a:
            assert torch.equal(a[name], b[name]), (step, name)
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert [r["step"] for r in mon.records] == [0, 1, 2, 3]
    expected = "cell-hook" if which in ("user-cell", "bpttlab-lru") else "replay"
    assert {r["method"] for r in mon.records} == {expected}


@pytest.mark.parametrize("which", WHICH)
def test_records_equal_the_profile_of_the_same_step(which: str) -> None:
    """Step 2's record, against an unrolled retain_grad() reference on the model as it was."""
    model, kw, fwd = _make(which)
    mon = GradientFlowMonitor(model, every=2, **kw)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step, (x, y) in enumerate(_batches(3)):
        if step == 2:
            before = copy.deepcopy(model).eval()  # eval: no dropout, for both
            model.eval()
        with mon.step(step):
            loss = nn.functional.cross_entropy(fwd(model, x), y)
            loss.backward()
        opt.step()
        opt.zero_grad()
    rec = mon.records[-1]
    assert rec["step"] == 2 and rec["T"] == 12 and rec["t"] == list(range(13))

    def loss_of(out: Any) -> Tensor:
        return nn.functional.cross_entropy(out if isinstance(out, Tensor) else out[0][:, -1], y)

    if which.startswith("bpttlab"):
        top = unrolled_model(before, x, loss_of).grads[(0, 0)]
    elif which == "user-cell":  # retain_grad() on every state of the user's own loop
        cell = before.cell  # type: ignore[union-attr]
        states = [x.new_zeros(B, 8).requires_grad_()]
        for x_t in x.unbind(1):
            states.append(cell(x_t, states[-1]))
            states[-1].retain_grad()
        loss_of(before.head(states[-1])).backward()  # type: ignore[operator]
        top = torch.stack([s.grad for s in states])  # type: ignore[misc]
    else:
        inner = torch.tanh(before.embed(x))  # type: ignore[operator]
        head = before.head  # type: ignore[union-attr]
        enc = before.encoder  # type: ignore[union-attr]
        top = unrolled_rnn(enc, inner, lambda o: loss_of(head(o[0][:, -1]))).grads[(1, 0)]
    norms = top.double().flatten(1).norm(dim=1).numpy()
    np.testing.assert_allclose(rec["norms"], norms, rtol=1e-5)
    assert math.isclose(rec["ratio"], rec["norms"][0] / rec["norms"][-1], rel_tol=1e-12)
    assert rec["verdict"] in ("vanishing", "healthy", "exploding")


# ---------------------------------------------------------------- nothing left behind
def _hooks(model: nn.Module) -> list[tuple[int, int, bool]]:
    return [(len(m._forward_hooks), len(m._forward_pre_hooks), "forward" in vars(m))
            for m in model.modules()]  # fmt: skip


@pytest.mark.parametrize("which", WHICH)
def test_hooks_only_on_due_steps_and_removed_after_success_or_exception(which: str) -> None:
    model, kw, fwd = _make(which)
    clean = _hooks(model)
    mon = GradientFlowMonitor(model, every=2, **kw)
    x, y = _batches(1)[0]
    for step in range(4):
        with mon.step(step):
            attached = _hooks(model) != clean
            assert attached == (step % 2 == 0)  # odd steps: nothing attached at all
            nn.functional.cross_entropy(fwd(model, x), y).backward()
        assert _hooks(model) == clean
    for where in ("loss", "backward"):
        with pytest.raises(RuntimeError, match="boom"), mon.step(4):
            out = fwd(model, x)
            if where == "loss":
                raise RuntimeError("boom in loss")
            out.sum().backward()
            raise RuntimeError("boom after backward")
        assert _hooks(model) == clean
    assert [r["step"] for r in mon.records] == [0, 2]
    with mon.step(6):  # the monitor works on after a failed step
        nn.functional.cross_entropy(fwd(model, x), y).backward()
    assert mon.records[-1]["step"] == 6 and _hooks(model) == clean


def test_exception_inside_forward_removes_the_patch() -> None:
    torch.manual_seed(0)
    model = Tagger(fail=True)
    clean = _hooks(model)
    mon = GradientFlowMonitor(model, every=1)
    x, _ = _batches(1)[0]
    with pytest.raises(RuntimeError, match="boom in forward"), mon.step(0):
        model(x)
    assert _hooks(model) == clean and mon.records == []
    model.fail = False
    assert model(x).shape == (B, 2)


# ---------------------------------------------------------------- records, store, sinks
def test_long_sequences_are_thinned_with_their_indices() -> None:
    torch.manual_seed(0)
    rnn = nn.RNN(IN, 8).double()
    x = torch.randn(300, 2, IN, dtype=torch.float64)
    mon = GradientFlowMonitor(rnn, every=1, max_points=50)
    with mon.step(0):
        rnn(x)[0][-1].sum().backward()
    rec = mon.records[0]
    full = gradient_profile(copy.deepcopy(rnn), x, lambda o: o[0][-1].sum(), method="unrolled")
    t = rec["t"]
    assert len(t) <= 50 and t[0] == 0 and t[-1] == 300 and t == sorted(set(t))
    np.testing.assert_allclose(rec["norms"], full.norms[t], rtol=1e-10)
    assert thin(10, 50).tolist() == list(range(11))


def test_store_holds_one_run_with_metrics_and_profiles(tmp_path: Any) -> None:
    model, kw, fwd = _make("lstm-inside")
    seen: list[dict[str, Any]] = []

    class Sink:
        closed = False

        def write(self, record: dict[str, Any]) -> None:
            seen.append(record)

        def close(self) -> None:
            Sink.closed = True

    db = tmp_path / "runs.db"
    with GradientFlowMonitor(model, every=2, store=db, sink=[Sink(), seen.append], **kw) as mon:
        _train(model, fwd, mon, steps=5)
        with Store(db) as store:
            (run,) = store.runs("monitor")
            assert run.status == "running" and len(run.result["records"]) == 3
    assert Sink.closed and seen == [r for r in mon.records for _ in (1, 2)]  # both sinks, each
    with Store(db) as store:
        (run,) = store.runs("monitor")
        assert run.status == "done" and run.config["every"] == 2
        metrics, profiles = store.metrics(run), store.profiles(run)
    assert sorted(profiles) == [0, 2, 4]
    for rec in mon.records:
        assert profiles[rec["step"]] == rec["norms"]
        assert dict(metrics["ratio"])[rec["step"]] == rec["ratio"]
        assert dict(metrics["rate"])[rec["step"]] == rec["rate"]
    assert [r["verdict"] for r in run.result["records"]] == [r["verdict"] for r in mon.records]


def test_errors_name_what_to_do() -> None:
    model, kw, fwd = _make("lstm-inside")
    mon = GradientFlowMonitor(model, every=1)
    with pytest.raises(ValueError, match="no gradient reached the probes"), mon.step(0):
        fwd(model, _batches(1)[0][0])
    assert _hooks(model) == _hooks(copy.deepcopy(model))
    mon.start(1)
    with pytest.raises(ValueError, match="never finished"):
        mon.start(2)
    mon.cancel()
    two = nn.ModuleDict({"a": nn.LSTM(2, 3), "b": nn.GRU(2, 3)})
    with pytest.raises(ValueError, match="rnn=<its nn.RNN/LSTM/GRU>"):
        GradientFlowMonitor(two)
    with pytest.raises(ValueError, match="every=0 is not allowed"):
        GradientFlowMonitor(model, every=0)
    with pytest.raises(ValueError, match="sink=.*write"):
        GradientFlowMonitor(model, sink=3)
    mon.close()
    with pytest.raises(ValueError, match="closed"):
        mon.start(3)


def test_find_recurrent() -> None:
    lru = build("lru", IN, 8, 2)
    assert find_recurrent(lru) == {} and isinstance(lru.core, CellStack)
    wrapped = nn.Sequential(nn.Linear(IN, IN), lru)
    assert find_recurrent(wrapped) == {"rnn": lru.core}
    assert find_recurrent(GatedCellModel())["cell"].__class__ is nn.GRUCell
    mon = GradientFlowMonitor(wrapped, every=1)  # a bpttlab cell model inside a larger module
    x = torch.randn(B, T, IN)
    with mon.step(0):
        wrapped(x)[0][:, -1].sum().backward()
    direct = gradient_profile(copy.deepcopy(lru), wrapped[0](x).detach(),
                              lambda o: o[0][:, -1].sum())  # fmt: skip
    assert mon.records[0]["method"] == "cell-hook"
    np.testing.assert_allclose(mon.records[0]["norms"], direct.norms, rtol=1e-5)
