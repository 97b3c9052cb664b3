"""Gradient profiles of Keras 3 models on the torch backend (the keras extra).

    import os; os.environ["KERAS_BACKEND"] = "torch"    # before keras is imported
    from bpttlab.integrations import keras as bk

    prof = bk.gradient_profile(model, x, loss_fn)       # ||dL/dh_t||, t = 0..T
    diagnosis = bk.diagnose(model, x, loss_fn)

Keras 3 on the torch backend runs a model as torch modules and tensors, so bpttlab's cell probe
applies once the recurrent layer's steps are visible: the layer (``SimpleRNN``, ``LSTM`` or
``GRU``, found in the model or named by ``layer=``) calls ``cell.call(x_t, states)`` once per
step in Keras's generic RNN loop; during the profiled forward that call is routed through a torch
module (``KerasRecurrent.cell``) on which ``probe.gradient_profile`` puts its zero probes, so the
profile is exact (``dL/dp_t = dL/dh_t``). What is done about Keras's fused paths: ``LSTM`` and
``GRU`` with ``use_cudnn="auto"`` (the default) never call the cell (on CPU they run Keras's own
precomputed-input loop, on CUDA cuDNN), so for the profiled forward only the layer runs with
``use_cudnn=False``, Keras's generic loop with the same equations (digits may differ from the
fused path's in the last place; the parameter gradients of that one call are the loop's), and
``use_cudnn`` is restored afterwards. With ``unroll=False`` Keras calls the cell once more
before the loop, on x_1, to learn the output's shape; that call's result is thrown away and it
is not probed.

Precision: Keras 3.15's ``ops.matmul`` multiplies float64 tensors in float32 (its
``result_type`` maps 64-bit types to 32-bit ones, as JAX does by default), so a Keras model
built with ``dtype="float64"`` keeps float64 variables and elementwise arithmetic but carries
float32 rounding in every product: its profile's digits beyond about the seventh are Keras's
rounding, not the gradient's.

Only ``KERAS_BACKEND=torch`` works: importing this module sets it when it is unset and keras is
not imported yet, and raises ConfigError (field ``KERAS_BACKEND``) otherwise. Not supported:
``go_backwards``, ``Bidirectional``, stacked cells (``StackedRNNCells``) and ``stateful`` layers.

``build_l3_model`` is the L3 lesson's model and ``audit`` measures its two Keras claims
(``experiments/_claims_l3.py``: L3.6, L3.7).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from bpttlab._util import ConfigError


def _require_torch_backend() -> None:
    wanted = os.environ.get("KERAS_BACKEND")
    if "keras" in sys.modules:
        actual = sys.modules["keras"].backend.backend()
        if actual != "torch":
            why = (
                "must be 'torch': keras was imported with another backend; set KERAS_BACKEND=torch"
            )
            raise ConfigError("KERAS_BACKEND", actual, why + " before importing keras")
    elif wanted is None:
        os.environ["KERAS_BACKEND"] = "torch"
    elif wanted != "torch":
        raise ConfigError("KERAS_BACKEND", wanted, "must be 'torch' (bpttlab probes torch "
                          "tensors): set KERAS_BACKEND=torch")  # fmt: skip
    if importlib.util.find_spec("keras") is None:
        raise ConfigError("keras", None, "is not installed: pip install 'bpttlab[keras]'")


_require_torch_backend()

import keras  # noqa: E402  (the keras extra, after the backend check)

from bpttlab.diagnosis import Diagnosis, diagnose_profile  # noqa: E402
from bpttlab.probe import Profile  # noqa: E402
from bpttlab.probe import gradient_profile as _torch_profile  # noqa: E402
from bpttlab.training import clip_gradients  # noqa: E402

__all__ = [
    "KerasRecurrent",
    "audit",
    "build_l3_model",
    "diagnose",
    "find_layer",
    "gradient_profile",
    "layer_facts",
    "l3_batch",
    "l3_loss",
]

RECURRENT = (keras.layers.SimpleRNN, keras.layers.LSTM, keras.layers.GRU)


def _layers(layer: Any) -> Iterator[Any]:
    for child in getattr(layer, "layers", []):
        yield child
        yield from _layers(child)


def find_layer(model: Any) -> Any:
    """The one ``SimpleRNN``/``LSTM``/``GRU`` layer of ``model`` (itself, if it is one)."""
    if isinstance(model, RECURRENT):
        return model
    found = [layer for layer in _layers(model) if isinstance(layer, RECURRENT)]
    if len(found) != 1:
        names = ", ".join(layer.name for layer in found) or "none"
        raise ConfigError("layer", None, f"the model holds {len(found)} SimpleRNN/LSTM/GRU layers "
                          f"({names}): pass layer=<the one to profile>")  # fmt: skip
    return found[0]


class _CellShim(nn.Module):
    """``forward(x_t, state)`` runs the Keras cell's ``call`` for one step; ``state`` and the
    return value are h, or the tuple (h, c): what ``probe``'s cell hooks expect."""

    def __init__(self, call: Callable[..., Any]) -> None:
        super().__init__()
        self._call = call

    def forward(self, x_t: Tensor, state: Any, **kwargs: Any) -> Any:
        states = list(state) if isinstance(state, tuple) else [state]
        _, new = self._call(x_t, states, **kwargs)
        new = list(new) if isinstance(new, list | tuple) else [new]
        return tuple(new) if len(new) > 1 else new[0]


