"""integrations.keras: profiles of Keras 3 layers (torch backend) against torch cells with the
same weights unrolled by hand, the L3 model and its two claims, and the backend check."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported (extras.md)
os.environ.setdefault("KERAS_HOME", str(Path(tempfile.gettempdir()) / "bpttlab-keras-home"))
keras = pytest.importorskip("keras", reason="the keras extra is not installed")

from bpttlab.integrations import keras as bk  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
T, B, IN, H = 7, 3, 4, 5


def _keras_model(kind: str, unroll: bool) -> tuple[Any, Any]:
    layer_cls = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
                 "gru": keras.layers.GRU}[kind]  # fmt: skip
    init = keras.initializers
    layer = layer_cls(H, return_sequences=True, unroll=unroll, dtype="float64",
                      kernel_initializer=init.GlorotUniform(seed=1),
                      recurrent_initializer=init.Orthogonal(seed=2),
                      bias_initializer=init.RandomNormal(stddev=0.5, seed=3))  # fmt: skip
    model = keras.Sequential([keras.Input((T, IN), dtype="float64"), layer,
                              keras.layers.Dense(2, dtype="float64")])  # fmt: skip
    return model, layer


def _torch_cell(kind: str, layer: Any) -> nn.Module:
    """The PyTorch cell with the Keras layer's weights: Keras multiplies x @ kernel, PyTorch
    W x; Keras orders the GRU's gates z, r, h and PyTorch r, z, n."""
    k = layer.cell.kernel.value.detach().T  # (G, I)
    r = layer.cell.recurrent_kernel.value.detach().T  # (G, H)
    b = layer.cell.bias.value.detach()
    cell: nn.Module
    with torch.no_grad():
        if kind == "simple":
            cell = nn.RNNCell(IN, H).double()
            cell.weight_ih.copy_(k), cell.weight_hh.copy_(r), cell.bias_ih.copy_(b)
            cell.bias_hh.zero_()
        elif kind == "lstm":  # i, f, c, o = PyTorch's i, f, g, o
            cell = nn.LSTMCell(IN, H).double()
            cell.weight_ih.copy_(k), cell.weight_hh.copy_(r), cell.bias_ih.copy_(b)
            cell.bias_hh.zero_()
        else:  # reset_after=True: bias (2, 3H), input and recurrent
            order = torch.cat([torch.arange(H, 2 * H), torch.arange(H), torch.arange(2 * H, 3 * H)])
            cell = nn.GRUCell(IN, H).double()
            cell.weight_ih.copy_(k[order]), cell.weight_hh.copy_(r[order])
            cell.bias_ih.copy_(b[0][order]), cell.bias_hh.copy_(b[1][order])
    return cell


def _reference(kind: str, layer: Any, x: Tensor, w: Tensor) -> np.ndarray:
    """||dL/dh_t||, t = 0..T, of L = sum(w * h_1..h_T) by a retain_grad() unroll."""
    cell = _torch_cell(kind, layer)
    h = torch.zeros(B, H, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(B, H, dtype=torch.float64)
    states = [h]
    for t in range(T):
        if kind == "lstm":
            h, c = cell(x[:, t], (h, c))
        else:
            h = cell(x[:, t], h)
        h.retain_grad()
        states.append(h)
    (torch.stack(states[1:], dim=1) * w).sum().backward()
    return np.array([float(s.grad.norm()) for s in states])


@pytest.mark.parametrize("unroll", [False, True])
@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
def test_profile_matches_torch_cells_with_the_same_weights(kind: str, unroll: bool) -> None:
    model, layer = _keras_model(kind, unroll)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, IN, generator=g, dtype=torch.float64)
    w = torch.randn(B, T, H, generator=g, dtype=torch.float64)
    before = layer.use_cudnn if kind != "simple" else None
    # the loss reads the LSTM's output sequence: model.layers[0] is the recurrent layer
    seq = keras.Model(model.inputs, layer.output)
    prof = bk.gradient_profile(seq, x, lambda out: (out * w).sum())
    assert prof.method == "cell-hook" and prof.T == T
    # Keras 3.15's ops.matmul multiplies float64 tensors in float32 (its result_type maps
    # 64-bit to 32-bit types, as JAX does by default), forward and backward: the layer itself
    # is float32-accurate, so the float64 reference agrees to float32 rounding, not to 1e-10
    np.testing.assert_allclose(prof.norms, _reference(kind, layer, x, w), rtol=2e-6)
    assert "call" not in vars(layer.cell)  # the routing is undone
    if before is not None:
        assert layer.use_cudnn == before


