"""The replay path of ``probe.gradient_profile``: the module's own kernel, untouched, and the
hidden-state backward recursion replayed afterwards from what autograd already holds.

The forward runs the kernel exactly as ``nn.RNN/LSTM/GRU.forward`` would (same call, same
weights), so the loss, every parameter's ``.grad`` and every later training step are bitwise
those of an unprobed run. The only additions are ``retain_grad()`` on the kernel's outputs: after
the user's backward, ``dL/dout_t`` (the direct part of ``dL/dh_t``) and ``dL/dh_n`` (and
``dL/dc_n``) are known, and the recurrent part is the chain

    dL/dh_{t-1} = dL/dout_{t-1} + J_t^T dL/dh_t,        J_t = dh_t / dh_{t-1},

replayed here with J_t recomputed from the outputs (every h_{t-1} is in ``out``, so the gate
pre-activations of all steps come from two batched GEMMs; only the chain itself is sequential).
The formulas, row vectors, ``z = x W_ih^T + b_ih + h W_hh^T + b_hh`` (PyTorch's equations):

- Elman (Elman 1990): ``J_t^T g = (f'(z_t) * g) W_hh``, with ``tanh' = 1 - h_t^2`` and
  ``relu' = [h_t > 0]`` read from the output itself: nothing is recomputed.
- LSTM (Hochreiter & Schmidhuber 1997; PyTorch's gate order i, f, g, o; ``m_t = o_t tanh c_t``,
  ``h_t = m_t W_hr^T`` with a projection): ``dm = g W_hr``;
  ``dc_t = dc_{t+1} f_{t+1} + dm o_t (1 - tanh^2 c_t)`` (the total dL/dc_t, so the replay also
  gives ``cell_norms``); ``dz = [dc g_t i_t(1-i_t), dc c_{t-1} f_t(1-f_t), dc i_t (1-g_t^2),
  dm tanh(c_t) o_t(1-o_t)]``; ``J_t^T g = dz W_hh``. c_t is rebuilt by its recursion (one fused
  multiply-add per step).
- GRU (Cho et al. 2014, PyTorch's form ``n_t = tanh(a_in + r_t (W_hn h + b_hn))``):
  ``J_t^T g = z_t g + [g C_r, g C_z, g C_n] W_hh`` with ``C_n = (1-z)(1-n^2) r``,
  ``C_r = (1-z)(1-n^2) (W_hn h_{t-1} + b_hn) r(1-r)`` and ``C_z = (h_{t-1} - n) z(1-z)``.

The replay costs one batched recomputation of the gates (none for Elman) and one (B, G) x (G, H)
product per step: about a third of a plain forward + backward, added to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ReplayInputs", "replay"]


@dataclass(frozen=True)
class ReplayInputs:
    """One layer and direction, time-major and in call order (a reverse direction flipped).

    Attributes:
        mode: "RNN_TANH", "RNN_RELU", "LSTM" or "GRU".
        x: (T, B, I) the layer's input.  out: (T, B, Hout) its states h_1..h_T.
        h0: (B, Hout).  c0: (B, H) for LSTM, else None.
        d_out: (T, B, Hout) dL/dout.  d_hn: (B, Hout) dL/dh_n.  d_cn: (B, H) or None.
        w_ih (G, I), w_hh (G, Hout), b_ih, b_hh (G,) or None, w_hr (Hout, H) or None.
    """

    mode: str
    x: Tensor
    out: Tensor
    h0: Tensor
    c0: Tensor | None
    d_out: Tensor
    d_hn: Tensor
    d_cn: Tensor | None
    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None
    w_hr: Tensor | None


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """(T, B, K) @ w^T + b -> (T, B, G) as one GEMM."""
    T, B, K = x.shape
    flat = x.reshape(T * B, K)
    y = torch.mm(flat, w.t()) if b is None else torch.addmm(b, flat, w.t())  # (T*B, G)
    return y.view(T, B, -1)


def _chain(r: ReplayInputs) -> tuple[Tensor, Tensor]:
    """G (T+1, B, Hout) to be filled from G[T] down, with G[T] = dL/dout_T + dL/dh_n; and the
    previous states (T, B, Hout) = [h_0, h_1, ..., h_{T-1}]."""
    T = r.out.shape[0]
    G = torch.empty((T + 1, *r.out.shape[1:]), dtype=r.out.dtype, device=r.out.device)
    torch.add(r.d_out[-1], r.d_hn, out=G[T])
    h_prev = torch.cat([r.h0.unsqueeze(0), r.out[:-1]])  # (T, B, Hout)
    return G, h_prev


def _elman(r: ReplayInputs) -> Tensor:
    G, _ = _chain(r)
    T = r.out.shape[0]
    h = r.out  # (T, B, H): f'(z_t) from h_t itself
    fprime = (1 - h * h) if r.mode == "RNN_TANH" else (h > 0).to(h.dtype)  # (T, B, H)
    dz = torch.empty_like(r.d_hn)  # (B, H)
    for k in range(T, 0, -1):  # G[k-1] = dL/dout_{k-1} + (f'(z_k) * G[k]) W_hh
        torch.mul(fprime[k - 1], G[k], out=dz)
        if k >= 2:
            torch.addmm(r.d_out[k - 2], dz, r.w_hh, out=G[k - 1])
        else:
            torch.mm(dz, r.w_hh, out=G[0])
    return G


def _lstm(r: ReplayInputs) -> tuple[Tensor, Tensor]:
    assert r.c0 is not None and r.d_cn is not None
    G, h_prev = _chain(r)
    T, B, _ = r.out.shape
    H = r.c0.shape[-1]
    z = _linear(r.x, r.w_ih, r.b_ih) + _linear(h_prev, r.w_hh, r.b_hh)  # (T, B, 4H)
    i, f, g, o = torch.sigmoid(z[..., :H]), torch.sigmoid(z[..., H : 2 * H]), \
        torch.tanh(z[..., 2 * H : 3 * H]), torch.sigmoid(z[..., 3 * H :])  # fmt: skip
    c = torch.empty((T + 1, B, H), dtype=z.dtype, device=z.device)  # c_0..c_T
    c[0] = r.c0
    ig = i * g  # (T, B, H)
    for k in range(1, T + 1):  # c_k = f_k c_{k-1} + i_k g_k
        torch.addcmul(ig[k - 1], f[k - 1], c[k - 1], out=c[k])
    tc = torch.tanh(c[1:])  # (T, B, H)
    A = o * (1 - tc * tc)  # dc/dm through m = o tanh(c)
    K = torch.stack([g * i * (1 - i), c[:-1] * f * (1 - f), i * (1 - g * g)], dim=2)  # (T, B, 3, H)
    Ko = tc * o * (1 - o)  # (T, B, H)
    C = torch.empty_like(c)  # dL/dc_0..dL/dc_T
    dz = torch.empty((B, 4 * H), dtype=z.dtype, device=z.device)
    dz_ifg, dz_o = dz.view(B, 4, H)[:, :3], dz[:, 3 * H :]
    carry = r.d_cn  # dL/dc_T from outside (c_n)
    for k in range(T, 0, -1):
        dm = G[k] if r.w_hr is None else torch.mm(G[k], r.w_hr)  # (B, H)
        torch.addcmul(carry, dm, A[k - 1], out=C[k])
        torch.mul(K[k - 1], C[k].unsqueeze(1), out=dz_ifg)
        torch.mul(dm, Ko[k - 1], out=dz_o)
        if k >= 2:
            torch.addmm(r.d_out[k - 2], dz, r.w_hh, out=G[k - 1])
        else:
            torch.mm(dz, r.w_hh, out=G[0])
        carry = C[k] * f[k - 1]
    C[0] = carry
    return G, C


def _gru(r: ReplayInputs) -> Tensor:
    G, h_prev = _chain(r)
    T, B, H = r.out.shape
    gi = _linear(r.x, r.w_ih, r.b_ih)  # (T, B, 3H): r, z, n
    gh = _linear(h_prev, r.w_hh, r.b_hh)  # (T, B, 3H)
    rt = torch.sigmoid(gi[..., :H] + gh[..., :H])
    zt = torch.sigmoid(gi[..., H : 2 * H] + gh[..., H : 2 * H])
    nt = torch.tanh(gi[..., 2 * H :] + rt * gh[..., 2 * H :])
    c_n = (1 - zt) * (1 - nt * nt)  # dn-path factor, before r
    C_r = c_n * gh[..., 2 * H :] * rt * (1 - rt)
    K = torch.stack([C_r, (h_prev - nt) * zt * (1 - zt), c_n * rt], dim=2)  # (T, B, 3, H)
    dgh = torch.empty((B, 3 * H), dtype=gi.dtype, device=gi.device)
    dgh3 = dgh.view(B, 3, H)
    for k in range(T, 0, -1):  # G[k-1] = dL/dout_{k-1} + z_k G[k] + (G[k] * K_k) W_hh
        torch.mul(K[k - 1], G[k].unsqueeze(1), out=dgh3)
        if k >= 2:
            torch.addmm(r.d_out[k - 2], dgh, r.w_hh, out=G[k - 1])
        else:
            torch.mm(dgh, r.w_hh, out=G[0])
        G[k - 1].addcmul_(zt[k - 1], G[k])
    return G


@torch.no_grad()
def replay(r: ReplayInputs) -> tuple[Tensor, Tensor | None]:
    """dL/dh (T+1, B, Hout) and, for LSTM, dL/dc (T+1, B, H), in call order [initial, 1..T]."""
    if r.mode == "LSTM":
        return _lstm(r)
    if r.mode == "GRU":
        return _gru(r), None
    return _elman(r), None
