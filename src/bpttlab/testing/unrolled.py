"""Slow, independent twins of ``bpttlab.probe`` (tests and benchmarks only).

Each recurrence is written out step by step from the PyTorch documentation's equations (or the
paper's, for bpttlab's own cells) on detached copies of the weights, and every state calls
``retain_grad()``; the initial states are leaves. Results are indexed like a ``Profile``: entry
t = 1..T is the state at output position t, entry 0 the initial state, for either direction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

Key = tuple[int, int]  # (layer, direction)


@dataclass
class Reference:
    """``grads[(layer, d)]``: dL/dh (T+1, B, H); ``cell_grads`` likewise for LSTM's dL/dc;
    ``param_grads``: name -> grad of the copied weights; ``output``: what the model returned."""

    loss: float
    output: Any
    grads: dict[Key, Tensor]
    cell_grads: dict[Key, Tensor] | None
    param_grads: dict[str, Tensor | None]


def _act(name: str) -> Callable[[Tensor], Tensor]:
    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[name]


def _leaf(t: Tensor) -> Tensor:
    return t.detach().clone().requires_grad_()


def _collect(states: dict[Key, list[Tensor]]) -> dict[Key, Tensor]:
    """``states[key]`` lists [initial, position 1, ..., position T]."""
    return {
        k: torch.stack([s.grad if s.grad is not None else torch.zeros_like(s) for s in v])
        for k, v in states.items()
    }


def unrolled_rnn(
    module: nn.RNNBase, x: Tensor, loss_fn: Callable[[Any], Tensor], hx: Any = None
) -> Reference:
    """nn.RNN / nn.LSTM (with proj_size) / nn.GRU, any layers and directions, batched input."""
    mode, L = module.mode, module.num_layers
    D, H = 2 if module.bidirectional else 1, module.hidden_size
    P = getattr(module, "proj_size", 0) or H
    w = {n: _leaf(p) for n, p in module.named_parameters()}
    xt = x.transpose(0, 1) if module.batch_first else x  # (T, B, I)
    T, B, _ = xt.shape
    lstm = mode == "LSTM"
    h0: Tensor
    c0: Any
    if hx is None:
        h0, c0 = xt.new_zeros(L * D, B, P), xt.new_zeros(L * D, B, H)
    else:
        h0, c0 = hx if lstm else (hx, None)
    hs: dict[Key, list[Tensor]] = {}
    cs: dict[Key, list[Any]] = {}
    inp, hn, cn = xt, [], []
    for layer in range(L):
        outs = []
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d else "")
            W_ih, W_hh = w["weight_ih" + s], w["weight_hh" + s]
            b_ih = w.get("bias_ih" + s, torch.zeros(W_ih.shape[0], dtype=x.dtype))
            b_hh = w.get("bias_hh" + s, torch.zeros(W_ih.shape[0], dtype=x.dtype))
            h = _leaf(h0[layer * D + d])
            c: Any = _leaf(c0[layer * D + d]) if lstm else None
            seq_h, seq_c = [h], [c]
            for t in range(T) if d == 0 else range(T - 1, -1, -1):
                a = inp[t] @ W_ih.T + b_ih  # (B, G)
                r = h @ W_hh.T + b_hh  # (B, G)
                if mode in ("RNN_TANH", "RNN_RELU"):
                    h = _act("tanh" if mode == "RNN_TANH" else "relu")(a + r)
                elif mode == "GRU":
                    (a_r, a_z, a_n), (r_r, r_z, r_n) = a.chunk(3, 1), r.chunk(3, 1)
                    rg, z = torch.sigmoid(a_r + r_r), torch.sigmoid(a_z + r_z)
                    n = torch.tanh(a_n + rg * r_n)
                    h = (1 - z) * n + z * h
                else:
                    i, f, g, o = (a + r).chunk(4, 1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    c.retain_grad()
                    seq_c.append(c)
                    h = torch.sigmoid(o) * torch.tanh(c)
                    if "weight_hr" + s in w:
                        h = h @ w["weight_hr" + s].T
                h.retain_grad()
                seq_h.append(h)
            if d == 1:  # into time order: [initial, position 1, ..., T]
                seq_h = [seq_h[0], *seq_h[:0:-1]]
                seq_c = [seq_c[0], *seq_c[:0:-1]]
            hs[(layer, d)], cs[(layer, d)] = seq_h, seq_c
            outs.append(torch.stack(seq_h[1:]))  # (T, B, P)
            hn.append(h)
            cn.append(c)
        inp = torch.cat(outs, -1)  # (T, B, D*P)
    out = inp.transpose(0, 1) if module.batch_first else inp
    output = (out, (torch.stack(hn), torch.stack(cn))) if lstm else (out, torch.stack(hn))
    loss = loss_fn(output)
    loss.backward()
    return Reference(
        loss=float(loss.detach()),
        output=output,
        grads=_collect(hs),
        cell_grads=_collect(cs) if lstm else None,
        param_grads={n: p.grad for n, p in w.items()},
    )


def _modrelu(z: Tensor, b: Tensor) -> Tensor:
    return torch.sign(z) * torch.relu(z.abs() + b)


def unrolled_model(
    model: nn.Module, x: Tensor, loss_fn: Callable[[Any], Tensor], h0: Any = None
) -> Reference:
    """Any bpttlab model; ``loss_fn`` gets ``(y, hs)``. Works on a deep copy of ``model``."""
    m: Any = copy.deepcopy(model)
    if isinstance(m.core, nn.RNNBase):
        ref = unrolled_rnn(m.core, x, lambda out: loss_fn((m.head(out[0], x), out[0])), h0)
        ref.param_grads = {f"core.{n}": g for n, g in ref.param_grads.items()}
        ref.param_grads.update({f"head.{n}": p.grad for n, p in m.head.named_parameters()})
        return ref
    core, k = m.core, m.core.skip
    L, D, S = core.num_layers, core.num_directions, core.state_size
    B, T, _ = x.shape
    h0 = x.new_zeros(L * D, B, S) if h0 is None else h0
    states: dict[Key, list[Tensor]] = {}
    inp = x  # (B, T, I)
    for layer in range(L):
        outs = []
        for d in range(D):
            cell: Any = core.cells[layer * D + d]
            h = _leaf(h0[layer * D + d])
            seq = [h]  # processing order
            if m.name == "lru":  # complex recurrence, Orvieto et al. 2023 eq. 7
                N = cell.hidden_size
                lam = torch.exp(torch.complex(-torch.exp(cell.nu_log), torch.exp(cell.theta_log)))
                Bc = torch.complex(cell.B_re, cell.B_im) * torch.exp(cell.gamma_log)[:, None]
                for t in range(T):
                    hc = lam * torch.complex(h[:, :N], h[:, N:]) + inp[:, t].to(Bc.dtype) @ Bc.T
                    h = torch.cat([hc.real, hc.imag], -1)  # (B, 2N): [Re h_t, Im h_t]
                    h.retain_grad()
                    seq.append(h)
            else:  # Elman: h_t = f(W_hh h_{t-1} + W_xh x_t + b) + h_{t-k}
                W_hh, W_xh, b = cell.W_hh.weight, cell.W_xh.weight, cell.W_xh.bias
                f = (
                    (lambda z, c=cell: _modrelu(z, c.f.bias))
                    if cell.activation == "modrelu"
                    else _act(cell.activation)
                )
                for i, t in enumerate(range(T) if d == 0 else range(T - 1, -1, -1), start=1):
                    h = f(seq[-1] @ W_hh.T + inp[:, t] @ W_xh.T + b)
                    if k and i > k:
                        h = h + seq[i - k]
                    h.retain_grad()
                    seq.append(h)
            states[(layer, d)] = seq if d == 0 else [seq[0], *seq[:0:-1]]
            outs.append(torch.stack(states[(layer, d)][1:], 1))  # (B, T, S)
        inp = torch.cat(outs, -1)  # (B, T, D*S)
    output = (m.head(inp, x), inp)
    loss = loss_fn(output)
    loss.backward()
    return Reference(
        loss=float(loss.detach()),
        output=output,
        grads=_collect(states),
        cell_grads=None,
        param_grads={n: p.grad for n, p in m.named_parameters()},
    )


def rtol_for(dtype: torch.dtype) -> float:
    """The tolerance every probe test uses: 1e-10 in float64, 1e-4 in float32."""
    return 1e-10 if dtype == torch.float64 else 1e-4


def assert_steps_close(actual: Tensor, expected: Tensor, rtol: float) -> None:
    """Per step t (first axis): ``||a_t - e_t|| <= rtol * max(||e_t||, tiny)``, all in float64."""
    a, e = actual.detach().double().flatten(1), expected.detach().double().flatten(1)
    assert a.shape == e.shape, (a.shape, e.shape)
    err, scale = (a - e).norm(dim=1), e.norm(dim=1).clamp_min(1e-300)
    worst = int((err / scale).argmax())
    assert bool((err <= rtol * scale).all()), (
        f"step {worst}: relative error {float(err[worst] / scale[worst]):.3g} > {rtol:g}"
    )
