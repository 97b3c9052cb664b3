"""Commands on the analytic core: decay, budget, spectrum, walk, lyapunov (numpy, no training)."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from bpttlab._util import progress
from bpttlab.cli._common import (
    JSON_OPT,
    SEED_OPT,
    Table,
    bad,
    check_positive,
    emit_json,
    options,
    out,
    parse_list,
    positive_ints,
    usage_error,
)

__all__ = ["COMMANDS"]


class Init(StrEnum):
    default = "default"
    gaussian = "gaussian"
    orthogonal = "orthogonal"
    identity = "identity"


class Act(StrEnum):
    tanh = "tanh"
    sigmoid = "sigmoid"
    relu = "relu"
    identity = "identity"


class Inputs(StrEnum):
    zeros = "zeros"
    noise = "noise"
    matrix = "matrix"


class H0(StrEnum):
    zeros = "zeros"
    random = "random"


class Mode(StrEnum):
    full = "full"
    vjp = "vjp"


WEIGHTS_OPT = typer.Option(None, "--weights", help="W_hh as a .npy or .pt file.")
KEY_OPT = typer.Option(None, "--key", help="State-dict entry holding W_hh (.pt; needs --weights).")
THRESHOLD_OPT = typer.Option(1e-6, "--threshold", help="Horizon: steps until below this.")


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    if x == 0.0 or x != x or abs(x) == float("inf"):
        return str(x)
    return f"{x:.{digits}g}"


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _check_threshold(threshold: float) -> None:
    if not 0 < threshold < 1:
        raise bad("--threshold", threshold, "must lie strictly between 0 and 1")


def _matrix(
    weights: Path | None, key: str | None, init: Init, hidden: int, gain: float, seed: int
) -> Any:
    """W_hh from ``--weights`` (``--key``), or generated; contradictions refused."""
    from bpttlab import theory
    from bpttlab import weights as weights_io

    if key is not None and weights is None:
        raise usage_error("--key", "--key names an entry of --weights: give --weights too")
    with options():
        if weights is not None:
            return weights_io.load_matrix(weights, key)
        check_positive("--hidden", hidden)
        return theory.make_matrix(init.value, hidden, gain, seed)


def decay(
    eigenvalue: float = typer.Option(..., "--eigenvalue", "-l", help="Eigenvalue λ of W_hh."),
    derivative: float = typer.Option(..., "--derivative", "-d", help="Activation derivative f'."),
    lengths: str = typer.Option("10 20 50 100", "--lengths", help="Sequence lengths T."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Gradient magnitude (λ·f')^T, exact in log space for any T, and where floats underflow."""
    from bpttlab import theory

    with options():
        table = theory.decay(eigenvalue, derivative, positive_ints("--lengths", lengths))
    if as_json:
        return emit_json(table.to_dict())
    t = Table(
        title=f"(λ·f')^T with λ={eigenvalue:g}, f'={derivative:g}: factor {table.factor:.6g}"
        f" per step ({table.regime})"
    )
    for c in ("T", "magnitude", "log10 magnitude"):
        t.add_column(c, justify="right")
    for r in table.rows:
        mag = "overflow (inf)" if r.magnitude is None else f"{r.magnitude:.3e}"
        t.add_row(str(r.length), mag, f"{r.log10_magnitude:.6g}")
    out.print(t)
    for dtype in ("float32", "float64"):
        u, o = getattr(table, f"{dtype}_underflow_at"), getattr(table, f"{dtype}_overflow_at")
        if u is not None:
            out.print(f"{dtype}: the magnitude rounds to 0 from T = {u}")
        if o is not None:
            out.print(f"{dtype}: the magnitude overflows to inf from T = {o}")


