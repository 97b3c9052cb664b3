"""activations.derivative: any elementwise torch activation, against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bpttlab import theory
from bpttlab.activations import derivative


@pytest.mark.parametrize("name", ["gelu", "softplus", "elu", "silu", "tanh"])
def test_any_torch_activation_against_finite_differences(name):
    x = np.linspace(-3, 3, 13) + 0.05
    fn = getattr(torch.nn.functional, name, None) or getattr(torch, name)
    h = 1e-6
    xp, xm = torch.tensor(x + h), torch.tensor(x - h)
    fd = ((fn(xp) - fn(xm)) / (2 * h)).numpy()
    np.testing.assert_allclose(derivative(name, x), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["foo", "linear", "softmax_nope", "_private"])
def test_unknown_activation_raises_naming_it(name):
    with pytest.raises(ValueError, match="activation"):
        derivative(name, [0.0])


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "identity"])
def test_closed_forms_and_autograd_agree(name):
    x = np.linspace(-4, 4, 17) + 0.01  # off relu's kink
    fn = {"identity": lambda t: t}.get(name) or getattr(torch, name)
    xt = torch.tensor(x, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(xt).sum(), xt)
    np.testing.assert_allclose(theory.activation_derivative(name, x), grad.numpy(), rtol=1e-13)
    np.testing.assert_array_equal(derivative(name, x), theory.activation_derivative(name, x))


@pytest.mark.parametrize(
    "name,why",
    [
        ("softmax", "elementwise"),
        ("dropout", "deterministic"),
        ("tensor", "activation"),
        ("Tensor", "activation"),
    ],
)
def test_functions_that_are_not_activations_are_refused(name, why):
    with pytest.raises(ValueError, match=why):
        derivative(name, [0.0])