def test_variable_grads_are_those_of_the_plain_generic_loop() -> None:
    model, layer = _keras_model("lstm", False)
    x = torch.randn(B, T, IN, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bk.gradient_profile(model, x, lambda out: out.pow(2).sum())
    probed = [v.value.grad.clone() for v in model.trainable_variables]
    for v in model.trainable_variables:
        v.value.grad = None
    layer.use_cudnn = False
    model(x).pow(2).sum().backward()
    for p, v in zip(probed, model.trainable_variables, strict=True):
        assert torch.equal(p, v.value.grad), v.path


def test_routing_is_undone_after_an_exception() -> None:
    model, layer = _keras_model("gru", False)
    x = torch.randn(B, T, IN, dtype=torch.float64)

    def boom(out: Any) -> Tensor:
        raise RuntimeError("boom in loss_fn")

    with pytest.raises(RuntimeError, match="boom in loss_fn"):
        bk.gradient_profile(model, x, boom)
    assert "call" not in vars(layer.cell) and layer.use_cudnn == "auto"


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_layer_facts_of_a_simple_rnn_are_its_recurrent_kernels(activation: str) -> None:
    model = keras.Sequential(
        [keras.Input((T, IN)), keras.layers.SimpleRNN(H, activation=activation)]
    )
    w = torch.as_tensor(model.layers[0].cell.recurrent_kernel.value).detach().double()
    facts = bk.layer_facts(model)
    assert facts["kind"] == "rnn" and facts["activation"] == activation
    assert facts["spectral_radius"] == pytest.approx(float(np.abs(np.linalg.eigvals(w)).max()))
    assert bk.KerasRecurrent(model).bpttlab_facts() == facts
    gru = keras.Sequential([keras.Input((T, IN)), keras.layers.GRU(H)])
    assert bk.layer_facts(gru) == {"kind": "gru"}


def test_layer_must_be_found_or_named() -> None:
    two = keras.Sequential([keras.Input((T, IN)), keras.layers.LSTM(H, return_sequences=True),
                            keras.layers.GRU(H)])  # fmt: skip
    with pytest.raises(ValueError, match="2 SimpleRNN/LSTM/GRU layers"):
        bk.find_layer(two)
    assert bk.find_layer(two.layers[1]) is two.layers[1]
    back = keras.Sequential([keras.Input((T, IN)), keras.layers.LSTM(H, go_backwards=True)])
    with pytest.raises(ValueError, match="go_backwards=True is not supported"):
        bk.KerasRecurrent(back)


def test_l3_model_is_the_lessons_and_is_diagnosed() -> None:
    model = bk.build_l3_model("float64", seed=0)
    emb, lstm, dense = model.layers
    assert (emb.input_dim, emb.output_dim, lstm.units, dense.units) == (10000, 128, 128, 10000)
    assert dense.activation is keras.activations.softmax and model.optimizer.clipnorm == 1.0
    assert model.input_shape == (None, 50)
    tokens, target = bk.l3_batch(seed=0)
    d = bk.diagnose(model, tokens, bk.l3_loss(target))
    assert d.T == 50 and d.verdict == "vanishing" and 1e-6 < d.ratio < 1e-4
    # unit_forget_bias=True (Keras's default) starts the f gate's bias at 1
    assert d.facts == {"kind": "lstm", "forget_bias": 1.0}
    measured, verdict, conditions = bk.audit("the L3 model")
    assert verdict == "does not hold" and f"{d.ratio:.3g}" in measured and "vanishing" in measured


def test_clipnorm_is_per_variable_and_global_clipnorm_is_torch_clip_grad_norm() -> None:
    """On real gradients of a small LSTM model: Keras's clipnorm against g * min(1, 1/||g||)
    per variable, global_clipnorm against torch's clip_grad_norm_ over all of them."""
    model = keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            keras.layers.Embedding(20, 4),
            keras.layers.LSTM(6),
            keras.layers.Dense(20, activation="softmax"),
        ]
    )
    tokens = torch.randint(0, 20, (8, T), generator=torch.Generator().manual_seed(0))
    target = torch.arange(8) % 20
    bk.l3_loss(target, reduction="sum")(model(tokens)).backward()
    variables = model.trainable_variables
    grads = [v.value.grad.detach().clone() for v in variables]
    norms = [float(g.norm()) for g in grads]
    assert max(norms) > 1 > min(norms)  # some clipped, some not
    for clip, expected in (
        ({"clipnorm": 1.0}, [g * min(1.0, 1.0 / n) for g, n in zip(grads, norms, strict=True)]),
        ({"global_clipnorm": 1.0}, None),
    ):
        before = [v.value.detach().clone() for v in variables]
        keras.optimizers.SGD(learning_rate=1.0, **clip).apply_gradients(
            zip(grads, variables, strict=True)
        )
        applied = [b - v.value.detach() for b, v in zip(before, variables, strict=True)]
        if expected is None:
            params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            nn.utils.clip_grad_norm_(params, 1.0)
            expected = [p.grad for p in params]  # type: ignore[misc]
        for a, e in zip(applied, expected, strict=True):
            torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-7)
    measured, verdict, conditions = bk.audit("clipnorm semantics")
    assert verdict == "does not hold" and "global_clipnorm" in conditions
    with pytest.raises(ValueError, match="what='nope'"):
        bk.audit("nope")


def test_other_backends_are_refused() -> None:
    """KERAS_BACKEND set to another backend, and keras already imported with another one (a
    stand-in module: no second backend is installed)."""
    code = (
        "import sys, types\n"
        "from bpttlab._util import ConfigError\n"
        "try:\n"
        "    import bpttlab.integrations.keras\n"
        "except ConfigError as e:\n"
        "    print('env:', e)\n"
        "sys.modules['keras'] = types.SimpleNamespace(\n"
        "    backend=types.SimpleNamespace(backend=lambda: 'tensorflow'))\n"
        "try:\n"
        "    import bpttlab.integrations.keras\n"
        "except ConfigError as e:\n"
        "    print('imported:', e)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, cwd=ROOT)  # fmt: skip
    assert "env: KERAS_BACKEND='jax' is not allowed: must be 'torch'" in res.stdout, res.stderr
    assert "imported: KERAS_BACKEND='tensorflow' is not allowed" in res.stdout, res.stderr


def test_cli_diagnoses_the_example_model() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bpttlab", "diagnose", "--model", "examples/keras_l3.py:factory",
         "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    import json

    doc = json.loads(res.stdout)
    assert doc["length"] == 50 and doc["method"] == "cell-hook"
    assert doc["diagnosis"]["verdict"] == "vanishing"
    assert doc["diagnosis"]["facts"] == {"kind": "lstm", "forget_bias": 1.0}