def budget(
    x: str = typer.Option("0 1 2 3 5", "--x", help="Pre-activation points x."),
    activations: str = typer.Option(
        "tanh sigmoid relu",
        "--activations",
        help="Activations: tanh, sigmoid, relu, identity, or any elementwise one torch has "
        "(gelu, elu, ...).",
    ),
    threshold: float = typer.Option(1e-6, "--threshold", help="Gradient level counted down to."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Activation derivatives f'(x) and how many steps at each push a gradient below threshold."""
    from bpttlab import activations as acts_module
    from bpttlab import theory

    xs = parse_list("--x", x, float, "a list of numbers, e.g. 0 1 2 3 5")
    acts = parse_list("--activations", activations, str, "a list of activation names")
    _check_threshold(threshold)
    with options({"activation": "--activations", "x": "--x"}):
        for a in acts:
            acts_module.derivative(a, [0.0])
        res = theory.budget(xs, acts, threshold, derivative=acts_module.derivative)
    if as_json:
        return emit_json(res)
    t = Table(title=f"f'(x) and steps until a gradient falls below {threshold:g}")
    t.add_column("x", justify="right")
    for a in acts:
        t.add_column(f"{a}'", justify="right")
        t.add_column("steps", justify="right")
    for i, row in enumerate(res["rows"]):
        cells = [f"{row['x']:g}"]
        for a in acts:
            n = res["steps_to_threshold"][a][i]
            cells += [_fmt(row[a]), "never" if n is None else str(n)]
        t.add_row(*cells)
    out.print(t)


def spectrum(
    weights: Path | None = WEIGHTS_OPT,
    key: str | None = KEY_OPT,
    init: Init = typer.Option(Init.gaussian, "--init", help="Generated W when no --weights."),
    gain: float = typer.Option(0.9, "--gain", help="Scale of the generated W."),
    hidden: int = typer.Option(64, "--hidden", help="Hidden size H of the generated W."),
    activation: Act = typer.Option(Act.tanh, "--activation", help="Bounds max |f'|."),
    threshold: float = THRESHOLD_OPT,
    top: int = typer.Option(10, "--top", min=1, help="Eigenvalues shown in the table."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Eigenvalues, spectral radius and norm of W_hh, its fate, and the memory horizon."""
    from bpttlab import theory

    _check_threshold(threshold)
    with options():
        s = theory.spectrum(
            _matrix(weights, key, init, hidden, gain, seed), activation.value, threshold
        )
    if as_json:
        return emit_json(s.to_dict())
    t = Table(title=f"W_hh spectrum (H={s.hidden})", show_header=False)
    for k, v in (
        ("spectral radius ρ", _fmt(s.spectral_radius, 6)),
        ("spectral norm ‖W‖₂", _fmt(s.spectral_norm, 6)),
        ("fate (ρ·max f' against 1)", s.fate),
        (f"horizon: (ρ·max f')^t < {threshold:g}", str(s.horizon or "never")),
        (f"guaranteed: (‖W‖₂·max f')^t < {threshold:g}", str(s.horizon_bound or "never")),
    ):
        t.add_row(k, v)
    out.print(t)
    digits = ".4f" if s.spectral_radius < 1e6 else ".4g"  # fixed point for ordinary matrices
    ev = ", ".join(f"{z.real:+{digits}}{z.imag:+{digits}}j" for z in s.eigenvalues[:top])
    out.print(f"largest {min(top, s.hidden)} eigenvalues by modulus: {ev}")


def _check_plot(plot: Path | None) -> None:
    if plot is not None and (plot.is_dir() or str(plot).endswith(("/", "\\"))):
        raise bad("--plot", str(plot), "give a file path for the PNG, e.g. walk.png")


def walk(
    preset: str | None = typer.Option(None, "--preset", help="'lesson': the lesson's NumPy demo."),
    weights: Path | None = WEIGHTS_OPT,
    key: str | None = KEY_OPT,
    init: Init = typer.Option(Init.gaussian, "--init", help="Generated W when no --weights."),
    gain: float | None = typer.Option(None, "--gain", help="Scale of W (default 0.9)."),
    hidden: int | None = typer.Option(None, "--hidden", help="Hidden size H (default 64)."),
    length: int | None = typer.Option(
        None, "--length", help="Steps T (default 100; the lesson's 50)."
    ),
    activation: Act = typer.Option(Act.tanh, "--activation", help="The activation f."),
    inputs: Inputs = typer.Option(Inputs.noise, "--inputs", help="Drive: zeros, noise, matrix."),
    input_scale: float = typer.Option(1.0, "--input-scale", help="Std of the input drive."),
    h0: H0 = typer.Option(H0.random, "--h0", help="Initial state: zeros or random N(0, I)."),
    mode: Mode = typer.Option(Mode.full, "--mode", help="full (O(H^3)/step) or vjp (O(H^2)/step)."),
    every: int = typer.Option(1, "--every", min=1, help="Report every K-th step."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG of the walk here."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Walk dh_T/dh_t = J_T...J_(t+1) back through a real trajectory, in log space."""
    from bpttlab import dynamics

    _check_plot(plot)
    if preset not in (None, "lesson"):
        raise bad("--preset", preset, "the only preset is 'lesson'")
    note = None
    with options({"activation": "--activation"}):
        if preset == "lesson":
            for name, given in (("--weights", weights), ("--key", key)):
                if given is not None:
                    raise usage_error(name, f"--preset lesson fixes W_hh: drop {name}")
            res = dynamics.lesson_preset(
                gain=0.9 if gain is None else gain,
                hidden=check_positive("--hidden", 64 if hidden is None else hidden),
                length=check_positive("--length", 50 if length is None else length),
            )
            traj, W, note = res["trajectory"], res["W"], res["note"]
        else:
            W = _matrix(weights, key, init, 64 if hidden is None else hidden,
                        0.9 if gain is None else gain, seed)  # fmt: skip
            T = check_positive("--length", 100 if length is None else length)
            traj = dynamics.simulate(W, T, activation.value, inputs.value, input_scale,
                                     h0=h0.value, seed=seed)  # fmt: skip
        w = dynamics.jacobian_walk(traj, mode=mode.value, every=every)
    data = w.to_dict()
    if note:
        data["preset"], data["note"] = "lesson", note
    if plot:
        from bpttlab.views.plots import plot_walk

        plot_walk(data, plot, title="lesson preset" if note else "Jacobian walk")
    if as_json:
        return emit_json(data)
    walked = int(data["steps"][0]["t"])  # T, or the last finite step before an overflow
    t = Table(
        title=f"dh_T/dh_t along the trajectory: T={walked}, H={W.shape[0]}, "
        f"ρ(W)={w.spectral_radius:.4g}, <f'>={w.mean_derivative:.4f}"
    )
    heads = {
        "log10_spectral": "log10 ‖·‖₂",
        "log10_frobenius": "log10 ‖·‖_F",
        "log10_vjp": "log10 ‖vᵀ·‖",
    }
    cols = [c for c in heads if c in data["steps"][0]]
    for c in ["t", *[heads[c] for c in cols], "log10 ρ^k", "log10 (ρ<f'>)^k"]:
        t.add_column(c, justify="right")
    for r in data["steps"]:
        t.add_row(
            str(r["t"]),
            *[f"{r[c]:.4f}" for c in cols],
            f"{r['log10_rho_power']:.4f}",
            f"{r['log10_naive']:.4f}",
        )
    out.print(t)
    if w.overflow_at is not None:
        out.print(f"exploding: the state overflows float64 at step {w.overflow_at} of "
                  f"{traj.length}; the walk covers t = 0..{walked}, where every Jacobian is "
                  "finite", markup=False)  # fmt: skip
    if note:
        out.print(note)


def lyapunov(
    gain: float = typer.Option(1.5, "--gain", help="Scale g of W = g·randn/sqrt(H)."),
    gains: str | None = typer.Option(None, "--gains", help="Sweep these gains instead."),
    weights: Path | None = WEIGHTS_OPT,
    key: str | None = KEY_OPT,
    init: Init = typer.Option(Init.gaussian, "--init", help="Generated W when no --weights."),
    hidden: int = typer.Option(256, "--hidden", help="Hidden size H."),
    length: int = typer.Option(1500, "--length", help="Trajectory steps T."),
    warmup: int = typer.Option(500, "--warmup", help="Steps discarded before measuring."),
    k: int = typer.Option(8, "--k", help="How many top exponents."),
    activation: Act = typer.Option(Act.tanh, "--activation", help="The activation f."),
    inputs: Inputs = typer.Option(Inputs.zeros, "--inputs", help="Drive: zeros, noise, matrix."),
    input_scale: float = typer.Option(1.0, "--input-scale", help="Std of the input drive."),
    h0: H0 = typer.Option(H0.random, "--h0", help="Initial state: zeros or random N(0, I)."),
    threshold: float = THRESHOLD_OPT,
    plot: Path | None = typer.Option(None, "--plot", help="PNG of the gain sweep."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Top-k Lyapunov exponents by QR re-orthonormalisation, beside log ρ and the naive rate."""
    from bpttlab import dynamics

    _check_plot(plot)
    check_positive("--length", length)
    check_positive("--hidden", hidden)
    if not 0 <= warmup < length:
        raise bad("--warmup", warmup, f"must lie in [0, --length={length})")
    _check_threshold(threshold)
    sweep = gains is not None
    if sweep and weights is not None:
        raise usage_error("--gains", "--gains sweeps generated matrices: drop --gains or --weights")
    gain_list = parse_list("--gains", gains or "", float, "a list of numbers") if sweep else [gain]
    if weights is None and not 1 <= k <= hidden:
        raise bad("--k", k, f"must lie in [1, --hidden={hidden}]")
    results = []
    with options(), progress("lyapunov", sweep) as bar:
        task = bar.add_task("gains", total=len(gain_list))
        for g in gain_list:
            W = _matrix(weights, key, init, hidden, g, seed)
            traj = dynamics.simulate(W, length, activation.value, inputs.value, input_scale,
                                     h0=h0.value, seed=seed)  # fmt: skip
            r = dynamics.lyapunov_exponents(traj, k=min(k, W.shape[0]), warmup=warmup,
                                            threshold=threshold).to_dict()  # fmt: skip
            r["gain"] = g if weights is None else None
            results.append(r)
            bar.advance(task)
    if plot and sweep:
        from bpttlab.views.plots import plot_lyapunov

        plot_lyapunov(results, plot)
    if as_json:
        return emit_json(results if sweep else results[0])
    t = Table(
        title=f"Lyapunov exponents ({activation.value}, H={W.shape[0]}, T={length}, "
        f"warmup {warmup}); rates per step, natural log"
    )
    for c in ("gain", "λ₁", "log ρ(W)", "naive log(ρ<f'>)", "verdict", "half-life", "horizon"):
        t.add_column(c, justify="right")
    for r in results:  # λ₁ is -inf (None in JSON) where a step's Jacobian is 0, e.g. W_hh = 0
        wrong = " ← wrong sign" if r["naive_sign_wrong"] else ""
        lam = r["exponents"][0]
        t.add_row(
            _fmt(r["gain"]),
            f"{lam:+.4f}" if _finite(lam) else "+inf" if lam == math.inf else "-inf",
            f"{r['log_spectral_radius']:+.4f}",
            f"{r['naive_rate']:+.4f}{wrong}" if _finite(r["naive_rate"]) else "—",
            r["verdict"],
            _fmt(r["half_life"]),
            "—" if r["horizon"] is None else str(r["horizon"]),
        )
    out.print(t)


COMMANDS = {"decay": decay, "budget": budget, "spectrum": spectrum, "walk": walk,
            "lyapunov": lyapunov}  # fmt: skip
