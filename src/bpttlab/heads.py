"""Readouts: from the top layer's states ``hs`` (B, T, S) to the outputs ``y`` (B, T, out)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CausalAttentionReadout", "LRUReadout", "Readout"]


class Readout(nn.Module):
    """``y_t = W_out h_t + b``: (B, T, S) -> (B, T, out)."""

    def __init__(self, state_size: int, output_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(state_size, output_size)

    def forward(self, hs: Tensor, x: Tensor) -> Tensor:
        return self.linear(hs)  # (B, T, out)


class CausalAttentionReadout(nn.Module):
    """``y_t = W_out [h_t; c_t]``, ``c_t = sum_{j<=t} softmax_j(q_t.k_j / sqrt(S)) h_j``.

    Attention over encoder states as in Bahdanau et al. 2015, scaled dot product as in Vaswani
    et al. 2017; causal so that y_t sees h_1..h_t only.
    """

    def __init__(self, state_size: int, output_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(state_size, state_size)
        self.key = nn.Linear(state_size, state_size)
        self.out = nn.Linear(2 * state_size, output_size)

    def forward(self, hs: Tensor, x: Tensor) -> Tensor:
        q, k = self.query(hs), self.key(hs)  # (B, T, S)
        c = F.scaled_dot_product_attention(q, k, hs, is_causal=True)  # (B, T, S)
        return self.out(torch.cat([hs, c], dim=-1))  # (B, T, out)


class LRUReadout(nn.Module):
    """``y_t = Re(C h_t) + D x_t`` (Orvieto et al. 2023, eq. 7) on hs = [Re h, Im h]."""

    def __init__(self, hidden_size: int, input_size: int, output_size: int) -> None:
        super().__init__()
        self.C = nn.Linear(2 * hidden_size, output_size)  # [Re C, -Im C] acting on [Re h, Im h]
        self.D = nn.Linear(input_size, output_size, bias=False)

    def forward(self, hs: Tensor, x: Tensor) -> Tensor:
        return self.C(hs) + self.D(x)  # (B, T, out)