class KerasRecurrent(nn.Module):
    """A torch module that runs a Keras model with one recurrent layer's steps routed through
    ``self.cell``, for ``probe.gradient_profile(adapter, x, loss_fn, cell=adapter.cell)`` (and
    for ``bpttlab diagnose --model FILE:FACTORY``, whose factory may return it).

    Arguments:
        model: a Keras model (or layer) on the torch backend.
        layer: its SimpleRNN/LSTM/GRU to profile; default: the only one.
        prepare: maps the ``x`` given to ``forward`` to the model's input (e.g. floats to
            token ids); default: the identity.
    """

    def __init__(self, model: Any, layer: Any = None,
                 prepare: Callable[[Tensor], Any] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        self.layer = find_layer(model) if layer is None else layer
        if not isinstance(self.layer, RECURRENT):
            raise ConfigError("layer", type(self.layer).__name__, "must be a keras SimpleRNN, "
                              "LSTM or GRU layer")  # fmt: skip
        for flag in ("go_backwards", "stateful"):
            if getattr(self.layer, flag, False):
                raise ConfigError("layer", self.layer.name, f"{flag}=True is not supported")
        self.prepare = prepare
        self.cell = _CellShim(self.layer.cell.call)

    def bpttlab_facts(self) -> dict[str, Any]:
        """The layer's facts for ``diagnosis.inspect_model`` (:func:`layer_facts`)."""
        return layer_facts(self.layer)

    def forward(self, x: Tensor) -> Any:
        inputs = self.prepare(x) if self.prepare is not None else x
        with self._routed():
            return self.model(inputs)

    @contextlib.contextmanager
    def _routed(self) -> Iterator[None]:
        """Route ``cell.call`` through ``self.cell`` (skipping Keras's shape call) and turn
        ``use_cudnn`` off, for one forward; both restored on exit."""
        layer, cell = self.layer, self.layer.cell
        skip = [not layer.unroll]  # unroll=False: the first call only learns the output shape
        shim, original = self.cell, cell.call

        def call(inputs: Tensor, states: Any, *args: Any, **kwargs: Any) -> Any:
            if skip[0]:
                skip[0] = False
                return original(inputs, states, *args, **kwargs)
            state = tuple(states) if len(states) > 1 else states[0]
            new = shim(inputs, state, *args, **kwargs)
            new_states = list(new) if isinstance(new, tuple) else [new]
            return new_states[0], new_states

        saved_cudnn = getattr(layer, "use_cudnn", None)
        cell.call = call  # an instance attribute: Keras's Layer.__call__ finds it first
        if saved_cudnn is not None:
            layer.use_cudnn = False
        try:
            yield
        finally:
            del cell.call
            if saved_cudnn is not None:
                layer.use_cudnn = saved_cudnn


def gradient_profile(
    model: Any, x: Any, loss_fn: Callable[[Any], Tensor], *, layer: Any = None,
    prepare: Callable[[Tensor], Any] | None = None, keep_grads: bool = False,
) -> Profile:  # fmt: skip
    """``||dL/dh_t||``, t = 0..T, of ``loss_fn(model(x))`` at ``layer``'s hidden state (method
    "cell-hook"); every variable's torch ``.grad`` accumulates as ``loss.backward()`` would."""
    adapter = KerasRecurrent(model, layer, prepare)
    return _torch_profile(adapter, x, loss_fn, cell=adapter.cell, keep_grads=keep_grads)


def layer_facts(layer: Any) -> dict[str, Any]:
    """What ``diagnosis.inspect_model`` reads from a torch module, read from a Keras
    SimpleRNN/LSTM/GRU layer: ``kind``, and ``activation`` and ``spectral_radius`` (of the
    recurrent kernel) for SimpleRNN, ``forget_bias`` (mean of the f gate's bias) for LSTM."""
    layer = find_layer(layer)
    cell = layer.cell
    if isinstance(layer, keras.layers.LSTM):
        units = cell.units
        bias = getattr(cell, "bias", None)  # Keras orders the gates i, f, c, o
        fb = (
            0.0
            if bias is None
            else float(torch.as_tensor(bias.value).detach()[units : 2 * units].mean())
        )
        return {"kind": "lstm", "forget_bias": fb}
    if isinstance(layer, keras.layers.GRU):
        return {"kind": "gru"}
    w = torch.as_tensor(cell.recurrent_kernel.value).detach().double()
    activation = getattr(cell.activation, "__name__", str(cell.activation))
    radius = float(torch.linalg.eigvals(w).abs().max())
    return {"kind": "rnn", "activation": activation, "spectral_radius": radius}


def diagnose(model: Any, x: Any, loss_fn: Callable[[Any], Tensor], **kw: Any) -> Diagnosis:
    """:func:`gradient_profile` then ``diagnosis.diagnose_profile``, with the layer's facts
    (:func:`layer_facts`) for the advice."""
    layer = kw.get("layer") or find_layer(model)
    return diagnose_profile(gradient_profile(model, x, loss_fn, **kw), facts=layer_facts(layer))


# ---------------------------------------------------------------- the L3 lesson's model
def build_l3_model(
    dtype: str = "float32", seed: int = 0, vocab: int = 10000, length: int = 50,
    embed: int = 128, units: int = 128,
) -> Any:  # fmt: skip
    """The study note's model: ``Embedding(10000, 128)`` over 50 tokens, ``LSTM(128)``,
    ``Dense(10000, softmax)``, compiled with ``Adam(clipnorm=1.0)`` and sparse categorical
    cross-entropy. Keras's default initialisers, each seeded (``seed``, ``seed + 1``, ...), so
    that no global random state is read or changed."""
    init = keras.initializers
    model = keras.Sequential([
        keras.Input((length,), dtype="int32"),
        keras.layers.Embedding(vocab, embed, dtype=dtype,
                               embeddings_initializer=init.RandomUniform(-0.05, 0.05, seed=seed)),
        keras.layers.LSTM(units, dtype=dtype,
                          kernel_initializer=init.GlorotUniform(seed=seed + 1),
                          recurrent_initializer=init.Orthogonal(seed=seed + 2)),
        keras.layers.Dense(vocab, activation="softmax", dtype=dtype,
                           kernel_initializer=init.GlorotUniform(seed=seed + 3)),
    ])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(clipnorm=1.0),
                  loss="sparse_categorical_crossentropy")  # fmt: skip
    return model


