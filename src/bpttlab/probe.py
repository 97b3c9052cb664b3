"""Per-step gradient norms ``||dL/dh_t||``, t = 0..T, through fused kernels and custom cells.

Indexing (DESIGN.md): ``h_0`` is the initial state, ``h_t`` the state after input ``x_t``; a
profile has T+1 entries and ``||.||`` is the Frobenius norm over (batch, hidden) of ``dL/dh_t``,
what ``h0.grad.norm()`` prints. A reverse direction is indexed by time as well: its entry t
(t = 1..T) is the state whose last input was ``x_t`` (its output at position t) and its entry 0
is its initial state (fed before ``x_T``), so both directions line up with the output sequence.

Methods, chosen by ``method="auto"`` per architecture (CPU costs: benchmarks/bench_probe.py):

- ``fused`` (``nn.RNN``, ``nn.LSTM``; CPU and CUDA): the fused kernel is fed ``[x_t, p_t]`` with
  a zero probe ``p_t`` and the input weight extended by a detached copy of ``W_hh``, so it
  computes ``z_t = W_ih x_t + W_hh (h_{t-1} + p_t) + b``, the same numbers as before.
  ``p.grad[t]`` is the recurrent part of ``dL/dh_{t-1}``; adding the direct part (the retained
  grads of the layer's output and of ``h_n``) gives the total. One kernel call per layer (each
  layer has its own probe); the cost is a wider input GEMM and the kernel's input gradient. An
  LSTM's ``c_t`` stays inside the kernel: ``cell_norms`` is None.
- ``unrolled`` (``nn.GRU`` always; RNN and LSTM on request): one step at a time, ``h_t + p_t``;
  ``torch._VF.rnn_*_cell``/``gru_cell`` per step, and for LSTM an explicit step with a probe on
  ``c_t`` before ``h_t = o_t tanh(c_t)``, so it also gives ``dL/dc_t``. GRU cannot use the
  fused trick: with ``a_n = W_in x + b_in + r_t * (W_hn h_{t-1} + b_hn)`` and
  ``h_t = (1 - z_t) n_t + z_t h_{t-1}``, the true ``dL/dh_{t-1}`` is
  ``W_hr^T da_r + W_hz^T da_z + W_hn^T (r_t * da_n) + z_t * dL/dh_t``, while an input-side
  probe reads ``W_hr^T da_r + W_hz^T da_z + W_hn^T da_n``: r_t is on the wrong side and the
  ``z_t h_{t-1}`` path is missed. On CPU ``nn.GRU`` runs the same per-step ops as this loop
  (only LSTM goes to oneDNN), so the loop costs about the same; on CUDA it is slower than cuDNN.
- ``cell-hook`` (bpttlab cell models; ``cell=`` for a user's module): a forward hook adds a zero
  probe to the cell's output at each call (``dL/dp_t = dL/dh_t`` exactly) and a pre-hook adds
  one to the state passed to the first call (``h_0``). ``nn.LSTMCell`` also gives ``dL/dc_t``
  (see ``_CellProbe``); other cells returning tuples give ``dL/dh_t`` of the first entry only.

Between layers, dropout (training mode, ``dropout > 0``) is applied with ``F.dropout``: the same
distribution as the kernel's, a different random mask. PackedSequence input is not supported.

The loss is backpropagated once: every parameter's ``.grad`` is what ``loss.backward()`` would
have given (accumulated onto any existing ``.grad``, as ``backward`` does). Norms are taken in
float64 (float64 rows under 1e-150 rescaled by their largest entry first), so they never
underflow. Hooks and patches are removed on success and on any exception.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from bpttlab.models import CellStack, check_choice

__all__ = ["METHODS", "Profile", "gradient_profile"]

METHODS = ("auto", "fused", "unrolled")
_Grads = dict[tuple[int, int], Tensor]
_Pairs = dict[tuple[int, int], tuple[Tensor, Tensor | None]]  # (dL/dh, dL/dc or None)


@dataclass
class Profile:
    """Gradient norms through time. Shapes: T+1 steps, L layers, D directions.

    Attributes:
        norms: (T+1,) float64, ``||dL/dh_t||`` of the top layer, directions combined
            (``sqrt(sum_d ||.||^2)``, the norm over the concatenated output).
        log10_norms: (T+1,) ``log10(norms)``; ``-inf`` where the gradient is exactly zero.
        per_layer: (L, D, T+1) float64, per layer and direction.
        loss: the loss value.
        float32_underflow_at: the largest t at which the top layer's gradient, cast to float32
            (the identity for a float32 run), is zero in every entry although it is non-zero at
            some later step: from there back, float32 carries no gradient at all (entries below
            ~7e-46 round to 0; below 1.2e-38 they are already subnormal). None if never.
        cell_norms: (T+1,) ``||dL/dc_t||`` of an LSTM (unrolled or cell-hook), else None.
        cell_per_layer: (L, D, T+1), or None.
        method: "fused", "unrolled" or "cell-hook".
        dtype: dtype of the gradients, e.g. "float32".
        grads: with ``keep_grads=True``, ``{(layer, direction): dL/dh (T+1, B, H)}``.
    """

    norms: np.ndarray
    log10_norms: np.ndarray
    per_layer: np.ndarray
    loss: float
    float32_underflow_at: int | None
    cell_norms: np.ndarray | None = None
    cell_per_layer: np.ndarray | None = None
    method: str = ""
    dtype: str = ""
    grads: _Grads | None = field(default=None, repr=False, compare=False)

    @property
    def T(self) -> int:
        return len(self.norms) - 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: arrays as nested lists, -inf/nan as None; ``grads`` left out."""
        arrays = ("norms", "log10_norms", "per_layer", "cell_norms", "cell_per_layer")
        return {
            "T": self.T,
            "loss": self.loss,
            "method": self.method,
            "dtype": self.dtype,
            "float32_underflow_at": self.float32_underflow_at,
            **{k: _jsonable(getattr(self, k)) for k in arrays},
        }


