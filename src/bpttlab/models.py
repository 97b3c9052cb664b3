"""Recurrent models behind one interface: ``build(name, input_size, hidden_size, output_size)``.

Every model maps a batch-first input ``x`` (B, T, input_size) and an optional initial state ``h0``
to ``(y, hs)``: ``y`` (B, T, output_size) is the readout at every step and ``hs`` (B, T, S) is the
top layer's hidden-state sequence, ``S = model.state_size`` (hidden_size x directions; 2 x
hidden_size for ``lru``, whose complex state is stored as [Re, Im]). Each model carries
``.name``, ``.config`` (a frozen dataclass with ``to_dict()``), ``.hidden_size`` and ``.core``:

- ``rnn`` (tanh, relu), ``irnn``, ``lstm``, ``gru``, ``attention-rnn``: ``core`` is the fused
  ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (batch_first), called once per forward;
- ``rnn`` (sigmoid), ``skip-rnn``, ``orthogonal-rnn``, ``lru``: ``core`` is a :class:`CellStack`
  whose cells are called once per step, so ``probe.gradient_profile`` reads them with hooks.

``h0`` follows PyTorch: (layers x directions, B, S), a ``(h0, c0)`` tuple for ``lstm``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from bpttlab._util import ConfigError, check_bool, check_choice, check_float, check_int
from bpttlab.cells import CellStack, ElmanCell, LRUCell
from bpttlab.heads import CausalAttentionReadout, LRUReadout, Readout
from bpttlab.specs import parse_spec
from bpttlab.theory import INITS

__all__ = [
    "ARCHS",
    "ARCH_OPTIONS",
    "AttentionRNNConfig",
    "CellStack",
    "ElmanCell",
    "LRUCell",
    "GRUConfig",
    "IRNNConfig",
    "LRUConfig",
    "LSTMConfig",
    "ModelConfig",
    "OrthogonalRNNConfig",
    "RNNConfig",
    "RecurrentModel",
    "SkipRNNConfig",
    "arch_config",
    "build",
    "config_from_dict",
    "from_config",
    "parse_arch",
]

ARCHS: tuple[str, ...] = (
    "rnn",
    "irnn",
    "lstm",
    "gru",
    "skip-rnn",
    "attention-rnn",
    "orthogonal-rnn",
    "lru",
)
ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")  # theory.ACTIVATIONS; + modrelu below
FORGET_BIASES = ("default", "zero", "one", "chrono")
_SIZES = ("input_size", "hidden_size", "output_size")


# ---------------------------------------------------------------- configs
@dataclass(frozen=True)
class ModelConfig:
    """Fields shared by every architecture; ``to_dict()`` adds ``arch`` for a JSON round trip."""

    input_size: int
    hidden_size: int
    output_size: int
    arch: ClassVar[str] = ""

    def __post_init__(self) -> None:
        """Every field checked by its type: ints >= 1, floats finite, bools, strings."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                check_int(f.name, value)
            elif f.type == "float":
                object.__setattr__(self, f.name, check_float(f.name, value))
            elif f.type == "bool":
                check_bool(f.name, value)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, **asdict(self)}


@dataclass(frozen=True)
class RNNConfig(ModelConfig):
    """Elman RNN ``h_t = f(W_hh h_{t-1} + W_ih x_t + b)``. ``gain`` scales the non-default inits.

    ``sigmoid`` has no fused kernel in PyTorch and runs on :class:`CellStack`.
    """

    activation: str = "tanh"
    init: str = "default"
    gain: float = 1.0
    num_layers: int = 1
    bidirectional: bool = False
    arch: ClassVar[str] = "rnn"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)


@dataclass(frozen=True)
class IRNNConfig(RNNConfig):
    """ReLU + identity recurrent init + zero biases (Le, Jaitly & Hinton 2015)."""

    activation: str = "relu"
    init: str = "identity"
    arch: ClassVar[str] = "irnn"


