"""Per-step gradient norms ``||dL/dh_t||``, t = 0..T, through fused kernels and custom cells.

Indexing (DESIGN.md): ``h_0`` is the initial state, ``h_t`` the state after input ``x_t``; a
profile has T+1 entries and ``||.||`` is the Frobenius norm over (batch, hidden) of ``dL/dh_t``,
what ``h0.grad.norm()`` prints. A reverse direction is indexed by time as well: its entry t
(t = 1..T) is the state whose last input was ``x_t`` (its output at position t) and its entry 0
is its initial state (fed before ``x_T``), so both directions line up with the output sequence.

Methods (``method="auto"`` picks one by :func:`choose_method`; CPU costs:
benchmarks/bench_probe.py):

- ``fused`` (``nn.RNN``, ``nn.LSTM``; CPU and CUDA): the fused kernel is fed ``[x_t, p_t]`` with
  a zero probe ``p_t`` and the input weight extended by a detached copy of ``W_hh``, so it
  computes ``z_t = W_ih x_t + W_hh (h_{t-1} + p_t) + b``, the same numbers as before.
  ``p.grad[t]`` is the recurrent part of ``dL/dh_{t-1}``; adding the direct part (the retained
  grads of the layer's output and of ``h_n``) gives the total. One kernel call per layer (each
  layer has its own probe); the cost is a wider input GEMM and the kernel's input gradient. An
  LSTM's ``c_t`` stays inside the kernel: ``cell_norms`` is None.
- ``unrolled`` (``nn.GRU``, RNN and LSTM): one step at a time, ``h_t + p_t``; for RNN one
  input product for all steps then ``f(addmm(.., h, W_hh^T))`` per step, for GRU
  ``torch._VF.gru_cell`` per step, and for LSTM an explicit step with a probe on ``c_t``
  before ``h_t = o_t tanh(c_t)``, so it also gives ``dL/dc_t``. GRU cannot use the
  fused trick: with ``a_n = W_in x + b_in + r_t * (W_hn h_{t-1} + b_hn)`` and
  ``h_t = (1 - z_t) n_t + z_t h_{t-1}``, the true ``dL/dh_{t-1}`` is
  ``W_hr^T da_r + W_hz^T da_z + W_hn^T (r_t * da_n) + z_t * dL/dh_t``, while an input-side
  probe reads ``W_hr^T da_r + W_hz^T da_z + W_hn^T da_n``: r_t is on the wrong side and the
  ``z_t h_{t-1}`` path is missed. On CPU ``nn.GRU`` runs the same per-step ops as this loop
  (only LSTM goes to oneDNN), so the loop costs about the same; on CUDA it is slower than cuDNN.
- ``replay`` (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``; CPU and CUDA): the module's own kernel runs
  untouched, one call per layer, and after the backward the recursion
  ``dL/dh_{t-1} = dL/dout_{t-1} + J_t^T dL/dh_t`` is replayed from the retained output
  gradients (``_probe_replay.py``, GRU included, LSTM with ``dL/dc_t``). The forward and
  backward are bitwise those of an unprobed call (dropout masks included): what
  ``monitor.GradientFlowMonitor`` uses in a training loop. It adds about a third of a plain
  forward + backward.
- ``cell-hook`` (bpttlab cell models; ``cell=`` for a user's module): a forward hook adds a zero
  probe to the cell's output at each call (``dL/dp_t = dL/dh_t`` exactly) and a pre-hook adds
  one to the state passed to the first call (``h_0``). ``nn.LSTMCell`` also gives ``dL/dc_t``
  (see ``_CellProbe``); other cells returning tuples give ``dL/dh_t`` of the first entry only.
  ``h + 0 = h``: the forward and backward are bitwise unchanged.

Every method is exact: they differ from one another, and from the unprobed kernel, only by
floating-point rounding. ``attach`` / ``Probes`` split a profile into its two halves (probes on
before the forward, read after the backward) for a loop that runs the forward and backward
itself.

Between layers, dropout (training mode, ``dropout > 0``) is applied with ``F.dropout``, one call
per layer as the kernel makes it: on CPU the same draws, hence the same masks
(tests/test_monitor.py checks it through replay's bitwise gradients). PackedSequence input is not
supported.

The loss is backpropagated once: every parameter's ``.grad`` is what ``loss.backward()`` would
have given (accumulated onto any existing ``.grad``, as ``backward`` does). Norms are taken in
float64 (float64 rows under 1e-150 rescaled by their largest entry first), so they never
underflow. Hooks and patches are removed on success and on any exception.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bpttlab._probe_cells import CellProbe
from bpttlab._probe_fused import FusedProbe
from bpttlab._util import check_choice, jsonable
from bpttlab.cells import CellStack

__all__ = ["METHODS", "Probes", "Profile", "attach", "choose_method", "find_recurrent",
           "gradient_profile"]  # fmt: skip

METHODS = ("auto", "fused", "unrolled", "replay")
_Grads = dict[tuple[int, int], Tensor]
_Pairs = dict[tuple[int, int], tuple[Tensor, Tensor | None]]  # (dL/dh, dL/dc or None)


@dataclass
class Profile:
    """Gradient norms through time. Shapes: T+1 steps, L layers, D directions.

    Attributes:
        norms: (T+1,) float64, ``||dL/dh_t||`` of the top layer, directions combined
            (``sqrt(sum_d ||.||^2)``, the norm over the concatenated output).
        log10_norms: (T+1,) ``log10(norms)``; ``-inf`` where the gradient is exactly zero.
        per_layer: (L, D, T+1) float64, per layer and direction.
        loss: the loss value.
        float32_underflow_at: the largest t at which the top layer's gradient, cast to float32
            (the identity for a float32 run), is zero in every entry although it is non-zero at
            some later step: from there back, float32 carries no gradient at all (entries below
            ~7e-46 round to 0; below 1.2e-38 they are already subnormal). None if never.
        cell_norms: (T+1,) ``||dL/dc_t||`` of an LSTM (unrolled or cell-hook), else None.
        cell_per_layer: (L, D, T+1), or None.
        method: "fused", "unrolled" or "cell-hook".
        dtype: dtype of the gradients, e.g. "float32".
        grads: with ``keep_grads=True``, ``{(layer, direction): dL/dh (T+1, B, H)}``.
    """

    norms: np.ndarray
    log10_norms: np.ndarray
    per_layer: np.ndarray
    loss: float
    float32_underflow_at: int | None
    cell_norms: np.ndarray | None = None
    cell_per_layer: np.ndarray | None = None
    method: str = ""
    dtype: str = ""
    grads: _Grads | None = field(default=None, repr=False, compare=False)

    @property
    def T(self) -> int:
        return len(self.norms) - 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: arrays as nested lists, -inf/nan as None; ``grads`` left out."""
        arrays = ("norms", "log10_norms", "per_layer", "cell_norms", "cell_per_layer")
        return {
            "T": self.T,
            "loss": self.loss,
            "method": self.method,
            "dtype": self.dtype,
            "float32_underflow_at": self.float32_underflow_at,
            **{k: jsonable(getattr(self, k)) for k in arrays},
        }

    def figure(self) -> Any:
        """``||dL/dh_t||`` against t on a log axis: a plotly figure (the report extra)."""
        from bpttlab.views.figures import profiles_figure

        return profiles_figure(
            [(f"{self.method} ({self.dtype})", list(self.norms))], f"gradient profile, T = {self.T}"
        )

    def _repr_html_(self) -> str:
        """Jupyter shows the figure."""
        from bpttlab.views.figures import notebook_html

        return notebook_html(self.figure())