def l3_batch(batch: int = 32, length: int = 50, vocab: int = 10000,
             seed: int = 0) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Uniform random tokens (B, T) and next-token targets (B,), from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch, length), generator=gen)  # (B, T)
    return tokens, torch.randint(0, vocab, (batch,), generator=gen)  # (B,)


def l3_loss(target: Tensor, reduction: str = "sum_over_batch_size") -> Callable[[Any], Tensor]:
    """The compiled loss, sparse categorical cross-entropy of the softmax output (B, V)."""
    fn = keras.losses.SparseCategoricalCrossentropy(reduction=reduction)
    return lambda probs: fn(target, probs)


# ---------------------------------------------------------------- the claims L3.6 and L3.7
def audit(what: str) -> tuple[str, str, str]:
    """Measure one Keras claim of the L3 study note: ``"clipnorm semantics"`` (L3.6) or
    ``"the L3 model"`` (L3.7). Returns (measured, verdict, conditions); the verdict comes from
    an untrained model in float64 with fixed seeds, so it is the same on any CPU."""
    if what == "clipnorm semantics":
        return _clipnorm_semantics()
    if what == "the L3 model":
        return _l3_model()
    raise ConfigError("what", what, "choose 'clipnorm semantics' or 'the L3 model'")


def _clip_like_training(grads: list[Tensor], rule: str, threshold: float) -> list[Tensor]:
    """``training.clip_gradients`` (what ``train`` does) applied to copies of ``grads``."""
    params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    clip_gradients(params, rule, threshold)
    return [p.grad for p in params]  # type: ignore[misc]