@dataclass(frozen=True)
class LSTMConfig(ModelConfig):
    """``forget_bias``: default (PyTorch's uniform init, mean 0), zero, one (Gers et al. 2000;
    Jozefowicz et al. 2015) or chrono (Tallec & Ollivier 2018: b_f ~ log U[1, chrono_tmax - 1],
    b_i = -b_f)."""

    forget_bias: str = "default"
    chrono_tmax: float = 100.0
    num_layers: int = 1
    bidirectional: bool = False
    arch: ClassVar[str] = "lstm"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("forget_bias", self.forget_bias, FORGET_BIASES)
        check_float("chrono_tmax", self.chrono_tmax, low=2, low_open=True)


@dataclass(frozen=True)
class GRUConfig(ModelConfig):
    num_layers: int = 1
    bidirectional: bool = False
    arch: ClassVar[str] = "gru"


@dataclass(frozen=True)
class SkipRNNConfig(ModelConfig):
    """``h_t = f(W_hh h_{t-1} + W_xh x_t + b) + h_{t-skip}``; ``h_{t-skip} = 0`` for t <= skip."""

    skip: int = 2
    activation: str = "tanh"
    init: str = "default"
    gain: float = 1.0
    arch: ClassVar[str] = "skip-rnn"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)


@dataclass(frozen=True)
class AttentionRNNConfig(ModelConfig):
    """Fused Elman RNN; the readout at step t attends causally over h_1..h_t."""

    activation: str = "tanh"
    num_layers: int = 1
    arch: ClassVar[str] = "attention-rnn"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("activation", self.activation, ("tanh", "relu"))


@dataclass(frozen=True)
class OrthogonalRNNConfig(ModelConfig):
    """W_hh = exp(A), A skew-symmetric, kept orthogonal during training (expRNN, Lezcano-Casado
    & Martinez-Rubio 2019); modReLU as in Arjovsky et al. 2016."""

    activation: str = "modrelu"
    arch: ClassVar[str] = "orthogonal-rnn"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("activation", self.activation, (*ACTIVATIONS, "modrelu"))


@dataclass(frozen=True)
class LRUConfig(ModelConfig):
    """Linear recurrent unit (Orvieto et al. 2023): eigenvalues ``r e^{i theta}`` with r in the
    ring [r_min, r_max] and theta in [0, max_phase]."""

    r_min: float = 0.9
    r_max: float = 0.999
    max_phase: float = 2 * math.pi
    arch: ClassVar[str] = "lru"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("r_min", self.r_min, low=0, high=1, high_open=True)
        check_float("r_max", self.r_max, low=self.r_min, high=1, low_open=True, high_open=True)
        check_float("max_phase", self.max_phase, low=0, high=2 * math.pi)


_CONFIGS: dict[str, type[ModelConfig]] = {
    c.arch: c
    for c in (
        RNNConfig,
        IRNNConfig,
        LSTMConfig,
        GRUConfig,
        SkipRNNConfig,
        AttentionRNNConfig,
        OrthogonalRNNConfig,
        LRUConfig,
    )
}


