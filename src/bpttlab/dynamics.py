"""Jacobian products along real trajectories, and their rigorous rate: Lyapunov exponents.

The recurrence (float64 throughout):

    z_t = W h_{t-1} + U x_t + b,   h_t = f(z_t),   t = 1..T,

has step Jacobians ``J_t = dh_t/dh_{t-1} = diag(f'(z_t)) W``. BPTT needs the product

    dh_T/dh_t = J_T J_{T-1} ... J_{t+1}                          (Pascanu et al. 2013, eq. 5)

walked backwards from t = T (the identity) to t = 0. Every walk here keeps its running product
normalised and carries the scale as a log, so a walk of 100,000 steps never underflows. No
``diag(d) @ W`` is ever formed: ``P diag(d) W`` is a column scaling and one matmul.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import cached_property

import numpy as np

from bpttlab._util import ConfigError, check_choice, check_float, check_int, check_memory
from bpttlab.theory import ACTIVATIONS

__all__ = [
    "ACTIVATIONS",
    "Trajectory",
    "Walk",
    "LyapunovResult",
    "jacobian_walk",
    "lesson_preset",
    "lyapunov_exponents",
    "simulate",
]

_LOG10E = 1.0 / math.log(10.0)


def _norm(a: np.ndarray) -> float:
    """The 2-norm (Frobenius for a matrix) without overflow: entries near 1e300 square to inf
    in a plain norm; scaling by the largest entry first keeps every step finite."""
    m = float(np.abs(a).max()) if a.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return m
    return m * float(np.linalg.norm(a / m))


def _f(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
    if name == "relu":
        return np.maximum(z, 0.0)
    return z


def _df(name: str, z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """f'(z) from z and h = f(z) (relu'(0) = 0, as torch)."""
    if name == "tanh":
        return 1.0 - h * h
    if name == "sigmoid":
        return h * (1.0 - h)
    if name == "relu":
        return (z > 0).astype(np.float64)
    return np.ones_like(z)


@dataclass(frozen=True)
class Trajectory:
    """A forward run. ``z``: (T, H) pre-activations z_1..z_T; ``h``: (T+1, H) states h_0..h_T;
    ``d``: (T, H) derivatives f'(z_1)..f'(z_T). ``overflow_at``: the first t at which h_t is not
    finite in float64 (the state exploded; later steps hold inf/NaN), else None."""

    W: np.ndarray
    activation: str
    z: np.ndarray
    h: np.ndarray
    d: np.ndarray
    overflow_at: int | None = None

    def finite_prefix(self) -> Trajectory:
        """Steps 1..overflow_at - 1 (all of it when nothing overflowed): where J_t is finite."""
        if self.overflow_at is None:
            return self
        k = self.overflow_at - 1
        return Trajectory(self.W, self.activation, self.z[:k], self.h[: k + 1], self.d[:k])

    @property
    def length(self) -> int:
        return self.z.shape[0]

    @cached_property
    def spectral_radius(self) -> float:
        """rho(W), computed once per trajectory (an O(H^3) eigendecomposition)."""
        return float(np.max(np.abs(np.linalg.eigvals(self.W))))


def simulate(
    W: np.ndarray,
    length: int,
    activation: str = "tanh",
    inputs: str = "zeros",
    input_scale: float = 1.0,
    input_size: int = 1,
    h0: str | np.ndarray = "zeros",
    bias: np.ndarray | None = None,
    seed: int = 0,
) -> Trajectory:
    """Run the recurrence forward for ``length`` steps.

    Arguments:
        W: (H, H) recurrent matrix.
        inputs: "zeros" (x_t = 0); "noise" (U x_t = input_scale * N(0, I_H) each step);
            "matrix" (a random U (H, input_size) ~ N(0, 1/input_size), x_t ~ N(0, scale^2)).
        h0: "zeros", "random" (N(0, I)), or an (H,) array.
        bias: (H,) or None.
    """
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("inputs", inputs, ("zeros", "noise", "matrix"))
    check_int("length", length)
    check_float("input_scale", input_scale)
    W = np.asarray(W, dtype=np.float64)
    H = W.shape[0]
    check_memory("length", length, 8.0 * length * H * 4, f"{length} steps of {H} units")
    rng = np.random.default_rng(seed)
    if isinstance(h0, str):
        check_choice("h0", h0, ("zeros", "random"))
        h_prev = np.zeros(H) if h0 == "zeros" else rng.standard_normal(H)
    else:
        h_prev = np.asarray(h0, dtype=np.float64).reshape(H)
    if inputs == "zeros":
        drive = np.zeros((length, H))
    elif inputs == "noise":
        drive = input_scale * rng.standard_normal((length, H))  # (T, H)
    else:
        U = rng.standard_normal((H, input_size)) / math.sqrt(input_size)  # (H, I)
        x = input_scale * rng.standard_normal((length, input_size))  # (T, I)
        drive = x @ U.T  # (T, H)
    if bias is not None:
        drive = drive + np.asarray(bias, dtype=np.float64)[None, :]
    z = np.full((length, H), np.nan)
    h = np.full((length + 1, H), np.nan)
    h[0] = h_prev
    overflow_at = None
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(length):
            z[t] = W @ h[t] + drive[t]  # (H,)
            h[t + 1] = _f(activation, z[t])
            if not np.isfinite(h[t + 1]).all():  # the state exploded past float64: stop here
                overflow_at = t + 1
                break
        d = _df(activation, z, h[1:])
    return Trajectory(W=W, activation=activation, z=z, h=h, d=d, overflow_at=overflow_at)


@dataclass(frozen=True)
class Walk:
    """The backward walk of ``P_t = dh_T/dh_t`` for the reported t (descending from T).

    Arrays are aligned with ``t``: log10 of the Frobenius norm ``||P_t||_F``, the spectral norm
    ``||P_t||_2`` (None when not computed), the vector-Jacobian norm ``||v^T P_t||`` (v a unit
    vector, default all-ones/sqrt(H)), and two approximations: ``rho(W)^(T-t)`` and
    ``(rho * <f'>)^(T-t)`` with <f'> the mean derivative over the trajectory.
    """

    t: np.ndarray
    log10_frobenius: np.ndarray | None
    log10_spectral: np.ndarray | None
    log10_vjp: np.ndarray
    log10_rho_power: np.ndarray
    log10_naive: np.ndarray
    spectral_radius: float
    mean_derivative: float
    overflow_at: int | None = None

    def rows(self) -> list[dict]:
        out = []
        for i, t in enumerate(self.t):
            row: dict[str, float] = {"t": int(t), "steps_back": int(self.t[0] - t)}
            for name in ("log10_frobenius", "log10_spectral", "log10_vjp"):
                arr = getattr(self, name)
                if arr is not None:
                    row[name] = float(arr[i])
                    plain = 10.0 ** arr[i]
                    if plain > 0 and math.isfinite(plain):  # plain value only where it exists
                        row[name.removeprefix("log10_")] = plain
            row["log10_rho_power"] = float(self.log10_rho_power[i])
            row["log10_naive"] = float(self.log10_naive[i])
            ref = row.get("log10_spectral", row.get("log10_frobenius", row["log10_vjp"]))
            row["rho_power_error_decades"] = row["log10_rho_power"] - ref
            row["naive_error_decades"] = row["log10_naive"] - ref
            out.append(row)
        return out

    def to_dict(self) -> dict:
        return {
            "spectral_radius": self.spectral_radius,
            "mean_derivative": self.mean_derivative,
            "overflow_at": self.overflow_at,
            "steps": self.rows(),
        }


def jacobian_walk(
    traj: Trajectory,
    mode: str = "full",
    every: int = 1,
    v: np.ndarray | None = None,
    spectral: bool = True,
) -> Walk:
    """Walk ``P_t = J_T ... J_{t+1}`` from t = T down to 0.

    Arguments:
        traj: a :class:`Trajectory` from :func:`simulate`.
        mode: "full" keeps the (H, H) product, O(H^3) per step, and reports Frobenius and (if
            ``spectral``) spectral norms as well as the VJP; "vjp" keeps only ``u_t = v^T P_t``,
            O(H^2) per step.
        every: report every K-th step (t = T, T-K, ..., and always t = 0).
        v: (H,) vector for the VJP, normalised to unit length (default ones/sqrt(H)).

    Returns:
        A :class:`Walk`; norms are carried as a float64 mantissa times a log scale, so nothing
        underflows at any length.
    """
    check_choice("mode", mode, ("full", "vjp"))
    check_int("every", every)
    overflow_at, traj = traj.overflow_at, traj.finite_prefix()  # no Jacobian past an overflow
    W, D, T = traj.W, traj.d, traj.length
    H = W.shape[0]
    if mode == "full":
        check_memory("mode", mode, 8.0 * H * H * 4, f"the full {H} x {H} product (--mode vjp "
                     "keeps a vector)")  # fmt: skip
    u = np.ones(H) if v is None else np.asarray(v, dtype=np.float64).reshape(H)
    u = u / _norm(u)
    log_u = 0.0  # natural-log scale of u
    P = np.eye(H) if mode == "full" else None  # (H, H), normalised to ||P||_F = 1 below
    log_P = 0.0
    if P is not None:
        log_P = math.log(math.sqrt(H))
        P = P / math.sqrt(H)
    report = set(range(T, -1, -every)) | {0}
    ts, fro, spec, vjp = [], [], [], []
    for t in range(T, -1, -1):
        if t in report:
            ts.append(t)
            vjp.append((log_u + math.log(np.linalg.norm(u))) * _LOG10E)
            if P is not None:
                fro.append((log_P + math.log(np.linalg.norm(P))) * _LOG10E)
                if spectral:
                    spec.append((log_P + math.log(np.linalg.norm(P, 2))) * _LOG10E)
        if t == 0:
            break
        d = D[t - 1]  # f'(z_t), (H,)
        # u^T J_t = (u * d)^T W: scale, then one matvec.               (H,)
        u = (u * d) @ W
        n = _norm(u)
        if n == 0.0:  # an exactly dead direction (e.g. relu): the gradient is truly 0
            log_u, u = -math.inf, np.ones(H) / math.sqrt(H)
        else:
            log_u, u = log_u + math.log(n), u / n
        if P is not None:
            P = (P * d[None, :]) @ W  # P J_t = P diag(d) W, columns scaled   (H, H)
            n = _norm(P)
            if n == 0.0:
                log_P, P = -math.inf, np.eye(H) / math.sqrt(H)
            else:
                log_P, P = log_P + math.log(n), P / n
    ts_arr = np.asarray(ts)
    rho = traj.spectral_radius
    mean_d = float(D.mean()) if D.size else 1.0
    steps_back = T - ts_arr
    with np.errstate(divide="ignore"):
        log10_rho = steps_back * math.log10(rho) if rho > 0 else np.where(steps_back, -np.inf, 0)
        naive = rho * mean_d
        log10_naive = (
            steps_back * math.log10(naive) if naive > 0 else np.where(steps_back, -np.inf, 0)
        )
    return Walk(
        t=ts_arr,
        log10_frobenius=np.asarray(fro) if P is not None else None,
        log10_spectral=np.asarray(spec) if (P is not None and spectral) else None,
        log10_vjp=np.asarray(vjp),
        # "+ 0.0" turns the -0.0 of k = 0 into 0.0
        log10_rho_power=np.asarray(log10_rho, dtype=np.float64) * np.ones_like(steps_back) + 0.0,
        log10_naive=np.asarray(log10_naive, dtype=np.float64) * np.ones_like(steps_back) + 0.0,
        spectral_radius=rho,
        mean_derivative=mean_d,
        overflow_at=overflow_at,
    )


LESSON_NOTE = (
    "The lesson's demo starts at h_0 = 0 with x_t = 0, so tanh(W·0) = 0 keeps the whole trajectory "
    "at zero: every D = diag(tanh'(0)) = I and the product is just W^k. Its Frobenius norm starts "
    "at ||I||_F = sqrt(H) = {sqrtH:g}, not 1, and at t = 0 is {end:.4g}. The lesson's loop also "
    "multiplies the Jacobians in forward order (J_1 J_2 ...), where BPTT needs J_T ... J_(t+1); "
    "the two agree here only because every J_t equals W. bpttlab walks the correct order."
)


def lesson_preset(gain: float = 0.9, hidden: int = 64, length: int = 50) -> dict:
    """The lesson's NumPy demo, exactly: ``np.random.seed(0)``, ``W = randn(H, H) * gain/sqrt(H)``,
    ``h_0 = 0``, ``x_t = 0``. The trajectory stays at 0, every ``D = diag(tanh'(0)) = I``, so the
    product is ``W^k`` and its Frobenius norm starts at ``||I||_F = sqrt(H)`` (8 for H = 64).

    Returns W, the trajectory, the full walk and ``note``: what the demo really computes.
    """
    rs = np.random.RandomState(0)  # the legacy global-seed stream that np.random.seed(0) sets
    W = rs.randn(hidden, hidden) * gain / np.sqrt(hidden)
    traj = simulate(W, length, activation="tanh", inputs="zeros", h0="zeros")
    walk = jacobian_walk(traj, mode="full")
    assert walk.log10_frobenius is not None
    end = 10 ** walk.log10_frobenius[-1]
    note = LESSON_NOTE.format(sqrtH=math.sqrt(hidden), end=end)
    return {"W": W, "trajectory": traj, "walk": walk, "note": note}


@dataclass(frozen=True)
class LyapunovResult:
    exponents: np.ndarray  # (k,) natural log per step, descending
    log_spectral_radius: float  # log rho(W)
    naive_rate: float  # log(rho * <f'>), <f'> the mean derivative on the trajectory
    mean_log_det: float  # mean over steps of log|det J_t| (-inf if some J_t is singular)
    half_life: float | None  # ln 2 / -lambda_1 steps, None unless lambda_1 < 0
    doubling_time: float | None  # ln 2 / lambda_1 steps, None unless lambda_1 > 0
    horizon: int | None  # steps until exp(lambda_1 t) < threshold, None unless lambda_1 < 0
    threshold: float
    gain: float | None = None
    overflow_at: int | None = None  # the state exploded past float64 at this step
    bounded: bool = True  # the activation bounds the state (tanh, sigmoid)

    @property
    def verdict(self) -> str:
        """From lambda_1: "exploding" above 1e-3 per step ("(chaotic)" when the activation
        bounds the state, "(overflow at step k)" when the state left float64), "vanishing" below
        -1e-3, else "marginal"."""
        if self.overflow_at is not None:
            return f"exploding (overflow at step {self.overflow_at})"
        top = float(self.exponents[0])
        if top > 1e-3:
            return "exploding (chaotic)" if self.bounded else "exploding"
        return "vanishing" if top < -1e-3 else "marginal"

    @property
    def naive_sign_wrong(self) -> bool:
        """The naive rate log(rho <f'>) predicts the opposite of lambda_1 (which is not ~0)."""
        top = float(self.exponents[0])
        if not math.isfinite(top):
            return False
        return (self.naive_rate < 0) != (top < 0) and abs(top) > 1e-3

    def to_dict(self) -> dict:
        d = asdict(self)
        d["exponents"] = [float(x) for x in self.exponents]
        d["verdict"], d["naive_sign_wrong"] = self.verdict, self.naive_sign_wrong
        return d


def lyapunov_exponents(
    traj: Trajectory, k: int | None = None, warmup: int = 0, threshold: float = 1e-6
) -> LyapunovResult:
    """Top-k Lyapunov exponents of the tangent dynamics ``delta_t = J_t delta_{t-1}`` by QR
    re-orthonormalisation (Benettin et al. 1980; Engelken, Wolf & Abbott 2023, alg. 1).

    ``lambda_i = (1/n) sum_t log |R_t[i, i]|`` over the n = T - warmup measured steps. The
    backward (gradient) product has the same exponents, so ``lambda_1 < 0`` means vanishing
    gradients with per-step factor ``exp(lambda_1)`` and ``lambda_1 > 0`` means exploding.
    """
    H = traj.W.shape[0]
    k = H if k is None else k
    check_int("k", k, 1, H)
    if not 0 <= warmup < traj.length:
        raise ConfigError("warmup", warmup, f"must lie in [0, length={traj.length})")
    bounded = traj.activation in ("tanh", "sigmoid")
    if traj.overflow_at is not None:  # exploded past float64: measure what stayed finite
        overflow, traj = traj.overflow_at, traj.finite_prefix()
        if traj.length - warmup < 1:
            nan, rho = math.nan, traj.spectral_radius
            return LyapunovResult(np.full(k, nan), math.log(rho) if rho > 0 else -math.inf, nan,
                                  nan, None, None, None, threshold, overflow_at=overflow,
                                  bounded=bounded)  # fmt: skip
        result = lyapunov_exponents(traj, k, warmup, threshold)
        return replace(result, overflow_at=overflow)
    W, D, T = traj.W, traj.d, traj.length
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((H, k)))[0]  # (H, k)
    sums = np.zeros(k)
    log_det = 0.0
    log_abs_det_w = np.linalg.slogdet(W)[1]
    for t in range(T):
        Q = D[t][:, None] * (W @ Q)  # J_t Q = diag(d_t) W Q               (H, k)
        Q, R = np.linalg.qr(Q)
        if t >= warmup:
            with np.errstate(divide="ignore"):
                sums += np.log(np.abs(np.diag(R)))
                log_det += np.sum(np.log(np.abs(D[t]))) + log_abs_det_w
    n = T - warmup
    lam = np.sort(sums / n)[::-1]
    rho = traj.spectral_radius
    mean_d = float(D[warmup:].mean())
    top = float(lam[0])
    with np.errstate(divide="ignore"):
        naive = math.log(rho * mean_d) if rho * mean_d > 0 else -math.inf
    return LyapunovResult(
        exponents=lam,
        log_spectral_radius=math.log(rho) if rho > 0 else -math.inf,
        naive_rate=naive,
        mean_log_det=log_det / n,
        half_life=math.log(2) / -top if top < 0 else None,
        doubling_time=math.log(2) / top if top > 0 else None,
        horizon=math.ceil(math.log(threshold) / top) if top < 0 else None,
        threshold=threshold,
        bounded=bounded,
    )
