"""Closed forms of gradient flow through time: decay tables, activation budgets, spectra.

Everything here follows from the recurrence ``h_t = f(W_hh h_{t-1} + W_xh x_t + b)`` without
training anything. BPTT multiplies one Jacobian per step,

    dh_t/dh_{t-1} = diag(f'(z_t)) W_hh                  (Pascanu et al. 2013, eq. 5)

so with a scalar stand-in (an eigenvalue ``lambda`` of W_hh and a typical derivative ``f'``) the
gradient that reaches T steps back scales as ``(lambda * f')^T`` (Bengio, Simard & Frasconi 1994).
Magnitudes are computed in log space, so a length of 10^6 still has an exact log10 even where the
magnitude itself is 0.0 in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bpttlab._util import ConfigError, check_choice, check_float, check_int, check_memory

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "MAX_DERIVATIVE",
    "DecayRow",
    "DecayTable",
    "Spectrum",
    "activation_derivative",
    "budget",
    "decay",
    "make_matrix",
    "spectrum",
    "steps_to_threshold",
    "underflow_length",
]

# The activations with closed forms here (bpttlab.activations reaches any elementwise one torch
# has), and the initialisations of W_hh: "default" is PyTorch's U(-1/sqrt(H), 1/sqrt(H)).
ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
INITS = ("default", "orthogonal", "identity", "gaussian")
# max |f'| over the real line: the per-step contraction an activation can at most give
# (modReLU, Arjovsky et al. 2016, has slope 1 wherever it is not 0).
MAX_DERIVATIVE = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "identity": 1.0, "modrelu": 1.0}

# (smallest positive subnormal, smallest positive normal, largest finite) per float type.
_LIMITS = {
    "float32": (float(np.finfo(np.float32).smallest_subnormal), float(np.finfo(np.float32).max)),
    "float64": (float(np.finfo(np.float64).smallest_subnormal), float(np.finfo(np.float64).max)),
}


# --------------------------------------------------------------------------------------------
# Decay tables: (lambda * f')^T
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecayRow:
    length: int
    magnitude: float | None  # |lambda f'|^T in float64; 0.0 on true underflow, None on overflow
    log10_magnitude: float  # exact for any T (-inf only when the factor is 0)


@dataclass(frozen=True)
class DecayTable:
    eigenvalue: float
    derivative: float
    factor: float  # |eigenvalue * derivative|, the per-step multiplier
    regime: str  # "vanishing" | "exploding" | "marginal"
    rows: tuple[DecayRow, ...]
    float32_underflow_at: int | None  # first T at which the magnitude rounds to 0 in float32
    float64_underflow_at: int | None
    float32_overflow_at: int | None  # first T at which the magnitude is inf in float32
    float64_overflow_at: int | None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return d


def _first_length_beyond(factor: float, bound: float, dtype: str, below: bool) -> int | None:
    """Smallest T >= 1 whose ``factor**T``, rounded to ``dtype``, is 0 (below) or inf (above).

    A log estimate gives the neighbourhood; the exact answer is found by evaluating the power
    itself in float64 (and casting to float32), so rounding at the boundary is the hardware's.
    """
    if factor == 0.0:
        return 1 if below else None
    if (below and factor >= 1.0) or (not below and factor <= 1.0):
        return None
    np_t = np.float32 if dtype == "float32" else np.float64

    def crossed(t: int) -> bool:
        with np.errstate(over="ignore", under="ignore"):
            value = np_t(np.float64(factor) ** np.float64(t))
        return bool(value == 0.0) if below else bool(np.isinf(value))

    guess = max(1, int(math.log(bound) / math.log(factor)))
    lo = max(1, guess - 8)
    while lo > 1 and crossed(lo):
        lo = max(1, lo // 2)
    t = lo
    while not crossed(t):
        t += 1
    return t


def underflow_length(factor: float, dtype: str = "float64") -> int | None:
    """First sequence length T at which ``|factor|**T`` rounds to exactly 0 in ``dtype``.

    Returns None when the factor is >= 1 (no decay). Example: 0.45 rounds to 0 in float32 from
    T = 131 and in float64 from T = 934.
    """
    if dtype not in _LIMITS:
        raise ConfigError("dtype", dtype, "choose one of float32, float64")
    return _first_length_beyond(abs(factor), _LIMITS[dtype][0], dtype, below=True)


def decay(eigenvalue: float, derivative: float, lengths: list[int] | tuple[int, ...]) -> DecayTable:
    """The gradient magnitude ``|eigenvalue * derivative|^T`` for each T in ``lengths``.

    Arguments:
        eigenvalue: an eigenvalue (or spectral radius) of W_hh.
        derivative: the activation derivative f' applied at every step.
        lengths: sequence lengths T >= 1.

    Returns:
        A :class:`DecayTable`. ``magnitude`` is the float64 value: 0.0 exactly where float64
        underflows, None where it overflows; ``log10_magnitude`` is ``T log10|factor|``, finite for
        any T whenever the factor is nonzero.
    """
    eigenvalue = check_float("eigenvalue", eigenvalue)
    derivative = check_float("derivative", derivative)
    if not lengths:
        raise ConfigError("lengths", lengths, "give at least one positive integer")
    lengths = [check_int("lengths", t) for t in lengths]
    factor = abs(eigenvalue * derivative)  # inf when the product overflows; its log does not
    log10_f = math.log10(abs(eigenvalue)) + math.log10(abs(derivative)) if factor > 0 else -math.inf
    rows = []
    for t in lengths:
        with np.errstate(over="ignore", under="ignore"):
            m = float(np.float64(factor) ** np.float64(t))
        rows.append(
            DecayRow(
                length=t,
                magnitude=m if math.isfinite(m) else None,
                log10_magnitude=t * log10_f if factor > 0 else -math.inf,
            )
        )
    regime = "vanishing" if factor < 1 else ("exploding" if factor > 1 else "marginal")
    return DecayTable(
        eigenvalue=eigenvalue,
        derivative=derivative,
        factor=factor,
        regime=regime,
        rows=tuple(rows),
        float32_underflow_at=_first_length_beyond(factor, _LIMITS["float32"][0], "float32", True),
        float64_underflow_at=_first_length_beyond(factor, _LIMITS["float64"][0], "float64", True),
        float32_overflow_at=_first_length_beyond(factor, _LIMITS["float32"][1], "float32", False),
        float64_overflow_at=_first_length_beyond(factor, _LIMITS["float64"][1], "float64", False),
    )


# --------------------------------------------------------------------------------------------
# Activation derivative budgets
# --------------------------------------------------------------------------------------------


def activation_derivative(name: str, x: np.ndarray | Sequence[float] | float) -> np.ndarray:
    """f'(x) in closed form for tanh, sigmoid, relu (relu'(0) = 0, as torch) and identity.

    Arguments:
        name: one of :data:`ACTIVATIONS`; ``bpttlab.activations.derivative`` takes any
            elementwise activation torch has by name.
        x: points, any shape.

    Returns:
        float64 array of the same shape as ``x``.
    """
    if name not in ACTIVATIONS:
        raise ConfigError(
            "activation", name, f"closed forms exist for {', '.join(ACTIVATIONS)} "
            "(bpttlab.activations.derivative takes any elementwise torch activation)"
        )  # fmt: skip
    z = np.asarray(x, dtype=np.float64)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "sigmoid":
        e = np.exp(-np.abs(z))  # never overflows
        s = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))  # the logistic sigma(z)
        return s * (1.0 - s)
    if name == "relu":
        return (z > 0).astype(np.float64)
    return np.ones_like(z)


def steps_to_threshold(derivative: float, threshold: float = 1e-6) -> int | None:
    """Fewest steps n with ``|derivative|**n < threshold``; None if the derivative is >= 1."""
    d = abs(float(derivative))
    if not 0 < threshold < 1:
        raise ConfigError("threshold", threshold, "must lie in (0, 1)")
    if d == 0.0:
        return 1
    if d >= 1.0:
        return None
    n = max(1, math.ceil(math.log(threshold) / math.log(d)))
    while d**n >= threshold:  # guard the log's rounding at exact boundaries
        n += 1
    while n > 1 and d ** (n - 1) < threshold:
        n -= 1
    return n


def budget(
    xs: Sequence[float] = (0, 1, 2, 3, 5),
    activations: Sequence[str] = ("tanh", "sigmoid", "relu"),
    threshold: float = 1e-6,
    derivative: Callable[[str, list[float]], np.ndarray] | None = None,
) -> dict:
    """Derivative table and step budgets: how many steps at ``f'(x)`` push a gradient below
    ``threshold``.

    ``derivative(name, xs)`` gives f'; default :func:`activation_derivative` (closed forms);
    ``bpttlab.activations.derivative`` adds every elementwise activation torch has.

    Returns:
        ``{"threshold": t, "activations": [...], "rows": [{"x": x, name: f'(x), ...}],
        "steps_to_threshold": {name: [n or None per x]}}``.
    """
    if not xs:
        raise ConfigError("x", [], "give at least one point")
    if not activations:
        raise ConfigError("activations", [], "give at least one activation")
    xs = [check_float("x", x) for x in xs]
    check_float("threshold", threshold, low=0, high=1, low_open=True, high_open=True)
    derivative = derivative or activation_derivative
    derivs = {a: np.asarray(derivative(a, xs), dtype=np.float64) for a in activations}
    rows = [{"x": x, **{a: float(derivs[a][i]) for a in activations}} for i, x in enumerate(xs)]
    steps = {a: [steps_to_threshold(float(d), threshold) for d in derivs[a]] for a in activations}
    return {
        "threshold": threshold,
        "activations": list(activations),
        "rows": rows,
        "steps_to_threshold": steps,
    }


# --------------------------------------------------------------------------------------------
# Spectra of W_hh
# --------------------------------------------------------------------------------------------


def make_matrix(init: str, hidden: int, gain: float = 1.0, seed: int = 0) -> np.ndarray:
    """A recurrent matrix W_hh (H, H), float64.

    default: ``gain * U(-1/sqrt(H), 1/sqrt(H))``, PyTorch's ``nn.RNN`` initialisation;
    gaussian: ``gain * randn / sqrt(H)`` (spectral radius -> gain as H grows, the circular law);
    orthogonal: ``gain * Q`` with Q Haar-orthogonal (QR of a Gaussian, signs fixed);
    identity: ``gain * I`` (Le, Jaitly & Hinton 2015).
    """
    hidden = check_int("hidden", hidden)
    gain = check_float("gain", gain)
    check_choice("init", init, INITS)
    check_memory("hidden", hidden, 8.0 * hidden**2 * 4, f"a {hidden} x {hidden} W_hh")
    rng = np.random.default_rng(seed)
    if init == "identity":
        return gain * np.eye(hidden)
    if init == "default":
        bound = 1.0 / math.sqrt(hidden)
        return gain * rng.uniform(-bound, bound, (hidden, hidden))
    a = rng.standard_normal((hidden, hidden))
    if init == "gaussian":
        return gain * a / math.sqrt(hidden)
    q, r = np.linalg.qr(a)
    return gain * q * np.sign(np.diag(r))[None, :]  # (H, H), Haar measure (Mezzadri 2007)


@dataclass(frozen=True)
class Spectrum:
    hidden: int
    eigenvalues: np.ndarray  # (H,) complex, sorted by decreasing modulus
    spectral_radius: float  # rho(W) = max |eigenvalue|
    spectral_norm: float  # ||W||_2 = largest singular value (>= rho)
    fate: str  # "vanishing" | "exploding" | "marginal": rho(W) * max|f'| against 1
    activation: str
    threshold: float
    horizon: int | None  # steps until (rho * max f')^t < threshold: the asymptotic prediction
    horizon_bound: int | None  # steps until (||W||_2 * max f')^t < threshold: guaranteed

    def to_dict(self, max_eigenvalues: int | None = None) -> dict:
        ev = self.eigenvalues if max_eigenvalues is None else self.eigenvalues[:max_eigenvalues]
        d = {k: v for k, v in asdict(self).items() if k != "eigenvalues"}
        d["eigenvalues"] = [{"re": float(z.real), "im": float(z.imag)} for z in ev]
        return d


def spectrum(
    w: np.ndarray, activation: str = "tanh", threshold: float = 1e-6, tol: float = 1e-9
) -> Spectrum:
    """Eigen/singular analysis of W_hh and the memory horizon it predicts.

    The gradient T steps back is bounded by ``(||W||_2 max|f'|)^T`` (Pascanu et al. 2013, sec. 3.2)
    and, near the zero state, behaves as ``(rho(W) f'(0))^T`` asymptotically (Gelfand's formula).
    ``fate`` classifies ``rho * max|f'|`` against 1 within ``tol`` (for tanh, relu and identity
    ``max|f'| = 1``, so it is rho itself; for sigmoid a quarter of it).
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"W has shape {w.shape}: it must be a non-empty square matrix")
    if activation not in MAX_DERIVATIVE:
        check_choice("activation", activation, MAX_DERIVATIVE)
    check_memory("hidden", w.shape[0], 16.0 * w.shape[0] ** 2 * 4, "its eigendecomposition")
    ev = np.linalg.eigvals(w)
    ev = ev[np.argsort(-np.abs(ev), kind="stable")]
    rho = float(np.abs(ev[0]))
    norm2 = float(np.linalg.norm(w, 2))
    fmax = MAX_DERIVATIVE[activation]
    gain = rho * fmax
    fate = "vanishing" if gain < 1 - tol else ("exploding" if gain > 1 + tol else "marginal")
    return Spectrum(
        hidden=w.shape[0],
        eigenvalues=ev,
        spectral_radius=rho,
        spectral_norm=norm2,
        fate=fate,
        activation=activation,
        threshold=threshold,
        horizon=steps_to_threshold(rho * fmax, threshold),
        horizon_bound=steps_to_threshold(norm2 * fmax, threshold),
    )