def _jsonable(a: np.ndarray | None) -> Any:
    if a is None:
        return None
    if a.ndim > 1:
        return [_jsonable(row) for row in a]
    return [float(v) if np.isfinite(v) else None for v in a]


# ---------------------------------------------------------------- helpers
def _probe(state: Tensor) -> tuple[Tensor, Tensor]:
    """``state + p`` with a zero leaf ``p``: ``dL/dp = dL/d(state)``."""
    p = torch.zeros_like(state, requires_grad=True)
    return state + p, p


def _grad(t: Tensor) -> Tensor:
    return t.grad if t.grad is not None else torch.zeros_like(t)


def _weights(m: nn.RNNBase, layer: int, d: int) -> dict[str, Tensor | None]:
    """w_ih (G, I), w_hh (G, Hout), b_ih, b_hh (G,), w_hr (Hout, H) of one layer and direction."""
    sfx = f"_l{layer}" + ("_reverse" if d else "")
    get = functools.partial(getattr, m)
    return {
        "w_ih": get("weight_ih" + sfx),
        "w_hh": get("weight_hh" + sfx),
        "b_ih": get("bias_ih" + sfx) if m.bias else None,
        "b_hh": get("bias_hh" + sfx) if m.bias else None,
        "w_hr": get("weight_hr" + sfx) if getattr(m, "proj_size", 0) else None,
    }


def _lstm_step(
    gi_t: Tensor, h: Tensor, c: Tensor, pc_t: Tensor, w: dict[str, Tensor | None]
) -> tuple[Tensor, Tensor]:
    """One LSTM step from precomputed ``gi_t = W_ih x_t + b_ih`` (B, 4H), with the probe ``pc_t``
    added to c_t before ``h_t = o_t * tanh(c_t)``, so that it sees both of c_t's uses."""
    gates = gi_t + F.linear(h, w["w_hh"], w["b_hh"])  # (B, 4H), PyTorch's order i, f, g, o
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g) + pc_t  # (B, H)
    h = torch.sigmoid(o) * torch.tanh(c)  # (B, H)
    return (F.linear(h, w["w_hr"]) if w["w_hr"] is not None else h), c  # (B, Hout), (B, H)