def _keras_applies(grads: list[Tensor], variables: list[Any], **clip: float) -> list[Tensor]:
    """The gradient Keras's optimiser applies after its clipping: the update of
    ``SGD(learning_rate=1, **clip)`` (clipping is BaseOptimizer's, shared with Adam)."""
    before = [v.value.detach().clone() for v in variables]
    opt = keras.optimizers.SGD(learning_rate=1.0, **clip)
    opt.apply_gradients(zip([g.clone() for g in grads], variables, strict=True))
    applied = [b - v.value.detach() for b, v in zip(before, variables, strict=True)]
    with torch.no_grad():
        for v, b in zip(variables, before, strict=True):
            v.assign(b)
    return applied


def _adam_first_moment(grads: list[Tensor], variables: list[Any]) -> list[Tensor]:
    """What ``Adam(clipnorm=1.0, beta_1=0)`` stores as its first moment after one step: the
    clipped gradient itself (beta_1 = 0 keeps it unscaled; the clipping does not depend on it)."""
    opt = keras.optimizers.Adam(learning_rate=0.0, beta_1=0.0, clipnorm=1.0)
    opt.build(variables)
    opt.apply_gradients(zip([g.clone() for g in grads], variables, strict=True))
    moments = {v.path: v for v in opt.variables if v.path.endswith("_momentum")}
    return [moments[f"{opt.name}/{v.path.replace('/', '_')}_momentum"].value.detach()
            for v in variables]  # fmt: skip


def _norm(gs: list[Tensor]) -> float:
    return float(torch.stack([g.double().norm() for g in gs]).norm())


def _rel(a: list[Tensor], b: list[Tensor]) -> float:
    return max(float((x - y).norm() / y.norm()) for x, y in zip(a, b, strict=True) if y.norm() > 0)


