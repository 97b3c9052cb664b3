"""The nn.RNN/LSTM/GRU paths of ``probe.gradient_profile``: the fused kernels with a zero probe
beside the input, the exact unrolled loop, and the replay of the untouched kernel
(``_probe_replay.py``).

See ``probe.py`` for the methods and the indexing; the names here are re-exported nowhere.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from bpttlab._probe_replay import ReplayInputs, replay

__all__ = [
    "FusedProbe",
    "LayerWeights",
    "assemble_probes",
    "grad_or_zeros",
    "layer_weights",
    "lstm_step",
    "zero_probe",
]


def zero_probe(state: Tensor) -> tuple[Tensor, Tensor]:
    """``state + p`` with a zero leaf ``p``: ``dL/dp = dL/d(state)``."""
    p = torch.zeros_like(state, requires_grad=True)
    return state + p, p


def grad_or_zeros(t: Tensor) -> Tensor:
    return t.grad if t.grad is not None else torch.zeros_like(t)


@dataclass(frozen=True)
class LayerWeights:
    """w_ih (G, I), w_hh (G, Hout), b_ih, b_hh (G,), w_hr (Hout, H) of one layer and direction."""

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None
    w_hr: Tensor | None

    def flat(self, w_ih: Tensor) -> list[Tensor]:
        """The kernel's weight list with ``w_ih`` in place of the layer's own."""
        extra = [w for w in (self.b_ih, self.b_hh, self.w_hr) if w is not None]
        return [w_ih, self.w_hh, *extra]


def layer_weights(m: nn.RNNBase, layer: int, d: int) -> LayerWeights:
    """The weights of one layer and direction of ``m``."""
    sfx = f"_l{layer}" + ("_reverse" if d else "")

    def get(name: str) -> Tensor:
        return getattr(m, name + sfx)

    return LayerWeights(get("weight_ih"), get("weight_hh"),
                        get("bias_ih") if m.bias else None, get("bias_hh") if m.bias else None,
                        get("weight_hr") if getattr(m, "proj_size", 0) else None)  # fmt: skip


def lstm_step(
    gi_t: Tensor, h: Tensor, c: Tensor, pc_t: Tensor, w: LayerWeights
) -> tuple[Tensor, Tensor]:
    """One LSTM step from precomputed ``gi_t = W_ih x_t + b_ih`` (B, 4H), with the probe ``pc_t``
    added to c_t before ``h_t = o_t * tanh(c_t)``, so that it sees both of c_t's uses."""
    gates = gi_t + F.linear(h, w.w_hh, w.b_hh)  # (B, 4H), PyTorch's order i, f, g, o
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g) + pc_t  # (B, H)
    h = torch.sigmoid(o) * torch.tanh(c)  # (B, H)
    return (F.linear(h, w.w_hr) if w.w_hr is not None else h), c  # (B, Hout), (B, H)


