"""From a gradient profile to a :class:`Diagnosis`: decay rate, horizon, verdict and advice.

Definitions (s = T - t is the number of steps back from the readout at T):

- ``rate_per_step``: least-squares slope of ``ln ||dL/dh_t||`` against s over the steps with a
  finite non-zero norm, in nats per step; negative means the gradient shrinks going back.
  ``factor_per_step = exp(rate_per_step)``. For a linear RNN with ``W = rho Q`` (Q orthogonal)
  and a loss at step T, ``||dL/dh_t|| = rho^(T-t) ||dL/dh_T||`` and the rate is ``ln rho``.
- ``horizon``: the first s at which the norm falls under ``1e-3 * norms[T]`` (None: not within
  T; ``horizon_fit = ln(1e-3) / rate``, the same from the rate). ``horizon_float32``: ``T - t``
  for the profile's ``float32_underflow_at`` (float32 gradient exactly zero);
  ``horizon_float32_fit = ln(1.4e-45 / norms[T]) / rate``: the s at which a decay at the fitted
  rate, starting from the readout's norm, reaches the smallest float32.
- ``verdict`` on ``ratio = norms[0] / norms[T]`` (the largest norm if norms[T] is 0):
  "vanishing" if ratio < 1e-3 (h_0 gets under a thousandth of the readout's gradient),
  "exploding" if ratio > 1e3 or a norm is not finite, otherwise "healthy". The ratio reads best
  on a last-step loss; with a loss at every step, norms[0] sums all the steps' contributions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bpttlab.cells import CellStack, ElmanCell, LRUCell
from bpttlab.probe import Profile, gradient_profile
from bpttlab.theory import MAX_DERIVATIVE

__all__ = [
    "EXPLODE_RATIO",
    "FLOAT32_SMALLEST",
    "VANISH_RATIO",
    "Advice",
    "Diagnosis",
    "diagnose",
    "diagnose_profile",
    "inspect_model",
]

VANISH_RATIO = 1e-3
EXPLODE_RATIO = 1e3
HORIZON_FRACTION = 1e-3
FLOAT32_SMALLEST = 1.4e-45  # smallest positive (subnormal) float32


@dataclass(frozen=True)
class Advice:
    """One recommendation and the measurements it follows from."""

    text: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class Diagnosis:
    """See the module docstring for each definition; ``facts`` come from :func:`inspect_model`."""

    verdict: str
    T: int
    ratio: float
    rate_per_step: float | None
    factor_per_step: float | None
    fit_r2: float | None
    horizon: int | None
    horizon_fit: float | None
    horizon_float32: int | None
    horizon_float32_fit: float | None
    advice: tuple[Advice, ...]
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; non-finite floats become None."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        d = {k: clean(getattr(self, k)) for k in self.__dataclass_fields__ if k != "advice"}
        d["facts"] = {k: clean(v) for k, v in self.facts.items()}
        d["advice"] = [a.to_dict() for a in self.advice]
        return d

    def figure(self) -> Any:
        """The fitted decay against steps back and the horizon: a plotly figure (report extra)."""
        from bpttlab.views.figures import diagnosis_figure

        return diagnosis_figure(self.to_dict())

    def _repr_html_(self) -> str:
        """Jupyter shows the figure."""
        from bpttlab.views.figures import notebook_html

        return notebook_html(self.figure(), [a.text for a in self.advice])


def _spectral_radius(W: Tensor) -> float:
    """rho(W); NaN for a matrix that is not finite (LAPACK must never see one: it may crash)."""
    W = W.detach().to(torch.float64)
    if not bool(torch.isfinite(W).all()):
        return math.nan
    return float(torch.linalg.eigvals(W).abs().max())


@torch.no_grad()
def inspect_model(
    model: nn.Module | None, rnn: nn.Module | None = None, cell: Any = None
) -> dict[str, Any]:
    """What the advice looks at: ``kind`` (rnn, lstm, gru, lru, custom), ``activation``,
    ``spectral_radius`` (largest over layers and directions of an Elman ``W_hh``; for lru the
    largest ``|lambda|``) and ``forget_bias`` (LSTM: mean of ``b_ih + b_hh`` over the f gate).
    A model with a ``bpttlab_facts()`` method (e.g. ``integrations.keras.KerasRecurrent``)
    describes itself: its dict is used as it is."""
    describe = getattr(model, "bpttlab_facts", None)
    if callable(describe):
        return dict(describe())
    core = getattr(model, "core", None)
    module = rnn if rnn is not None else model if isinstance(model, nn.RNNBase) else core
    facts: dict[str, Any] = {"kind": "custom"}
    if isinstance(module, nn.RNNBase):
        H = module.hidden_size
        weights = dict(module.named_parameters())
        if module.mode.startswith("RNN"):
            facts["kind"] = "rnn"
            facts["activation"] = "tanh" if module.mode == "RNN_TANH" else "relu"
            radii = [_spectral_radius(w) for n, w in weights.items() if n.startswith("weight_hh")]
            facts["spectral_radius"] = max(radii)
        elif module.mode == "LSTM":
            facts["kind"] = "lstm"
            b = [p[H : 2 * H] for n, p in weights.items() if n.startswith("bias")]  # ih, hh, ...
            pairs = [b_ih + b_hh for b_ih, b_hh in zip(b[0::2], b[1::2], strict=True)]
            facts["forget_bias"] = float(torch.stack(pairs).mean()) if pairs else 0.0
        else:
            facts["kind"] = "gru"
    cells: list[Any] = list(module.cells) if isinstance(module, CellStack) else []
    if cell is not None:
        cells = [cell] if isinstance(cell, nn.Module) else list(cell)
    if cells and all(isinstance(c, ElmanCell) for c in cells):
        facts["kind"], facts["activation"] = "rnn", cells[0].activation
        facts["spectral_radius"] = max(_spectral_radius(c.W_hh.weight) for c in cells)
    elif cells and all(isinstance(c, LRUCell) for c in cells):
        facts["kind"] = "lru"
        facts["spectral_radius"] = max(float(c.eigenvalues().abs().max()) for c in cells)
    if getattr(model, "name", None):
        facts["arch"] = model.name  # type: ignore[union-attr]
    return facts


def _fit(norms: np.ndarray) -> tuple[float | None, float | None]:
    """Slope of ln(norm) vs steps back, and r^2; None with fewer than two usable steps."""
    T = len(norms) - 1
    ok = np.isfinite(norms) & (norms > 0)
    if ok.sum() < 2:
        return None, None
    s, y = (T - np.arange(T + 1))[ok].astype(float), np.log(norms[ok])
    slope, intercept = np.polyfit(s, y, 1)
    resid = y - (slope * s + intercept)
    ss = float(((y - y.mean()) ** 2).sum())
    return float(slope), (1.0 - float((resid**2).sum()) / ss) if ss > 0 else 1.0


# What to try when the horizon is short, by what the model already is (no advice to switch to
# the architecture in hand).
_REMEDY = {
    "rnn": "Use a gated (lstm, gru), orthogonal-rnn or lru architecture, or shorten the "
    "dependency.",
    "lstm": "Open the forget gate at the start (forget_bias='one' or 'chrono'), or for very long "
    "dependencies try orthogonal-rnn or lru, or shorten the dependency.",
    "gru": "Bias the update gate z_t towards keeping the state (a positive bias on z), or for "
    "very long dependencies try orthogonal-rnn or lru, or shorten the dependency.",
    "lru": "Move the eigenvalue ring closer to the unit circle (raise r_min and r_max), or "
    "shorten the dependency.",
}


def _advice(d: dict[str, Any], facts: dict[str, Any]) -> list[Advice]:
    """Each rule reads measurements (d) and model facts, and cites them as evidence."""
    out: list[Advice] = []

    def add(text: str, **evidence: Any) -> None:
        out.append(Advice(text, evidence))

    verdict, rate, ratio, T = d["verdict"], d["rate_per_step"], d["ratio"], d["T"]
    ev = {"ratio": ratio, "rate_per_step": rate, "factor_per_step": d["factor_per_step"]}
    kind, rho, act = str(facts.get("kind")), facts.get("spectral_radius"), facts.get("activation")
    act = None if act is None else str(act)
    fb = facts.get("forget_bias")
    if verdict == "exploding":
        add(
            "Clip the gradient norm before each optimiser step, e.g. "
            "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0) (Pascanu et al. 2013): "
            f"the gradient at h_0 is {ratio:.3g} x the one at the readout.",
            **ev,
        )
        if kind == "rnn" and rho is not None and rho > 1:
            add(
                f"W_hh has spectral radius {rho:.3g} > 1, so products of Jacobians can grow; "
                "start from an orthogonal W_hh (init='orthogonal', gain=1) or use orthogonal-rnn.",
                spectral_radius=rho,
                **ev,
            )
    if kind == "lstm" and fb is not None and fb < 0.5 and rate is not None and rate < 0:
        add(
            f"The forget-gate bias is {fb:.2f} (forget gate ~{1 / (1 + math.exp(-fb)):.2f} at "
            f"zero input) and the gradient shrinks by {math.exp(rate):.3g} per step: set it to 1 "
            "(Gers et al. 2000; Jozefowicz et al. 2015) or use chrono init (Tallec & Ollivier "
            "2018): build('lstm', ..., forget_bias='chrono').",
            forget_bias=fb,
            **ev,
        )
    if verdict == "vanishing" and kind == "rnn" and rho is not None and rho < 1:
        fmax = MAX_DERIVATIVE.get(act or "", 1.0)
        add(
            f"W_hh has spectral radius {rho:.3g} and {act}' <= {fmax:g}, so each step back "
            f"multiplies the gradient by about {rho * fmax:.3g} or less (measured "
            f"{d['factor_per_step']:.3g}); start from an orthogonal or identity W_hh with gain 1 "
            "(init='orthogonal', or irnn: Le et al. 2015) or use a gated or orthogonal "
            "architecture.",
            spectral_radius=rho,
            activation=act,
            **ev,
        )
    if verdict == "vanishing" and act == "sigmoid":
        add(
            "sigmoid' <= 0.25 caps every step's factor at a quarter of W_hh's gain; use tanh.",
            activation=act,
            **ev,
        )
    if verdict == "vanishing":
        h = d["horizon"]
        add(
            f"The gradient falls under {HORIZON_FRACTION:g} of its readout value "
            f"{h if h is not None else f'beyond {T}'} steps back: dependencies longer than that "
            f"get almost no learning signal. {_REMEDY.get(kind, _REMEDY['rnn'])}",
            horizon=h,
            horizon_fit=d["horizon_fit"],
            **ev,
        )
    if d["horizon_float32"] is not None:
        add(
            f"In float32 the gradient is exactly zero {d['horizon_float32']} steps back and "
            "earlier: those inputs get no update at all; profile in float64 to see the true decay.",
            horizon_float32=d["horizon_float32"],
        )
    if verdict == "healthy" and rate is not None and rate > 0 and ratio > 1:
        add(
            f"The gradient reaches h_0 at {ratio:.3g} x its readout value and grows "
            f"x{math.exp(rate):.3g} per step: under the exploding line ({EXPLODE_RATIO:g} x) at "
            f"T = {T}, but at a steady rate longer sequences would pass it. Clip the gradient "
            "norm (torch.nn.utils.clip_grad_norm_) before training on longer sequences.",
            **ev,
        )
    elif verdict == "healthy":
        add(f"The gradient reaches h_0 at {ratio:.3g} x its readout value: no change needed.", **ev)
    return out


def diagnose_profile(
    profile: Profile, model: nn.Module | None = None, *, rnn: Any = None, cell: Any = None,
    facts: dict[str, Any] | None = None,
) -> Diagnosis:  # fmt: skip
    """Diagnose a profile; ``model`` (and ``rnn``/``cell`` as given to the probe) add advice
    that follows from its weights. ``facts`` replaces what :func:`inspect_model` would read
    (its keys), for a model it cannot look into (e.g. a Keras layer)."""
    norms, T = profile.norms, profile.T
    rate, r2 = _fit(norms)
    ref = norms[T] if norms[T] > 0 else float(np.nanmax(norms))
    first = int(np.flatnonzero(~np.isnan(norms))[0])  # 0 unless a user cell hid h_0 (NaN)
    ratio = float(norms[first] / ref) if ref > 0 else 0.0
    if not np.all(np.isfinite(norms[1:])) or ratio > EXPLODE_RATIO:
        verdict = "exploding"
    else:
        verdict = "vanishing" if ratio < VANISH_RATIO else "healthy"
    below = np.flatnonzero(norms[::-1] < HORIZON_FRACTION * ref)  # index = steps back
    shrinking = rate is not None and rate < 0 and ref > 0
    d: dict[str, Any] = {
        "verdict": verdict,
        "T": T,
        "ratio": ratio,
        "rate_per_step": rate,
        "factor_per_step": math.exp(rate) if rate is not None else None,
        "fit_r2": r2,
        "horizon": int(below[0]) if below.size else None,
        "horizon_fit": math.log(HORIZON_FRACTION) / rate if shrinking else None,  # type: ignore[operator]
        "horizon_float32": T - profile.float32_underflow_at
        if profile.float32_underflow_at is not None
        else None,
        "horizon_float32_fit": math.log(FLOAT32_SMALLEST / ref) / rate if shrinking else None,  # type: ignore[operator]
    }
    if facts is None:
        facts = inspect_model(model, rnn, cell) if model is not None or rnn is not None else {}
    return Diagnosis(**d, advice=tuple(_advice(d, facts)), facts=facts)


def diagnose(model: nn.Module, x: Tensor, loss_fn: Callable[[Any], Tensor], **kw: Any) -> Diagnosis:
    """``gradient_profile(model, x, loss_fn, **kw)`` then :func:`diagnose_profile`."""
    profile = gradient_profile(model, x, loss_fn, **kw)
    return diagnose_profile(profile, model, rnn=kw.get("rnn"), cell=kw.get("cell"))