# ---------------------------------------------------------------- fused modules
class _FusedProbe:
    """Stands in for ``module.forward`` during one call; records the probes of every layer."""

    def __init__(self, module: nn.RNNBase, method: str) -> None:
        mode = module.mode
        if method == "auto":
            method = "unrolled" if mode == "GRU" else "fused"
        if method == "fused" and mode == "GRU":
            raise ValueError(
                "method='fused' is not exact for nn.GRU (r_t multiplies W_hn h_{t-1} inside the "
                "kernel); use method='unrolled' or 'auto'"
            )
        self.module, self.method, self.calls = module, method, 0
        self.L, self.D = module.num_layers, 2 if module.bidirectional else 1
        self.slots: dict[tuple[int, int], Callable[[], tuple[Tensor, Tensor | None]]] = {}

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        m, lstm = self.module, self.module.mode == "LSTM"
        self.calls += 1
        if self.calls > 1:
            raise ValueError("the probed nn.RNN/LSTM/GRU was called more than once per forward")
        if isinstance(input, PackedSequence):
            raise ValueError("PackedSequence input is not supported; pad the batch instead")
        batched = input.dim() == 3
        x = input.transpose(0, 1) if batched and m.batch_first else input  # (T, B, I) time-major
        x = x if batched else x.unsqueeze(1)  # unbatched (T, I) -> (T, 1, I)
        T, B, _ = x.shape
        L, D, H = self.L, self.D, m.hidden_size
        Hout = getattr(m, "proj_size", 0) or H
        h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (None, None)
        if h0 is None:
            h0 = x.new_zeros(L * D, B, Hout)  # (L*D, B, Hout)
            c0 = x.new_zeros(L * D, B, H) if lstm else None
        elif not batched:
            h0, c0 = h0.unsqueeze(1), (c0.unsqueeze(1) if c0 is not None else None)
        run = self._fused_layer if self.method == "fused" else self._unrolled_layer
        inp, hn, cn = x, [], []
        for layer in range(L):
            s = slice(layer * D, (layer + 1) * D)
            out, h_l, c_l = run(layer, inp, h0[s], c0[s] if c0 is not None else None)
            hn.append(h_l)
            cn.append(c_l)
            inp = out  # (T, B, D*Hout)
            if layer < L - 1 and m.dropout > 0 and m.training:
                inp = F.dropout(out, m.dropout, training=True)
        h_n = torch.cat(hn)  # (L*D, B, Hout)
        c_n = torch.cat(cn) if lstm else None  # (L*D, B, H)
        out = inp.transpose(0, 1) if batched and m.batch_first else inp
        if not batched:
            out, h_n = out.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return (out, (h_n, c_n)) if lstm else (out, h_n)

    def _fused_layer(self, layer: int, inp: Tensor, h0: Tensor, c0: Tensor | None) -> tuple:
        """One kernel call for both directions on ``[x, p_fwd, p_rev]``; W_ext zero-padded."""
        m, D = self.module, self.D
        T, B, _ = inp.shape
        Hout = h0.shape[-1]
        P = inp.new_zeros(T, B, D * Hout, requires_grad=True)  # zero probes, all steps
        flat: list[Tensor] = []
        for d in range(D):
            w = _weights(m, layer, d)
            W_hh = w["w_hh"]
            probe_cols = [W_hh.detach() if e == d else W_hh.new_zeros(W_hh.shape) for e in range(D)]
            W_ext = torch.cat([w["w_ih"], *probe_cols], dim=1)  # (G, I + D*Hout)
            flat += [W_ext, W_hh] + [w[k] for k in ("b_ih", "b_hh", "w_hr") if w[k] is not None]
        xin = torch.cat([inp, P], dim=-1)  # (T, B, I + D*Hout)
        args = (m.bias, 1, 0.0, m.training, D == 2, False)
        c_n = None
        with warnings.catch_warnings():  # cuDNN copies the un-flattened weights once; expected
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
            if m.mode == "LSTM":
                out, h_n, c_n = _VF.lstm(xin, (h0, c0), flat, *args)
            else:
                fn = _VF.rnn_tanh if m.mode == "RNN_TANH" else _VF.rnn_relu
                out, h_n = fn(xin, h0, flat, *args)  # (T, B, D*Hout), (D, B, Hout)
        out.retain_grad()
        h_n.retain_grad()
        for d in range(D):
            self.slots[(layer, d)] = functools.partial(self._assemble_fused, P, out, h_n, d)
        return out, h_n, c_n

    @staticmethod
    def _assemble_fused(P: Tensor, out: Tensor, h_n: Tensor, d: int) -> tuple[Tensor, None]:
        Hout = h_n.shape[-1]
        s = slice(d * Hout, (d + 1) * Hout)
        p_grad = _grad(P)[..., s]  # (T, B, Hout): W_hh^T dL/dz_t, recurrent part of dL/dh_{t-1}
        direct = _grad(out)[..., s]  # (T, B, Hout): dL/dout_t, the rest of dL/dh_t
        G = torch.empty((P.shape[0] + 1, *p_grad.shape[1:]), dtype=P.dtype, device=P.device)
        if d == 0:  # the step at x_t reads h_{t-1}: p_grad[t-1] belongs to position t-1
            G[0] = p_grad[0]
            torch.add(direct[:-1], p_grad[1:], out=G[1:-1])
            torch.add(direct[-1], _grad(h_n)[d], out=G[-1])
        else:  # reverse: the step at x_t reads position t+1, or the initial state at t = T
            G[0] = p_grad[-1]
            torch.add(direct[0], _grad(h_n)[d], out=G[1])
            torch.add(direct[1:], p_grad[:-1], out=G[2:])
        return G, None  # (T+1, B, Hout)

    def _unrolled_layer(self, layer: int, inp: Tensor, h0: Tensor, c0: Tensor | None) -> tuple:
        """One ``torch._VF`` cell call per step; ``h_t + p_t`` with ``p`` (T+1, B, H) zero."""
        m, lstm = self.module, self.module.mode == "LSTM"
        cell = {"RNN_TANH": _VF.rnn_tanh_cell, "RNN_RELU": _VF.rnn_relu_cell, "GRU": _VF.gru_cell}
        xs = inp.unbind(0)  # T x (B, I); unbind keeps the backward O(T)
        T, B = len(xs), inp.shape[1]
        outs, hn, cn = [], [], []
        for d in range(self.D):
            w = _weights(m, layer, d)
            Ph = inp.new_zeros(T + 1, B, h0.shape[-1], requires_grad=True)  # on h, per call
            Pc = inp.new_zeros(T + 1, B, c0.shape[-1], requires_grad=True) if lstm else None
            ph = Ph.unbind(0)
            h, c = h0[d] + ph[0], (c0[d] + Pc[0] if Pc is not None else None)
            if lstm:  # input projection of all steps at once
                gi = F.linear(inp, w["w_ih"], w["b_ih"]).unbind(0)  # T x (B, 4H)
                pc = Pc.unbind(0)  # type: ignore[union-attr]
            seq = []
            for i, t in enumerate(range(T) if d == 0 else range(T - 1, -1, -1), start=1):
                if lstm:
                    h, c = _lstm_step(gi[t], h, c, pc[i], w)
                else:
                    h = cell[m.mode](xs[t], h, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"])
                h = h + ph[i]
                seq.append(h)
            outs.append(torch.stack(seq if d == 0 else seq[::-1]))  # (T, B, Hout)
            hn.append(h)
            cn.append(c)
            self.slots[(layer, d)] = functools.partial(_assemble_probes, Ph, Pc, d == 1)
        c_n = torch.stack(cn) if lstm else None
        return torch.cat(outs, dim=-1), torch.stack(hn), c_n  # (T, B, D*Hout), (D, B, Hout)


def _assemble_probes(Ph: Tensor, Pc: Tensor | None, reverse: bool) -> tuple[Tensor, Tensor | None]:
    """Probes in call order [initial, call 1..T] -> grads in time order, (T+1, B, H)."""

    def order(g: Tensor) -> Tensor:
        return torch.cat([g[:1], g[1:].flip(0)]) if reverse else g

    return order(_grad(Ph)), (order(_grad(Pc)) if Pc is not None else None)


def _stack_steps(grads: list[Tensor | None], reverse: bool) -> Tensor:
    """[initial, call 1, ..., call T] -> (T+1, B, H) in time order; a missing initial is NaN."""
    steps = grads[1:]
    first = grads[0] if grads[0] is not None else torch.full_like(steps[0], math.nan)
    return torch.stack([first, *(steps[::-1] if reverse else steps)])  # type: ignore[misc]


# ---------------------------------------------------------------- cells
def _add_probes(state: Any) -> tuple[Any, list[Tensor]]:
    if isinstance(state, Tensor):
        probed, p = _probe(state)
        return probed, [p]
    if isinstance(state, (tuple, list)) and all(isinstance(s, Tensor) for s in state):
        pairs = [_probe(s) for s in state]
        return type(state)(q for q, _ in pairs), [p for _, p in pairs]
    raise ValueError(f"a probed cell must return a Tensor or a tuple of Tensors, got {type(state)}")


class _CellProbe:
    """Hooks on one cell: a zero probe on its output every call, one on the first call's state.

    For a cell returning ``(h, c)`` the probe on c only sees c_t's later uses, not the one inside
    the same call that makes ``h_t``; for ``nn.LSTMCell`` that term, ``dL/dh_t * o_t *
    (1 - tanh^2 c_t)``, is added back with o_t recomputed from the call's inputs. Other tuple
    cells report no ``dL/dc``.
    """

    def __init__(self, cell: nn.Module, reverse: bool) -> None:
        self.cell, self.reverse = cell, reverse
        self.initial: list[Tensor] | None = None
        self.steps: list[list[Tensor]] = []
        self.dh_dc: list[Tensor] = []  # nn.LSTMCell: o_t * (1 - tanh^2 c_t), (B, H) per call
        self.handles = [
            cell.register_forward_pre_hook(self._pre, with_kwargs=True),
            cell.register_forward_hook(self._post, with_kwargs=True),
        ]

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if self.initial is not None or self.steps:
            return None
        self.initial = []
        state = args[1] if len(args) > 1 else kwargs.get("hx")
        if state is None:  # nn.RNNCell/LSTMCell/GRUCell called without hx start from zeros
            H = getattr(module, "hidden_size", None)
            if H is None or not args:
                return None
            zeros = args[0].new_zeros(*args[0].shape[:-1], H)  # (B, H)
            state = (zeros, zeros.clone()) if isinstance(module, nn.LSTMCell) else zeros
        probed, self.initial = _add_probes(state)
        if len(args) > 1 or "hx" not in kwargs:
            return (args[0], probed, *args[2:]), kwargs
        return args, {**kwargs, "hx": probed}

    def _post(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        if isinstance(module, nn.LSTMCell):
            state = args[1] if len(args) > 1 else kwargs.get("hx")
            H = module.hidden_size
            with torch.no_grad():  # o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
                a = F.linear(args[0], module.weight_ih[3 * H :])  # (B, H)
                a = a + F.linear(state[0], module.weight_hh[3 * H :])
                if module.bias:
                    a = a + module.bias_ih[3 * H :] + module.bias_hh[3 * H :]
                self.dh_dc.append(torch.sigmoid(a) * (1 - torch.tanh(output[1]) ** 2))
        probed, probes = _add_probes(output)
        self.steps.append(probes)
        return probed

    def assemble(self) -> tuple[Tensor, Tensor | None]:
        if not self.steps:
            raise ValueError("the probed cell was never called")
        init: list[Tensor | None] = [*(self.initial or []), None, None]
        dL_dh = [_grad(s[0]) for s in self.steps]
        h = _stack_steps([_grad(init[0]) if init[0] is not None else None, *dL_dh], self.reverse)
        if not self.dh_dc:
            return h, None
        carried = [_grad(s[1]) for s in self.steps]  # through c_t's uses in later calls
        dL_dc = [g + gh * k for g, gh, k in zip(carried, dL_dh, self.dh_dc, strict=True)]
        c0 = _grad(init[1]) if init[1] is not None else None
        return h, _stack_steps([c0, *dL_dc], self.reverse)


# ---------------------------------------------------------------- entry point
@contextlib.contextmanager
def _attached(
    model: nn.Module,
    rnn: nn.Module | None,
    cell: nn.Module | Sequence[nn.Module] | None,
    method: str,
) -> Iterator[tuple[str, int, int, Callable[[], _Pairs]]]:
    """Attach probes; yield (method, L, D, collect); detach on exit, even after an exception."""
    core = getattr(model, "core", None)
    if cell is not None or (isinstance(core, CellStack) and rnn is None):
        if method == "fused":
            raise ValueError("method='fused' needs an nn.RNN/LSTM/GRU; cells are probed by hooks")
        if cell is not None:
            single = isinstance(cell, nn.Module) and not isinstance(cell, nn.ModuleList)
            cells = [cell] if single else list(cell)  # type: ignore[arg-type]
            L, D, table = len(cells), 1, {(i, 0): c for i, c in enumerate(cells)}
        else:
            L, D = core.num_layers, core.num_directions
            table = {(i // D, i % D): c for i, c in enumerate(core.cells)}
        probes: dict[tuple[int, int], _CellProbe] = {}
        try:
            for key, c in table.items():
                probes[key] = _CellProbe(c, reverse=key[1] == 1)
            yield "cell-hook", L, D, lambda: {k: p.assemble() for k, p in probes.items()}
        finally:
            for p in probes.values():
                for handle in p.handles:
                    handle.remove()
        return
    module = rnn if rnn is not None else model if isinstance(model, nn.RNNBase) else core
    if not isinstance(module, nn.RNNBase):
        raise ValueError(
            f"cannot probe {type(model).__name__}: pass a bpttlab model or nn.RNN/LSTM/GRU, or "
            "rnn=<its nn.RNN/LSTM/GRU submodule>, or cell=<the module it calls once per step>"
        )
    probe = _FusedProbe(module, method)
    saved = module.__dict__.get("forward")
    module.forward = probe.forward  # instance attribute shadows the class's forward
    try:

        def collect() -> _Pairs:
            if probe.calls != 1:
                raise ValueError(f"the probed {module.mode} module was called {probe.calls} times")
            return {k: f() for k, f in probe.slots.items()}

        yield probe.method, probe.L, probe.D, collect
    finally:
        if saved is None:
            del module.forward
        else:
            module.forward = saved


def _norms(G: Tensor) -> np.ndarray:
    """(T+1, ...) -> (T+1,) float64 Frobenius norms that cannot underflow.

    float32 entries squared in float64 stay normal (>= 2e-90); float64 rows whose norm comes out
    below 1e-150 are recomputed after dividing by their largest entry."""
    g = (torch.view_as_real(G) if G.is_complex() else G).detach().flatten(1)  # (T+1, B*H)
    n = torch.linalg.vector_norm(g, dim=1, dtype=torch.float64)  # (T+1,)
    if g.dtype == torch.float64:
        tiny = torch.nonzero(n < 1e-150).flatten()
        if tiny.numel():
            rows = g[tiny]
            scale = rows.abs().amax(dim=1)
            safe = torch.where(scale > 0, scale, torch.ones_like(scale))
            n[tiny] = (rows / safe[:, None]).norm(dim=1) * scale
    return n.cpu().numpy()


_F32_ROUNDS_TO_ZERO = 2.0**-150  # half the smallest float32 subnormal: ties round to even (0)


def _float32_zero(G: Tensor, norms: np.ndarray) -> np.ndarray:
    """(T+1,) bool: the gradient at step t, cast to float32, is zero in every entry."""
    if G.dtype != torch.float64:  # float32 (or narrower): all zero iff the float64 norm is 0
        return norms == 0
    amax = torch.linalg.vector_norm(G.detach().flatten(1), ord=math.inf, dim=1)  # (T+1,)
    return (amax <= _F32_ROUNDS_TO_ZERO).cpu().numpy()


def _float32_underflow_at(zero: np.ndarray) -> int | None:
    """Largest t with an all-zero float32 gradient below a later non-zero one, else None."""
    nonzero = np.flatnonzero(~zero)
    if nonzero.size == 0:
        return None
    below = np.flatnonzero(zero[: nonzero[-1]])
    return int(below[-1]) if below.size else None


def gradient_profile(
    model: nn.Module,
    x: Tensor,
    loss_fn: Callable[[Any], Tensor],
    *,
    h0: Any = None,
    rnn: nn.RNNBase | None = None,
    cell: nn.Module | Sequence[nn.Module] | None = None,
    method: str = "auto",
    keep_grads: bool = False,
) -> Profile:
    """``||dL/dh_t||`` for t = 0..T of one forward and backward of ``loss_fn(model(x[, h0]))``.

    Arguments:
        model: a bpttlab model (``loss_fn`` gets ``(y, hs)``), a bare ``nn.RNN``/``nn.LSTM``/
            ``nn.GRU`` of any num_layers, batch_first, bidirectional, proj_size (``loss_fn``
            gets ``(output, h_n)`` or ``(output, (h_n, c_n))``), or any module: then pass
            ``rnn=`` (the nn.RNN/LSTM/GRU it calls once) or ``cell=`` (the module, or one per
            layer, that it calls once per step as ``cell(x_t, state)``) and ``loss_fn`` gets
            what ``model`` returns.
        x: the input, in whatever layout ``model`` takes; bpttlab models take (B, T, I).
        loss_fn: maps the model's output to a scalar loss.
        h0: passed as ``model(x, h0)`` when given.
        method: "auto" | "fused" | "unrolled"; see the module docstring.
        keep_grads: keep ``dL/dh`` (T+1, B, H) per (layer, direction) in ``Profile.grads``.
    """
    check_choice("method", method, METHODS)
    with torch.enable_grad(), _attached(model, rnn, cell, method) as (used, L, D, collect):
        output = model(x) if h0 is None else model(x, h0)
        loss = loss_fn(output)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(f"loss_fn must return a scalar tensor, got {type(loss).__name__}")
        loss.backward()
        grads = collect()
    per_layer = np.stack([np.stack([_norms(grads[(i, d)][0]) for d in range(D)]) for i in range(L)])
    has_c = all(grads[(i, d)][1] is not None for i in range(L) for d in range(D))
    cell_per_layer = None
    if has_c:
        c_rows = [[_norms(grads[(i, d)][1]) for d in range(D)] for i in range(L)]  # type: ignore[arg-type]
        cell_per_layer = np.stack([np.stack(row) for row in c_rows])
    norms = functools.reduce(np.hypot, per_layer[-1])  # (T+1,)
    with np.errstate(divide="ignore"):
        log10 = np.log10(norms)
    top = [grads[(L - 1, d)][0] for d in range(D)]
    zero = np.logical_and.reduce([_float32_zero(G, per_layer[-1, d]) for d, G in enumerate(top)])
    return Profile(
        norms=norms,
        log10_norms=log10,
        per_layer=per_layer,
        loss=float(loss.detach()),
        float32_underflow_at=_float32_underflow_at(zero),
        cell_norms=functools.reduce(np.hypot, cell_per_layer[-1]) if has_c else None,
        cell_per_layer=cell_per_layer,
        method=used,
        dtype=str(top[0].dtype).removeprefix("torch."),
        grads={k: v[0] for k, v in grads.items()} if keep_grads else None,
    )