# ---------------------------------------------------------------- choosing a method
# LSTM on CPU (benchmarks/bench_probe.py, torch 2.13, 2 cores): the fused probe rides on
# oneDNN's LSTM and adds about +25-80% (a wider input product and its gradients); the unrolled
# loop pays per step (Python, dispatch, autograd nodes, one-step-wide products), so it loses at
# T = 50 (2-3x against the fused probe's 1.5x) but wins where oneDNN's training-mode LSTM falls
# off a cliff: from about T = 160 a plain forward + backward costs 0.2-2 s more (B = 64,
# H = 128: 93 ms at T = 150, 0.70 s at T = 170, 1.6 s at T = 190), and the loop, which avoids
# oneDNN, runs at 0.75-1.3x of that plain call. A threshold, not a timing, so that the method
# (and the last bits of a profile) never depend on the machine's load.
_CPU_LSTM_UNROLLED_FROM_T = 160
_CPU_LSTM_UNROLLED_FROM_WORK = 2**19  # B * Hout * 4H, multiply-adds of one step's product


def choose_method(module: nn.RNNBase, x: Tensor) -> str:
    """The method ``method="auto"`` uses for ``module`` on the time-major input ``x`` (T, B, I):
    the fastest exact one by the cost model above.

    CPU: GRU "unrolled" (the fused probe is not exact for GRU, and CPU's nn.GRU runs per-step
    ops anyway); LSTM "unrolled" from T = 160 with enough work per step, else "fused"; RNN
    "unrolled" (one input product, then one ``addmm`` per step: faster than the fused probe at
    every size in bench_probe.py, and equal to it to rounding). CUDA (not measured yet): RNN
    and LSTM "fused" (cuDNN with the probe beside the input), GRU "replay" (cuDNN untouched
    and the recursion replayed: exact without the unrolled loop)."""
    mode = module.mode
    if x.device.type != "cpu":
        return "replay" if mode == "GRU" else "fused"
    if mode == "GRU":
        return "unrolled"
    if mode != "LSTM":
        return "unrolled"
    T, B, H = x.shape[0], x.shape[1], module.hidden_size
    Hout = getattr(module, "proj_size", 0) or H
    long_and_wide = (
        T >= _CPU_LSTM_UNROLLED_FROM_T and B * Hout * 4 * H >= _CPU_LSTM_UNROLLED_FROM_WORK
    )
    return "unrolled" if long_and_wide else "fused"


