"""Step cells, called once per time step, and the stack that runs them over a sequence.

``ElmanCell`` (tanh, sigmoid, relu, identity, modReLU), ``LRUCell`` (Orvieto et al. 2023) and
``CellStack`` (layers x directions, optional skip connections). Models whose recurrence has no
fused PyTorch kernel run on these; ``probe.gradient_profile`` reads them with hooks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from bpttlab._util import check_choice
from bpttlab.theory import ACTIVATIONS

__all__ = ["CellStack", "ElmanCell", "LRUCell", "ModReLU", "activation_module"]


class ModReLU(nn.Module):
    """``sign(z) relu(|z| + b)`` (Arjovsky, Shah & Bengio 2016, eq. 8); b ~ U(-0.01, 0.01)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(size).uniform_(-0.01, 0.01))

    def forward(self, z: Tensor) -> Tensor:
        return torch.sign(z) * F.relu(z.abs() + self.bias)  # (B, H)


def activation_module(name: str, size: int) -> nn.Module:
    """The module for ``name``: one of :data:`bpttlab.theory.ACTIVATIONS` or "modrelu"."""
    check_choice("activation", name, (*ACTIVATIONS, "modrelu"))
    if name == "modrelu":
        return ModReLU(size)
    return {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "identity": nn.Identity}[
        name
    ]()


class ElmanCell(nn.Module):
    """One step ``h_t = f(W_hh h_{t-1} + u_t) [+ h_skip]`` with ``u_t = W_xh x_t + b``.

    ``drive(x)`` computes all ``u_t`` at once, (B, T, I) -> (B, T, H); ``forward(u_t (B, H),
    h_prev (B, H), h_skip (B, H) | None) -> h_t (B, H)``. Weights start as in ``nn.RNN``:
    U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, input_size: int, hidden_size: int, activation: str) -> None:
        super().__init__()
        self.hidden_size = self.state_size = hidden_size
        self.activation = activation
        self.W_xh = nn.Linear(input_size, hidden_size)
        self.W_hh = nn.Linear(hidden_size, hidden_size, bias=False)
        self.f = activation_module(activation, hidden_size)
        bound = 1.0 / math.sqrt(hidden_size)
        for p in (self.W_xh.weight, self.W_xh.bias, self.W_hh.weight):
            nn.init.uniform_(p, -bound, bound)

    def drive(self, x: Tensor) -> Tensor:
        return self.W_xh(x)  # (B, T, H)

    def forward(self, u_t: Tensor, h_prev: Tensor, h_skip: Tensor | None = None) -> Tensor:
        h = self.f(u_t + self.W_hh(h_prev))  # (B, H)
        return h if h_skip is None else h + h_skip


class LRUCell(nn.Module):
    """Diagonal complex recurrence ``h_t = lambda * h_{t-1} + gamma * (B x_t)`` (Orvieto et al.
    2023, eq. 7-8), the state stored real as [Re h, Im h] (B, 2N).

    ``lambda = exp(-exp(nu_log) + i exp(theta_log))`` (exponential parametrisation, sec. 3.3),
    ``|lambda|`` initialised uniformly on the ring [r_min, r_max] (sec. 3.2, Lemma 3.2) and
    ``gamma = sqrt(1 - |lambda|^2)`` (normalisation, sec. 3.4).
    """

    def __init__(
        self, input_size: int, hidden_size: int, r_min: float, r_max: float, max_phase: float
    ) -> None:
        super().__init__()
        N = self.hidden_size = hidden_size
        self.state_size = 2 * N
        r = torch.sqrt(torch.rand(N) * (r_max**2 - r_min**2) + r_min**2)  # (N,) ring-uniform
        theta = (max_phase * torch.rand(N)).clamp_min(1e-6)  # (N,)
        self.nu_log = nn.Parameter(torch.log(-torch.log(r)))
        self.theta_log = nn.Parameter(torch.log(theta))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - r**2)))
        self.B_re = nn.Parameter(torch.randn(N, input_size) / math.sqrt(2 * input_size))
        self.B_im = nn.Parameter(torch.randn(N, input_size) / math.sqrt(2 * input_size))

    def eigenvalues(self) -> Tensor:
        """The diagonal of the recurrence, complex (N,)."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def drive(self, x: Tensor) -> Tensor:
        gamma = torch.exp(self.gamma_log)  # (N,)
        return torch.cat([F.linear(x, self.B_re) * gamma, F.linear(x, self.B_im) * gamma], -1)

    def forward(self, u_t: Tensor, h_prev: Tensor, h_skip: Tensor | None = None) -> Tensor:
        modulus, theta = torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log)  # (N,)
        lam_re, lam_im = modulus * torch.cos(theta), modulus * torch.sin(theta)  # (N,)
        a, b = h_prev.chunk(2, dim=-1)  # Re h, Im h: (B, N)
        h = torch.cat([lam_re * a - lam_im * b, lam_re * b + lam_im * a], dim=-1)  # (B, 2N)
        return h + u_t if h_skip is None else h + u_t + h_skip


class CellStack(nn.Module):
    """Layers x directions of step cells, ``cells[layer * D + direction]``; each cell is called
    once per step, the reverse direction from t = T down to 1.

    ``forward(x (B, T, I), h0 (L*D, B, S) | None) -> hs (B, T, D*S)``. With ``skip = k > 0`` each
    step adds ``h_{t-k}`` (zero for t <= k). Parametrised weights (orthogonal W_hh) are computed
    once per forward under ``parametrize.cached()``.
    """

    def __init__(
        self, cells: Sequence[nn.Module], num_layers: int, bidirectional: bool, skip: int = 0
    ) -> None:
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.num_layers, self.bidirectional, self.skip = num_layers, bidirectional, skip
        self.num_directions = 2 if bidirectional else 1
        self.state_size: int = int(cells[0].state_size)  # type: ignore[arg-type]
        assert len(cells) == num_layers * self.num_directions

    def forward(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
        B, T, _ = x.shape
        L, D, S, k = self.num_layers, self.num_directions, self.state_size, self.skip
        if h0 is None:
            h0 = x.new_zeros(L * D, B, S)
        inp = x  # (B, T, I)
        with parametrize.cached():
            for layer in range(L):
                outs = []
                for d in range(D):
                    cell: Any = self.cells[layer * D + d]
                    u = cell.drive(inp).unbind(1)  # T x (B, S); unbind keeps backward O(T)
                    order = range(T) if d == 0 else range(T - 1, -1, -1)
                    states = [h0[layer * D + d]]  # states[i]: after i steps, (B, S)
                    for i, t in enumerate(order, start=1):
                        h_skip = states[i - k] if k and i - k >= 1 else None
                        states.append(cell(u[t], states[i - 1], h_skip))
                    seq = states[1:] if d == 0 else states[:0:-1]  # in time order
                    outs.append(torch.stack(seq, dim=1))  # (B, T, S)
                inp = torch.cat(outs, dim=-1)  # (B, T, D*S)
        return inp
