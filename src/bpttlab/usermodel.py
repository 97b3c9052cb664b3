"""A user's own model for ``bpttlab diagnose``: loaded from a Python file or a TorchScript file.

``--model PATH.py:FACTORY`` *executes* ``PATH.py`` (as ``python PATH.py`` would, minus
``__main__``) and calls ``FACTORY(input_size, output_size)``; a TorchScript ``.pt`` file is a
program too (``torch.jit.load`` runs its code). Load only files you trust.

FACTORY returns a model, a ``(model, loss)`` pair, or a dict with ``model``, optional ``loss``
(``loss(output, target)``) and ``probe`` (``{"cell": ...}`` or ``{"rnn": ...}``, see
``probe.gradient_profile``). Everything the file prints goes to stderr, so ``--json`` stays one
document; an exception, ``sys.exit`` or a wrong return type is a ``ConfigError`` naming the
option (``model`` or ``batch``), never a traceback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bpttlab._util import ConfigError, check_memory

__all__ = [
    "UserModel",
    "auto_probe",
    "default_batch",
    "load_batch",
    "load_model",
    "run_user_code",
]

_FUSED = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


@contextlib.contextmanager
def _user_code(field_name: str, ref: str, doing: str) -> Iterator[None]:
    """Run a user's code: its prints go to stderr; any exception or exit becomes ConfigError."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except KeyboardInterrupt:
        raise
    except ConfigError:
        raise
    except SystemExit as exit_:
        raise ConfigError(field_name, ref, f"{doing} called sys.exit({exit_.code!r})") from None
    except BaseException as error:  # a user's file may raise anything at all
        first = (str(error).splitlines() or [""])[0]
        raise ConfigError(field_name, ref, f"{doing} raised {type(error).__name__}: {first}"
                          ) from None  # fmt: skip