# ---------------------------------------------------------------- fused modules
class FusedProbe:
    """Stands in for ``module.forward`` during one call; records the probes of every layer.

    ``choose(module, x)``, called at the forward when ``method="auto"``, returns the method to
    use for that input (``probe.py``'s cost model)."""

    def __init__(
        self,
        module: nn.RNNBase,
        method: str,
        choose: Callable[[nn.RNNBase, Tensor], str] | None = None,
    ) -> None:
        if method == "fused" and module.mode == "GRU":
            raise ValueError(
                "method='fused' is not exact for nn.GRU (r_t multiplies W_hn h_{t-1} inside the "
                "kernel); use method='unrolled', 'replay' or 'auto'"
            )
        self.module, self.method, self.calls, self.choose = module, method, 0, choose
        self.L, self.D = module.num_layers, 2 if module.bidirectional else 1
        self.slots: dict[tuple[int, int], Callable[[], tuple[Tensor, Tensor | None]]] = {}
        self.leaves: list[Tensor] = []  # tensors whose .grad shows that a backward reached us

    def reached(self) -> bool:
        """Whether a backward has put a gradient on any probe since the forward."""
        return any(t.grad is not None for t in self.leaves)

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        m, lstm = self.module, self.module.mode == "LSTM"
        self.calls += 1
        if self.calls > 1:
            raise ValueError("the probed nn.RNN/LSTM/GRU was called more than once per forward")
        if isinstance(input, PackedSequence):
            raise ValueError("PackedSequence input is not supported; pad the batch instead")
        self._check(input, hx)
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
        if self.method == "auto":
            assert self.choose is not None
            self.method = self.choose(m, x)
        run = {"fused": self._fused_layer, "unrolled": self._unrolled_layer,
               "replay": self._replay_layer}[self.method]  # fmt: skip
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

    def _check(self, input: Any, hx: Any) -> None:
        """What ``nn.RNN/LSTM/GRU.forward`` checks before its kernel, and more (the kernel is
        called directly here, and a shape it does not expect corrupts memory)."""
        m = self.module
        w = m.weight_ih_l0
        layout = "(B, T, I)" if m.batch_first else "(T, B, I)"
        if not isinstance(input, Tensor) or input.dim() not in (2, 3):
            shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"the {m.mode} takes x of shape {layout} or (T, I); got {shape}")
        if input.dtype != w.dtype or input.device != w.device:
            raise ValueError(f"x is {input.dtype} on {input.device} but the {m.mode}'s weights "
                             f"are {w.dtype} on {w.device}: convert one to the other")  # fmt: skip
        if input.numel() == 0:
            raise ValueError(f"x has shape {tuple(input.shape)}: no steps or no sequences")
        if input.dim() == 2:  # unbatched (T, I): checked as a batch of one, as forward does
            input = input.unsqueeze(0 if m.batch_first else 1)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(1)
        B = input.shape[0] if m.batch_first else input.shape[1]
        Hout = getattr(m, "proj_size", 0) or m.hidden_size
        if hx is None:
            h = input.new_zeros(self.L * self.D, B, Hout)
            c = input.new_zeros(self.L * self.D, B, m.hidden_size)
            hx = (h, c) if m.mode == "LSTM" else h
        try:
            m.check_forward_args(input, hx, None)
        except (RuntimeError, TypeError, AttributeError) as error:
            raise ValueError(f"x or h0 does not fit the {m.mode}: {error}") from None

    def _fused_layer(self, layer: int, inp: Tensor, h0: Tensor, c0: Tensor | None) -> tuple:
        """One kernel call for both directions on ``[x, p_fwd, p_rev]``; W_ext zero-padded."""
        m, D = self.module, self.D
        T, B, _ = inp.shape
        Hout = h0.shape[-1]
        P = inp.new_zeros(T, B, D * Hout, requires_grad=True)  # zero probes, all steps
        flat: list[Tensor] = []
        for d in range(D):
            w = layer_weights(m, layer, d)
            W_hh = w.w_hh
            probe_cols = [W_hh.detach() if e == d else W_hh.new_zeros(W_hh.shape) for e in range(D)]
            W_ext = torch.cat([w.w_ih, *probe_cols], dim=1)  # (G, I + D*Hout)
            flat += w.flat(W_ext)
        xin = torch.cat([inp, P], dim=-1)  # (T, B, I + D*Hout)
        args = (m.bias, 1, 0.0, m.training, D == 2, False)
        c_n = None
        with warnings.catch_warnings():  # cuDNN copies the un-flattened weights once; expected
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
            if m.mode == "LSTM":
                assert c0 is not None
                out, h_n, c_n = _VF.lstm(xin, (h0, c0), flat, *args)
            else:
                fn = _VF.rnn_tanh if m.mode == "RNN_TANH" else _VF.rnn_relu
                out, h_n = fn(xin, h0, flat, *args)  # (T, B, D*Hout), (D, B, Hout)
        out.retain_grad()
        h_n.retain_grad()
        self.leaves.append(P)
        for d in range(D):
            self.slots[(layer, d)] = functools.partial(self._assemble_fused, P, out, h_n, d)
        return out, h_n, c_n

    def _replay_layer(self, layer: int, inp: Tensor, h0: Tensor, c0: Tensor | None) -> tuple:
        """The layer's own kernel call, as ``module.forward`` makes it (one layer at a time, both
        directions in one call); the outputs keep their gradients for ``_probe_replay``."""
        m, D = self.module, self.D
        weights = [layer_weights(m, layer, d) for d in range(D)]
        flat = [t for w in weights for t in w.flat(w.w_ih)]
        args = (m.bias, 1, 0.0, m.training, D == 2, False)
        c_n = None
        if m.mode == "LSTM":
            assert c0 is not None
            out, h_n, c_n = _VF.lstm(inp, (h0, c0), flat, *args)
        else:
            fn = {"RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu, "GRU": _VF.gru}[m.mode]
            out, h_n = fn(inp, h0, flat, *args)  # (T, B, D*Hout), (D, B, Hout)
        kept = [t for t in (out, h_n, c_n) if t is not None and t.requires_grad]
        for t in kept:
            t.retain_grad()
        self.leaves += kept
        for d, w in enumerate(weights):
            self.slots[(layer, d)] = functools.partial(
                self._assemble_replay, inp, h0[d], c0[d] if c0 is not None else None,
                out, h_n, c_n, d, w)  # fmt: skip
        return out, h_n, c_n

    def _assemble_replay(
        self, inp: Tensor, h0: Tensor, c0: Tensor | None, out: Tensor, h_n: Tensor,
        c_n: Tensor | None, d: int, w: LayerWeights,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        Hout = h_n.shape[-1]
        s = slice(d * Hout, (d + 1) * Hout)

        dt = torch.promote_types(out.dtype, w.w_hh.dtype)  # autocast: outputs in bf16/fp16

        def timed(t: Tensor) -> Tensor:  # call order: a reverse direction reads time backwards
            return (t.detach().flip(0) if d else t.detach()).to(dt)

        def det(t: Tensor | None) -> Tensor | None:
            return t.detach().to(dt) if t is not None else None

        d_cn = grad_or_zeros(c_n)[d] if c_n is not None else None
        G, C = replay(ReplayInputs(
            mode=self.module.mode, x=timed(inp), out=timed(out[..., s]), h0=h0.detach().to(dt),
            c0=det(c0), d_out=timed(grad_or_zeros(out)[..., s]),
            d_hn=grad_or_zeros(h_n)[d].to(dt), d_cn=det(d_cn), w_ih=w.w_ih.detach().to(dt),
            w_hh=w.w_hh.detach().to(dt), b_ih=det(w.b_ih), b_hh=det(w.b_hh),
            w_hr=det(w.w_hr)))  # fmt: skip

        def order(g: Tensor) -> Tensor:
            return torch.cat([g[:1], g[1:].flip(0)]) if d else g

        return order(G), (order(C) if C is not None else None)

    @staticmethod
    def _assemble_fused(P: Tensor, out: Tensor, h_n: Tensor, d: int) -> tuple[Tensor, None]:
        Hout = h_n.shape[-1]
        s = slice(d * Hout, (d + 1) * Hout)
        # (T, B, Hout): W_hh^T dL/dz_t, the recurrent part of dL/dh_{t-1}
        p_grad = grad_or_zeros(P)[..., s]
        direct = grad_or_zeros(out)[..., s]  # (T, B, Hout): dL/dout_t, the rest of dL/dh_t
        G = torch.empty((P.shape[0] + 1, *p_grad.shape[1:]), dtype=P.dtype, device=P.device)
        if d == 0:  # the step at x_t reads h_{t-1}: p_grad[t-1] belongs to position t-1
            G[0] = p_grad[0]
            torch.add(direct[:-1], p_grad[1:], out=G[1:-1])
            torch.add(direct[-1], grad_or_zeros(h_n)[d], out=G[-1])
        else:  # reverse: the step at x_t reads position t+1, or the initial state at t = T
            G[0] = p_grad[-1]
            torch.add(direct[0], grad_or_zeros(h_n)[d], out=G[1])
            torch.add(direct[1:], p_grad[:-1], out=G[2:])
        return G, None  # (T+1, B, Hout)

    def _unrolled_layer(self, layer: int, inp: Tensor, h0: Tensor, c0: Tensor | None) -> tuple:
        """One step at a time, ``h_t + p_t`` with ``p`` (T+1, B, H) zero. The input projection
        of all steps is one product (RNN and LSTM: ``gi``), so a step is a single ``addmm``
        and the activations (GRU: ``torch._VF.gru_cell``, which takes x_t itself)."""
        m = self.module
        elman = m.mode in ("RNN_TANH", "RNN_RELU")
        act = torch.tanh if m.mode == "RNN_TANH" else torch.relu
        xs = inp.unbind(0)  # T x (B, I); unbind keeps the backward O(T)
        T, B = len(xs), inp.shape[1]
        outs, hn, cn = [], [], []
        for d in range(self.D):
            w = layer_weights(m, layer, d)
            Ph = inp.new_zeros(T + 1, B, h0.shape[-1], requires_grad=True)  # on h, per call
            Pc = (
                inp.new_zeros(T + 1, B, c0.shape[-1], requires_grad=True)
                if c0 is not None
                else None
            )
            ph = Ph.unbind(0)
            h: Tensor = h0[d] + ph[0]
            c: Any = c0[d] + Pc[0] if c0 is not None and Pc is not None else None
            if elman:  # z_t = (W_ih x_t + b_ih + b_hh) + h W_hh^T: one addmm per step
                b = w.b_ih + w.b_hh if w.b_ih is not None and w.b_hh is not None else None
                gi = F.linear(inp, w.w_ih, b).unbind(0)  # T x (B, H)
                w_hh_t = w.w_hh.t()  # (H, H)
            elif Pc is not None:  # LSTM
                gi = F.linear(inp, w.w_ih, w.b_ih).unbind(0)  # T x (B, 4H)
                pc = Pc.unbind(0)
            seq = []
            for i, t in enumerate(range(T) if d == 0 else range(T - 1, -1, -1), start=1):
                if elman:
                    h = act(torch.addmm(gi[t], h, w_hh_t))  # (B, H)
                elif Pc is not None:
                    h, c = lstm_step(gi[t], h, c, pc[i], w)
                else:
                    h = _VF.gru_cell(xs[t], h, w.w_ih, w.w_hh, w.b_ih, w.b_hh)
                h = h + ph[i]
                seq.append(h)
            outs.append(torch.stack(seq if d == 0 else seq[::-1]))  # (T, B, Hout)
            hn.append(h)
            cn.append(c)
            self.slots[(layer, d)] = functools.partial(assemble_probes, Ph, Pc, d == 1)
            self.leaves += [Ph] if Pc is None else [Ph, Pc]
        c_n = torch.stack(cn) if c0 is not None else None
        return torch.cat(outs, dim=-1), torch.stack(hn), c_n  # (T, B, D*Hout), (D, B, Hout)


def assemble_probes(Ph: Tensor, Pc: Tensor | None, reverse: bool) -> tuple[Tensor, Tensor | None]:
    """Probes in call order [initial, call 1..T] -> grads in time order, (T+1, B, H)."""

    def order(g: Tensor) -> Tensor:
        return torch.cat([g[:1], g[1:].flip(0)]) if reverse else g

    return order(grad_or_zeros(Ph)), (order(grad_or_zeros(Pc)) if Pc is not None else None)
