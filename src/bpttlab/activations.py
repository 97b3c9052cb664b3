"""Derivatives of any elementwise activation torch has by name, beside theory's closed forms.

``derivative("gelu", [0, 1, 2])`` -> f'(x) by float64 autograd (the convention torch uses, e.g.
relu'(0) = 0). Names are looked up in ``torch.nn.functional`` first, then ``torch``; a function
that changes the shape, is random (dropout) or mixes elements (softmax) is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from bpttlab import theory
from bpttlab._util import ConfigError

__all__ = ["derivative"]

_EXAMPLES = "tanh, sigmoid, relu, identity, or any elementwise activation torch has by name " \
            "(gelu, softplus, elu, silu, ...)"  # fmt: skip


def _function(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The torch function ``name``, checked to be elementwise and deterministic."""
    fn = getattr(torch.nn.functional, name, None) or getattr(torch, name, None)
    if fn is None or not callable(fn) or name.startswith("_") or isinstance(fn, type):
        raise ConfigError("activation", name, _EXAMPLES)
    probe = torch.linspace(-2.0, 2.0, 5, dtype=torch.float64)
    try:
        with warnings.catch_warnings():  # e.g. softmax's "implicit dimension": refused below
            warnings.simplefilter("ignore")
            out, again = fn(probe), fn(probe)
            alone = [fn(probe[i : i + 1]) for i in range(probe.numel())]  # one at a time
            tracked = fn(probe.clone().requires_grad_(True))
    except Exception as exc:  # a torch function that is not an activation (needs more args)
        raise ConfigError("activation", name, f"not an elementwise activation: torch.{name} on a "
                          f"tensor failed ({type(exc).__name__})") from None  # fmt: skip
    if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
        raise ConfigError("activation", name, "not elementwise: it changes the input's shape")
    if not getattr(tracked, "requires_grad", False):
        raise ConfigError("activation", name, "not differentiable by autograd (a copy or cast?)")
    if not torch.equal(out, again):
        raise ConfigError("activation", name, "not deterministic (e.g. dropout)")
    if not torch.allclose(out, torch.cat(alone), rtol=1e-12, atol=0.0):
        raise ConfigError("activation", name, "not elementwise: each output depends on other "
                          "inputs (e.g. softmax)")  # fmt: skip
    return fn


def derivative(name: str, x: np.ndarray | Sequence[float] | float) -> np.ndarray:
    """f'(x) for the named activation, float64, the shape of ``x``; closed forms for
    :data:`bpttlab.theory.ACTIVATIONS`, float64 autograd for every other name."""
    if name in theory.ACTIVATIONS:
        return theory.activation_derivative(name, x)
    fn = _function(name)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64)).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(xt).sum(), xt)
    return grad.detach().numpy()