def _load_object(ref: str, field_name: str) -> Any:
    """``path.py:name`` -> the object ``name`` defined in that file (executing the file)."""
    path, _, name = ref.rpartition(":")
    if not path or not name:
        raise ConfigError(field_name, ref, "PATH.py:NAME, e.g. examples/my_model.py:factory")
    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        raise ConfigError(field_name, ref, f"{path} is not an existing .py file")
    spec = importlib.util.spec_from_file_location(f"_bpttlab_user_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise ConfigError(field_name, ref, f"{path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    folder = str(file.resolve().parent)
    if folder not in sys.path:  # as `python PATH.py` does: modules beside the file import
        sys.path.insert(0, folder)
    with _user_code(field_name, ref, f"running {path}"):
        spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise ConfigError(field_name, ref, f"{path} defines no {name!r}")
    obj = getattr(module, name)
    if not callable(obj):
        raise ConfigError(field_name, ref, f"{name!r} in {path} is a {type(obj).__name__}, "
                          "not a function")  # fmt: skip
    return obj


def _load_torchscript(path: str) -> nn.Module:
    """A TorchScript ``nn.RNN``/``nn.LSTM``/``nn.GRU`` as the eager module with the same weights:
    a script module cannot be patched, and the probe must reach the fused kernel's inputs."""
    with warnings.catch_warnings(), _user_code("model", path, f"loading {path}"):
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
        try:
            scripted = torch.jit.load(path, map_location="cpu")
        except RuntimeError as e:
            why = f"not a TorchScript file (torch.jit.load: {(str(e).splitlines() or [''])[0]})"
            raise ConfigError("model", path, why) from None
    kind = getattr(scripted, "original_name", "")
    if kind not in _FUSED:
        raise ConfigError("model", path, "a TorchScript file must hold an nn.RNN, nn.LSTM or "
                          f"nn.GRU (this one holds {kind or 'something else'}); for your own "
                          "model, pass PATH.py:FACTORY")  # fmt: skip
    names = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional",
             "dropout")  # fmt: skip
    kw = {k: getattr(scripted, k) for k in names}
    if kind == "LSTM":
        kw["proj_size"] = scripted.proj_size
    if kind == "RNN":
        kw["nonlinearity"] = "relu" if scripted.mode == "RNN_RELU" else "tanh"
    eager = _FUSED[kind](**kw)
    try:
        eager.load_state_dict(scripted.state_dict())
    except RuntimeError as e:
        raise ConfigError("model", path, f"its weights do not fit an {kind} of its own sizes "
                          f"({(str(e).splitlines() or [''])[0]})") from None  # fmt: skip
    return eager


@dataclass
class UserModel:
    """A loaded model: ``loss(output, target)`` and ``probe`` keywords when the factory gave
    them; ``time_dim``: where time runs in x (0 for a bare time-first nn.RNN/LSTM/GRU)."""

    model: nn.Module
    loss: Callable[..., torch.Tensor] | None = None
    probe: dict[str, Any] = field(default_factory=dict)

    @property
    def time_dim(self) -> int:
        rnn = self.probe.get("rnn", self.model if isinstance(self.model, nn.RNNBase) else None)
        return 0 if rnn is not None and not rnn.batch_first else 1

    @property
    def input_size(self) -> int | None:
        """The input features the recurrent module expects, where it says."""
        rnn = self.probe.get("rnn", self.model if isinstance(self.model, nn.RNNBase) else None)
        return getattr(rnn, "input_size", None)


def auto_probe(model: nn.Module) -> dict[str, Any]:
    """Find the recurrent module to probe in a model the factory did not describe."""
    if isinstance(model, nn.RNNBase):
        return {}
    rnns = [m for m in model.modules() if isinstance(m, nn.RNNBase)]
    cells = [m for m in model.modules() if isinstance(m, nn.RNNCellBase)]
    if len(rnns) == 1:
        return {"rnn": rnns[0]}
    if len(cells) == 1:
        return {"cell": cells[0]}
    raise ConfigError("model", type(model).__name__, "cannot tell which module carries h_t; "
                      "return {'model': m, 'probe': {'cell': m.cell}} (or {'rnn': m.rnn}) from "
                      "the factory")  # fmt: skip


def load_model(ref: str, input_size: int, output_size: int) -> UserModel:
    """The model that ``--model`` names: a TorchScript ``.pt`` or ``PATH.py:FACTORY``."""
    if ref.endswith(".pt"):
        if not Path(ref).is_file():
            raise ConfigError("model", ref, "no such TorchScript file")
        return _finite(UserModel(_load_torchscript(ref)), ref)
    factory = _load_object(ref, "model")
    with _user_code("model", ref, "FACTORY(input_size, output_size)"):
        made = factory(input_size, output_size)
    if isinstance(made, dict):
        if "model" not in made:
            raise ConfigError("model", ref, "the factory's dict needs a 'model' entry")
        model, loss, probe = made["model"], made.get("loss"), made.get("probe")
    elif isinstance(made, tuple) and len(made) == 2:
        (model, loss), probe = made, None
    else:
        model, loss, probe = made, None, None
    if not isinstance(model, nn.Module):
        raise ConfigError("model", ref, f"the factory returned a {type(model).__name__}, not a "
                          "torch.nn.Module")  # fmt: skip
    if loss is not None and not callable(loss):
        raise ConfigError("model", ref, f"its loss is a {type(loss).__name__}, not a function")
    if probe is not None and (not isinstance(probe, dict) or not set(probe) <= {"rnn", "cell"}):
        raise ConfigError("model", ref, "its probe must be {'cell': module} or {'rnn': module}")
    return _finite(UserModel(model, loss, auto_probe(model) if probe is None else probe), ref)


def _finite(user: UserModel, ref: str) -> UserModel:
    bad = [n for n, p in user.model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise ConfigError("model", ref, f"its weights hold NaN or inf ({', '.join(bad[:3])})")
    return user


def load_batch(ref: str) -> tuple[torch.Tensor, Any]:
    """``--batch PATH.py:MAKE_BATCH``: ``MAKE_BATCH()`` returns x or (x, target)."""
    make = _load_object(ref, "batch")
    with _user_code("batch", ref, "MAKE_BATCH()"):
        made = make()
    x, target = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    if not isinstance(x, torch.Tensor):
        raise ConfigError("batch", ref, f"MAKE_BATCH() returned a {type(x).__name__}, not a "
                          "tensor x (or a pair (x, target))")  # fmt: skip
    if not x.is_floating_point():
        raise ConfigError("batch", ref, f"x has dtype {x.dtype}: the input must be floating point")
    if x.dim() not in (2, 3) or x.numel() == 0:
        raise ConfigError("batch", ref, f"x has shape {tuple(x.shape)}: give (B, T, I) or (T, I)")
    if not torch.isfinite(x).all():
        raise ConfigError("batch", ref, "x holds NaN or inf")
    return x, target


def run_user_code(field_name: str, ref: str, doing: str) -> contextlib.AbstractContextManager:
    """Run a user's model (forward, loss, backward) as user code: any error names the option."""
    return _user_code(field_name, ref, doing)


def default_batch(input_size: int, length: int, batch: int, seed: int) -> tuple[torch.Tensor, Any]:
    """A remember-the-first-input batch: x (B, T, I) noise with the class sign at step 0."""
    ratios = {"input_size": input_size, "length": length / 50, "batch_size": batch / 32}
    field_name = max(ratios, key=lambda k: ratios[k])
    value = {"input_size": input_size, "length": length, "batch_size": batch}[field_name]
    check_memory(field_name, value, 4.0 * batch * length * input_size * 8,
                 f"a batch of {batch} x {length} x {input_size}")  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 2, (batch,), generator=gen)  # (B,)
    x = 0.1 * torch.randn(batch, length, input_size, generator=gen)  # (B, T, I)
    x[:, 0, :] = (2.0 * target - 1.0)[:, None]
    return x, target