def _clipnorm_semantics() -> tuple[str, str, str]:
    model = build_l3_model("float64", seed=0)
    tokens, target = l3_batch(seed=0)
    variables = list(model.trainable_variables)
    # summed, not averaged, over the batch, so that the gradients exceed the threshold of 1
    l3_loss(target, reduction="sum")(model(tokens)).backward()
    grads = [v.value.grad.detach().clone() for v in variables]
    per_var = [float(g.norm()) for g in grads]
    clipnorm = _keras_applies(grads, variables, clipnorm=1.0)
    global_ = _keras_applies(grads, variables, global_clipnorm=1.0)
    adam = _adam_first_moment(grads, variables)
    factors = [float(c.norm()) / n for c, n in zip(clipnorm, per_var, strict=True)]
    g_factors = [float(c.norm()) / n for c, n in zip(global_, per_var, strict=True)]
    above = sum(n > 1 for n in per_var)
    var_norm, glob_norm = _clip_like_training(grads, "variable-norm", 1.0), \
        _clip_like_training(grads, "norm", 1.0)  # fmt: skip
    d_var, d_glob, d_adam = _rel(clipnorm, var_norm), _rel(global_, glob_norm), _rel(adam, clipnorm)
    measured = (
        f"L3 model (untrained, float64 variables), {len(variables)} variables, gradient norms "
        f"{', '.join(f'{n:.3g}' for n in per_var)} (global {_norm(grads):.3g}); "
        f"clipnorm=1.0 (what Adam(clipnorm=1.0) applies): each variable scaled by its own factor "
        f"({min(factors):.3g} to {max(factors):.3g}), largest variable norm "
        f"{max(float(c.norm()) for c in clipnorm):.4g}, global norm {_norm(clipnorm):.3g}; "
        f"global_clipnorm=1.0: one factor {g_factors[0]:.4g} for all, global norm "
        f"{_norm(global_):.4g}; clipnorm = bpttlab --clip variable-norm (rel. diff {d_var:.1e}), "
        f"global_clipnorm = torch clip_grad_norm_ = bpttlab --clip norm (rel. diff {d_glob:.1e}; "
        f"torch divides by norm + 1e-6); Adam's first moment = clipnorm's gradient "
        f"(rel. diff {d_adam:.1e})"
    )  # fmt: skip
    # the note's rule fails when the clipped gradient's norm is not 1 and its variables were
    # scaled by different factors; a gradient with no variable above 1 would not tell
    per_variable = (above >= 1 and _norm(grads) > 1 and max(factors) - min(factors) > 1e-3
                    and _norm(clipnorm) > 1 + 1e-6 and max(d_var, d_adam) < 1e-5)  # fmt: skip
    # 1e-6: Keras computes the norms in float32 (see the module docstring)
    global_rule = abs(_norm(global_) - 1) < 1e-6 and max(g_factors) - min(g_factors) < 1e-9
    holds = not per_variable and global_rule and d_glob < 1e-5
    verdict = "does not hold" if per_variable and global_rule else "holds" if holds \
        else "inconclusive"  # fmt: skip
    conditions = (
        "what the note describes (one norm clipped to 1, every element scaled by the same "
        "factor) is global_clipnorm=1.0, PyTorch's clip_grad_norm_ (bpttlab --clip norm); "
        "clipnorm=1.0 clips each variable's gradient to norm 1 on its own (bpttlab --clip "
        "variable-norm), so the whole gradient keeps a norm up to sqrt(number of variables) and "
        "its direction changes"
    )
    return measured, verdict, conditions


def _l3_model() -> tuple[str, str, str]:
    model = build_l3_model("float64", seed=0)
    tokens, target = l3_batch(seed=0)
    prof = gradient_profile(model, tokens, l3_loss(target))
    d = diagnose_profile(prof, facts=layer_facts(model))
    horizon = f"{d.horizon} steps back" if d.horizon is not None else f"beyond {prof.T}"
    rate = "none" if d.rate_per_step is None else f"{d.rate_per_step:+.3f} per step " \
        f"(x{math.exp(d.rate_per_step):.3g})"  # fmt: skip
    measured = (
        f"untrained, float64 variables (Keras multiplies in float32), 32 random sequences of "
        f"T={prof.T} tokens: verdict {d.verdict}, "
        f"||dL/dh_0|| / ||dL/dh_T|| = {d.ratio:.3g}, decay rate {rate}, horizon (to 1e-3 of "
        f"the readout's gradient) {horizon}"
    )
    verdict = {"healthy": "holds", "vanishing": "does not hold",
               "exploding": "does not hold"}[d.verdict]  # fmt: skip
    conditions = (
        "at its initialisation (Keras's defaults: orthogonal recurrent kernel, forget-gate bias "
        "1) and length 50; fit means h_0 still gets at least 1e-3 of the readout's gradient; "
        "training moves the weights and with them the profile"
    )
    return measured, verdict, conditions