# ---------------------------------------------------------------- attaching probes
def find_recurrent(model: nn.Module) -> dict[str, Any]:
    """Where ``model`` carries h_t, as keyword arguments for :func:`attach`: ``{}`` for a bpttlab
    model or a bare nn.RNN/LSTM/GRU, ``{"rnn": m}`` for the one nn.RNN/LSTM/GRU (or bpttlab
    CellStack) inside a larger module, ``{"cell": m}`` for its one nn.RNNCell/LSTMCell/GRUCell.
    Raises ValueError naming ``rnn=`` and ``cell=`` when there is none, or more than one."""
    core = getattr(model, "core", None)
    if isinstance(model, nn.RNNBase) or isinstance(core, nn.RNNBase | CellStack):
        return {}
    found = [m for m in model.modules() if isinstance(m, nn.RNNBase | CellStack)]
    if len(found) == 1:
        return {"rnn": found[0]}
    cells = [m for m in model.modules() if isinstance(m, nn.RNNCellBase)]
    if not found and len(cells) == 1:
        return {"cell": cells[0]}
    what = f"{len(found)} nn.RNN/LSTM/GRU modules" if found else f"{len(cells)} RNN cells"
    raise ValueError(
        f"cannot tell which module of {type(model).__name__} carries h_t ({what}): pass "
        "rnn=<its nn.RNN/LSTM/GRU> or cell=<the module it calls once per step>"
    )


class Probes:
    """Probes attached to one model for one forward and backward (made by :func:`attach`).

    ``method`` is the method in use ("auto" is resolved at the forward, when the input's shape is
    known); :meth:`reached` tells whether a backward has reached the probes; :meth:`profile`
    reads them after that backward."""

    def __init__(self, L: int, D: int, collect: Callable[[], _Pairs],
                 reached: Callable[[], bool], resolved: Callable[[], str]) -> None:  # fmt: skip
        self.L, self.D = L, D
        self._collect, self._reached, self._resolved = collect, reached, resolved

    @property
    def method(self) -> str:
        return self._resolved()

    def reached(self) -> bool:
        return self._reached()

    def profile(self, loss: float = math.nan, keep_grads: bool = False) -> Profile:
        """The profile of the forward and backward that ran while attached."""
        return _build(self._collect(), self.L, self.D, loss, self.method, keep_grads)