# ---------------------------------------------------------------- model
class RecurrentModel(nn.Module):
    """``forward(x (B, T, I), h0=None) -> (y (B, T, out), hs (B, T, S))``; see module docstring."""

    def __init__(self, name: str, config: ModelConfig, core: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.config = config
        self.hidden_size = config.hidden_size
        self.core = core
        self.head = head
        if isinstance(core, nn.RNNBase):
            self.num_layers = core.num_layers
            self.num_directions = 2 if core.bidirectional else 1
            self.state_size = core.hidden_size * self.num_directions
        else:
            assert isinstance(core, CellStack)
            self.num_layers, self.num_directions = core.num_layers, core.num_directions
            self.state_size = core.state_size * core.num_directions

    def forward(
        self, x: Tensor, h0: Tensor | tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        if x.dim() != 3:
            raise ValueError(f"x must be (B, T, input_size), got shape {tuple(x.shape)}")
        if isinstance(self.core, nn.RNNBase):
            hs, _ = self.core(x, h0)  # (B, T, S)
        else:
            hs = self.core(x, h0)  # (B, T, S)
        return self.head(hs, x), hs  # (B, T, out), (B, T, S)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


# ---------------------------------------------------------------- builders
@torch.no_grad()
def _init_recurrent(W_hh: Tensor, init: str, gain: float) -> None:
    """In place on a (H, H) matrix; ``gaussian`` has spectral radius ~gain (circular law)."""
    H = W_hh.shape[0]
    if init == "orthogonal":
        nn.init.orthogonal_(W_hh, gain=gain)
    elif init == "identity":
        W_hh.copy_(gain * torch.eye(H))
    elif init == "gaussian":
        W_hh.normal_(0.0, gain / math.sqrt(H))


def _fused_elman(c: RNNConfig | AttentionRNNConfig, bidirectional: bool) -> nn.RNN:
    rnn = nn.RNN(
        c.input_size,
        c.hidden_size,
        c.num_layers,
        nonlinearity=c.activation,
        batch_first=True,
        bidirectional=bidirectional,
    )
    init, gain = getattr(c, "init", "default"), getattr(c, "gain", 1.0)
    for name, p in rnn.named_parameters():
        if name.startswith("weight_hh"):
            _init_recurrent(p, init, gain)
        elif name.startswith("bias") and init == "identity":
            nn.init.zeros_(p)  # IRNN: biases start at zero (Le et al. 2015)
    return rnn


def _elman_stack(c: RNNConfig | SkipRNNConfig, layers: int, bidir: bool, skip: int) -> CellStack:
    D = 2 if bidir else 1
    cells = []
    for layer in range(layers):
        for _ in range(D):
            cell = ElmanCell(
                c.input_size if layer == 0 else D * c.hidden_size, c.hidden_size, c.activation
            )
            _init_recurrent(cell.W_hh.weight, c.init, c.gain)
            if c.init == "identity":
                nn.init.zeros_(cell.W_xh.bias)
            cells.append(cell)
    return CellStack(cells, layers, bidir, skip=skip)


@torch.no_grad()
def _set_forget_bias(lstm: nn.LSTM, c: LSTMConfig) -> None:
    """Gate order in PyTorch is (i, f, g, o); the forget bias is b_ih[H:2H] + b_hh[H:2H]."""
    H = c.hidden_size
    for name, b in lstm.named_parameters():
        if not name.startswith("bias") or c.forget_bias == "default":
            continue
        f, i = b[H : 2 * H], b[:H]
        if name.startswith("bias_hh") or c.forget_bias == "zero":
            f.zero_()
            if c.forget_bias == "chrono":
                i.zero_()
        elif c.forget_bias == "one":
            f.fill_(1.0)
        else:  # chrono (Tallec & Ollivier 2018, sec. 4): b_f ~ log U[1, T_max - 1], b_i = -b_f
            f.copy_(torch.log(torch.empty(H).uniform_(1.0, c.chrono_tmax - 1.0)))
            i.copy_(-f)


def from_config(config: ModelConfig) -> RecurrentModel:
    """Build the model a config describes (seed torch first for reproducible weights)."""
    c, name = config, config.arch
    if isinstance(c, RNNConfig) and c.activation in ("tanh", "relu"):  # rnn, irnn: fused
        core: nn.Module = _fused_elman(c, c.bidirectional)
    elif isinstance(c, RNNConfig):  # sigmoid and identity have no fused kernel
        core = _elman_stack(c, c.num_layers, c.bidirectional, skip=0)
    elif isinstance(c, LSTMConfig):
        core = nn.LSTM(
            c.input_size,
            c.hidden_size,
            c.num_layers,
            batch_first=True,
            bidirectional=c.bidirectional,
        )
        _set_forget_bias(core, c)
    elif isinstance(c, GRUConfig):
        core = nn.GRU(
            c.input_size,
            c.hidden_size,
            c.num_layers,
            batch_first=True,
            bidirectional=c.bidirectional,
        )
    elif isinstance(c, SkipRNNConfig):
        core = _elman_stack(c, 1, False, skip=c.skip)
    elif isinstance(c, AttentionRNNConfig):
        core = _fused_elman(c, bidirectional=False)
    elif isinstance(c, OrthogonalRNNConfig):
        cell = ElmanCell(c.input_size, c.hidden_size, c.activation)
        nn.init.orthogonal_(cell.W_hh.weight)
        # W_hh = matrix_exp(A - A^T): orthogonal after every optimiser step (expRNN)
        parametrizations.orthogonal(cell.W_hh, "weight", orthogonal_map="matrix_exp")
        core = CellStack([cell], 1, False)
    elif isinstance(c, LRUConfig):
        core = CellStack(
            [LRUCell(c.input_size, c.hidden_size, c.r_min, c.r_max, c.max_phase)], 1, False
        )
    else:
        raise ValueError(f"config of type {type(c).__name__} is not a bpttlab model config")
    S = c.hidden_size * (2 if getattr(c, "bidirectional", False) else 1)
    if isinstance(c, AttentionRNNConfig):
        head: nn.Module = CausalAttentionReadout(S, c.output_size)
    elif isinstance(c, LRUConfig):
        head = LRUReadout(c.hidden_size, c.input_size, c.output_size)
    else:
        head = Readout(S, c.output_size)
    return RecurrentModel(name, c, core, head)


# architecture -> {option: type}: what a spec such as "lstm:forget_bias=one" may set
ARCH_OPTIONS: dict[str, dict[str, type]] = {
    name: {f.name: {"int": int, "float": float, "bool": bool}.get(str(f.type), str)
           for f in fields(cls) if f.name not in _SIZES}
    for name, cls in _CONFIGS.items()
}  # fmt: skip


def arch_config(
    name: str, input_size: int, hidden_size: int, output_size: int, **options: Any
) -> ModelConfig:
    """The config of architecture ``name`` (one of :data:`ARCHS`) with ``options``, checked.

    Raises ConfigError naming the argument, the bad value and the allowed values.
    """
    check_choice("arch", name, ARCHS)
    allowed = ARCH_OPTIONS[name]
    for key, value in options.items():
        if key not in allowed:
            raise ConfigError(key, value, f"not one of {name}'s options: {', '.join(allowed)}")
    return _CONFIGS[name](input_size, hidden_size, output_size, **options)


def build(
    name: str, input_size: int, hidden_size: int, output_size: int, **options: Any
) -> RecurrentModel:
    """Build architecture ``name`` with ``options`` (see :func:`arch_config`); seed torch first
    for reproducible weights."""
    return from_config(arch_config(name, input_size, hidden_size, output_size, **options))


def config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """Inverse of ``ModelConfig.to_dict()``."""
    d = dict(d)
    arch = d.pop("arch", None)
    check_choice("arch", arch, ARCHS)
    return _CONFIGS[str(arch)](**d)


def parse_arch(spec: str, field: str = "arch") -> tuple[str, dict[str, Any]]:
    """``"lstm:forget_bias=one,num_layers=2"`` -> ``("lstm", {"forget_bias": "one",
    "num_layers": 2})``, checked in full: values converted by the type of the config field they
    set (``specs.parse_spec``), then checked by the architecture's config itself (choices,
    ranges, finiteness), so a bad spec fails before anything is built.

    Raises:
        ConfigError: for ``field`` (the spec), naming the option and what is allowed.
    """
    parsed = parse_spec(spec, ARCH_OPTIONS, field)
    try:
        arch_config(parsed.name, 1, 1, 1, **parsed.kwargs)
    except ConfigError as error:
        raise ConfigError(field, spec, f"option {error.field}={error.value!r}: {error.allowed}"
                          ) from None  # fmt: skip
    return parsed.name, parsed.kwargs
