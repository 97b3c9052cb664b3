"""The cell path of ``probe.gradient_profile``: forward hooks put a zero probe on a cell's
output at every call and on the state of its first call (see ``probe.py``)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bpttlab._probe_fused import grad_or_zeros, zero_probe

__all__ = ["CellProbe", "stack_steps"]


def stack_steps(grads: list[Tensor | None], reverse: bool) -> Tensor:
    """[initial, call 1, ..., call T] -> (T+1, B, H) in time order; a missing initial is NaN."""
    steps = [g for g in grads[1:] if g is not None]
    assert len(steps) == len(grads) - 1, "every call's probe has a gradient"
    first = grads[0] if grads[0] is not None else torch.full_like(steps[0], math.nan)
    return torch.stack([first, *(steps[::-1] if reverse else steps)])


def add_probes(state: Any) -> tuple[Any, list[Tensor]]:
    if isinstance(state, Tensor):
        probed, p = zero_probe(state)
        return probed, [p]
    if isinstance(state, (tuple, list)) and all(isinstance(s, Tensor) for s in state):
        pairs = [zero_probe(s) for s in state]
        return type(state)(q for q, _ in pairs), [p for _, p in pairs]
    raise ValueError(f"a probed cell must return a Tensor or a tuple of Tensors, got {type(state)}")


class CellProbe:
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
        probed, self.initial = add_probes(state)
        if len(args) > 1 or "hx" not in kwargs:
            return (args[0], probed, *args[2:]), kwargs
        return args, {**kwargs, "hx": probed}

    def _post(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        if isinstance(module, nn.LSTMCell):
            state: Any = args[1] if len(args) > 1 else kwargs.get("hx")
            H = module.hidden_size
            with torch.no_grad():  # o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
                a = F.linear(args[0], module.weight_ih[3 * H :])  # (B, H)
                a = a + F.linear(state[0], module.weight_hh[3 * H :])
                if module.bias:
                    a = a + module.bias_ih[3 * H :] + module.bias_hh[3 * H :]
                self.dh_dc.append(torch.sigmoid(a) * (1 - torch.tanh(output[1]) ** 2))
        probed, probes = add_probes(output)
        self.steps.append(probes)
        return probed

    def reached(self) -> bool:
        """Whether a backward has put a gradient on any of this cell's probes."""
        return any(p.grad is not None for p in [*(self.initial or []), *sum(self.steps, [])])

    def assemble(self) -> tuple[Tensor, Tensor | None]:
        if not self.steps:
            raise ValueError("the probed cell was never called")
        init: list[Tensor | None] = [*(self.initial or []), None, None]
        dL_dh = [grad_or_zeros(s[0]) for s in self.steps]
        h = stack_steps(
            [grad_or_zeros(init[0]) if init[0] is not None else None, *dL_dh], self.reverse
        )
        if not self.dh_dc:
            return h, None
        carried = [grad_or_zeros(s[1]) for s in self.steps]  # through c_t's uses in later calls
        dL_dc = [g + gh * k for g, gh, k in zip(carried, dL_dh, self.dh_dc, strict=True)]
        c0 = grad_or_zeros(init[1]) if init[1] is not None else None
        return h, stack_steps([c0, *dL_dc], self.reverse)