@contextlib.contextmanager
def attach(
    model: nn.Module,
    *,
    rnn: nn.Module | None = None,
    cell: nn.Module | Sequence[nn.Module] | None = None,
    method: str = "auto",
) -> Iterator[Probes]:
    """Attach probes to ``model`` (or its ``rnn``/``cell``, see :func:`gradient_profile`) for the
    next forward; yield a :class:`Probes`; remove every hook and patch on exit, even after an
    exception. Run the forward and the backward inside the ``with``; read ``profile()`` after
    it. Nothing else changes: with ``method="replay"`` (or ``cell=``) the forward and backward
    compute bitwise what they compute unprobed."""
    check_choice("method", method, METHODS)
    core: Any = getattr(model, "core", None)
    stack = rnn if isinstance(rnn, CellStack) else core if rnn is None else None
    if cell is not None or isinstance(stack, CellStack):
        if method in ("fused", "replay"):
            raise ValueError(
                f"method={method!r} needs an nn.RNN/LSTM/GRU; cells are probed by hooks"
            )
        if cell is not None:
            single = isinstance(cell, nn.Module) and not isinstance(cell, nn.ModuleList)
            cells: list[nn.Module] = [cell] if single else list(cell)  # type: ignore[list-item,arg-type]
            L, D, table = len(cells), 1, {(i, 0): c for i, c in enumerate(cells)}
        else:
            assert isinstance(stack, CellStack)
            L, D = stack.num_layers, stack.num_directions
            table = {(i // D, i % D): c for i, c in enumerate(stack.cells)}
        probes: dict[tuple[int, int], CellProbe] = {}
        try:
            for key, c in table.items():
                probes[key] = CellProbe(c, reverse=key[1] == 1)
            yield Probes(
                L, D, lambda: {k: p.assemble() for k, p in probes.items()},
                lambda: any(p.reached() for p in probes.values()), lambda: "cell-hook",
            )  # fmt: skip
        finally:
            for p in probes.values():
                for handle in p.handles:
                    handle.remove()
        return
    module = rnn if rnn is not None else model if isinstance(model, nn.RNNBase) else core
    if not isinstance(module, nn.RNNBase):
        raise ValueError(
            f"cannot probe {type(model).__name__}: pass a bpttlab model or nn.RNN/LSTM/GRU, or "
            "rnn=<its nn.RNN/LSTM/GRU submodule>, or cell=<the module it calls once per step>"
        )
    probe = FusedProbe(module, method, choose_method)
    saved = module.__dict__.get("forward")
    module.forward = probe.forward  # instance attribute shadows the class's forward
    try:

        def collect() -> _Pairs:
            if probe.calls != 1:
                raise ValueError(f"the probed {module.mode} module was called {probe.calls} times")
            return {k: f() for k, f in probe.slots.items()}

        yield Probes(probe.L, probe.D, collect, probe.reached, lambda: probe.method)
    finally:
        if saved is None:
            del module.forward
        else:
            module.forward = saved


def _norms(G: Tensor) -> np.ndarray:
    """(T+1, ...) -> (T+1,) float64 Frobenius norms that cannot underflow.

    float32 entries squared in float64 stay normal (>= 2e-90); float64 rows whose norm comes out
    below 1e-150 are recomputed after dividing by their largest entry."""
    g = (torch.view_as_real(G) if G.is_complex() else G).detach().flatten(1)  # (T+1, B*H)
    n = torch.linalg.vector_norm(g, dim=1, dtype=torch.float64)  # (T+1,)
    if g.dtype == torch.float64:
        tiny = torch.nonzero(n < 1e-150).flatten()
        if tiny.numel():
            rows = g[tiny]
            scale = rows.abs().amax(dim=1)
            safe = torch.where(scale > 0, scale, torch.ones_like(scale))
            n[tiny] = (rows / safe[:, None]).norm(dim=1) * scale
    return n.cpu().numpy()


_F32_ROUNDS_TO_ZERO = 2.0**-150  # half the smallest float32 subnormal: ties round to even (0)


def _float32_zero(G: Tensor, norms: np.ndarray) -> np.ndarray:
    """(T+1,) bool: the gradient at step t, cast to float32, is zero in every entry."""
    if G.dtype != torch.float64:  # float32 (or narrower): all zero iff the float64 norm is 0
        return norms == 0
    amax = torch.linalg.vector_norm(G.detach().flatten(1), ord=math.inf, dim=1)  # (T+1,)
    return (amax <= _F32_ROUNDS_TO_ZERO).cpu().numpy()


def _float32_underflow_at(zero: np.ndarray) -> int | None:
    """Largest t with an all-zero float32 gradient below a later non-zero one, else None."""
    nonzero = np.flatnonzero(~zero)
    if nonzero.size == 0:
        return None
    below = np.flatnonzero(zero[: nonzero[-1]])
    return int(below[-1]) if below.size else None


def gradient_profile(
    model: nn.Module,
    x: Tensor,
    loss_fn: Callable[[Any], Tensor],
    *,
    h0: Any = None,
    rnn: nn.RNNBase | None = None,
    cell: nn.Module | Sequence[nn.Module] | None = None,
    method: str = "auto",
    keep_grads: bool = False,
) -> Profile:
    """``||dL/dh_t||`` for t = 0..T of one forward and backward of ``loss_fn(model(x[, h0]))``.

    Arguments:
        model: a bpttlab model (``loss_fn`` gets ``(y, hs)``), a bare ``nn.RNN``/``nn.LSTM``/
            ``nn.GRU`` of any num_layers, batch_first, bidirectional, proj_size (``loss_fn``
            gets ``(output, h_n)`` or ``(output, (h_n, c_n))``), or any module: then pass
            ``rnn=`` (the nn.RNN/LSTM/GRU it calls once) or ``cell=`` (the module, or one per
            layer, that it calls once per step as ``cell(x_t, state)``) and ``loss_fn`` gets
            what ``model`` returns.
        x: the input, in whatever layout ``model`` takes; bpttlab models take (B, T, I).
        loss_fn: maps the model's output to a scalar loss.
        h0: passed as ``model(x, h0)`` when given.
        method: "auto" | "fused" | "unrolled" | "replay"; see the module docstring.
        keep_grads: keep ``dL/dh`` (T+1, B, H) per (layer, direction) in ``Profile.grads``.
    """
    with torch.enable_grad(), attach(model, rnn=rnn, cell=cell, method=method) as probes:
        output = model(x) if h0 is None else model(x, h0)
        loss = loss_fn(output)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(f"loss_fn must return a scalar tensor, got {type(loss).__name__}")
        loss.backward()
    return probes.profile(float(loss.detach()), keep_grads)


def _build(grads: _Pairs, L: int, D: int, loss: float, method: str, keep_grads: bool) -> Profile:
    """A Profile from ``{(layer, direction): (dL/dh (T+1, B, H), dL/dc or None)}``."""
    per_layer = np.stack([np.stack([_norms(grads[(i, d)][0]) for d in range(D)]) for i in range(L)])
    has_c = all(grads[(i, d)][1] is not None for i in range(L) for d in range(D))
    cell_per_layer = None
    if has_c:
        c_rows = [[_norms(grads[(i, d)][1]) for d in range(D)] for i in range(L)]  # type: ignore[arg-type]
        cell_per_layer = np.stack([np.stack(row) for row in c_rows])
    norms = functools.reduce(np.hypot, per_layer[-1])  # (T+1,)
    with np.errstate(divide="ignore"):
        log10 = np.log10(norms)
    top = [grads[(L - 1, d)][0] for d in range(D)]
    zero = np.logical_and.reduce([_float32_zero(G, per_layer[-1, d]) for d, G in enumerate(top)])
    return Profile(
        norms=norms,
        log10_norms=log10,
        per_layer=per_layer,
        loss=loss,
        float32_underflow_at=_float32_underflow_at(zero),
        cell_norms=functools.reduce(np.hypot, cell_per_layer[-1])
        if cell_per_layer is not None
        else None,
        cell_per_layer=cell_per_layer,
        method=method,
        dtype=str(top[0].dtype).removeprefix("torch."),
        grads={k: v[0] for k, v in grads.items()} if keep_grads else None,
    )
