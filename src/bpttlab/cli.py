"""The ``bpttlab`` command line (typer + rich).

Conventions (DESIGN.md): every command takes ``--json`` (one JSON document on stdout, nothing else
there) and ``--seed``; tables go to stdout, progress bars to stderr; bad input exits 2 with one
line naming the argument, the value and what is allowed. List-valued options take their values
space-separated (``--lengths 10 20 50``) or comma-separated (``--lengths 10,20,50``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from . import dynamics, theory
from ._json import dumps

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="bpttlab: gradient flow through time in recurrent networks (vanishing/exploding).",
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

# Options whose value is a list: argv tokens after them are joined until the next option.
LIST_OPTIONS = ("--lengths", "--x", "--gains", "--activations", "--archs", "--radii", "--windows")

JSON_OPT = typer.Option(False, "--json", help="Print one JSON document on stdout, nothing else.")
SEED_OPT = typer.Option(0, "--seed", help="Random seed (same seed => identical numbers).")


class Init(StrEnum):
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


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _bad(option: str, value: object, allowed: str) -> typer.BadParameter:
    return typer.BadParameter(f"{value!r} is not allowed: {allowed}", param_hint=f"'{option}'")


def _parse_list(
    option: str, text: str, kind: Callable, allowed: str, split_commas: bool = True
) -> list:
    """Values separated by spaces or commas; by spaces only where a value may hold commas
    (architecture specs such as ``rnn:activation=relu,init=identity``)."""
    items = (text.replace(",", " ") if split_commas else text).split()
    if not items:
        raise _bad(option, text, allowed)
    try:
        return [kind(s) for s in items]
    except ValueError:
        raise _bad(option, text, allowed) from None


def _positive_ints(option: str, text: str) -> list[int]:
    vals = _parse_list(option, text, int, "a list of positive integers, e.g. 10 20 50")
    for v in vals:
        if v < 1:
            raise _bad(option, v, "every length must be a positive integer (>= 1)")
    return vals


def _check_positive(option: str, value: int) -> int:
    if value < 1:
        raise _bad(option, value, "must be a positive integer (>= 1)")
    return value


def emit_json(data) -> None:
    sys.stdout.write(dumps(data) + "\n")


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and (x == 0.0 or not math.isfinite(x)):
        return str(x)
    return f"{x:.{digits}g}"


def _matrix(weights: Path | None, key: str | None, init: Init, hidden: int, gain: float, seed: int):
    if weights is not None:
        return theory.load_matrix(weights, key)
    _check_positive("--hidden", hidden)
    return theory.make_matrix(init.value, hidden, gain, seed)


# ---------------------------------------------------------------------------------------------
# theory
# ---------------------------------------------------------------------------------------------


@app.command()
def decay(
    eigenvalue: float = typer.Option(..., "--eigenvalue", "-l", help="Eigenvalue λ of W_hh."),
    derivative: float = typer.Option(..., "--derivative", "-d", help="Activation derivative f'."),
    lengths: str = typer.Option("10 20 50 100", "--lengths", help="Sequence lengths T."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Gradient magnitude (λ·f')^T, exact in log space for any T, and where floats underflow."""
    table = theory.decay(eigenvalue, derivative, _positive_ints("--lengths", lengths))
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


@app.command()
def budget(
    x: str = typer.Option("0 1 2 3 5", "--x", help="Pre-activation points x."),
    activations: str = typer.Option(
        "tanh sigmoid relu",
        "--activations",
        help="Activations: tanh, sigmoid, relu, or any elementwise one torch has (gelu, elu...).",
    ),
    threshold: float = typer.Option(1e-6, "--threshold", help="Gradient level counted down to."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Activation derivatives f'(x) and how many steps at each push a gradient below threshold."""
    xs = _parse_list("--x", x, float, "a list of numbers, e.g. 0 1 2 3 5")
    acts = _parse_list("--activations", activations, str, "a list of activation names")
    if not 0 < threshold < 1:
        raise _bad("--threshold", threshold, "must lie strictly between 0 and 1")
    for a in acts:
        try:
            theory.activation_derivative(a, [0.0])
        except ValueError:
            raise _bad(
                "--activations",
                a,
                "tanh, sigmoid, relu, identity, or any elementwise "
                "activation torch has by name (gelu, softplus, elu, silu, ...)",
            ) from None
    res = theory.budget(xs, acts, threshold)
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


@app.command()
def spectrum(
    weights: Path | None = typer.Option(None, "--weights", help="W_hh as a .npy or .pt file."),
    key: str | None = typer.Option(None, "--key", help="State-dict entry holding W_hh (.pt)."),
    init: Init = typer.Option(Init.gaussian, "--init", help="Generated W when no --weights."),
    gain: float = typer.Option(0.9, "--gain", help="Scale of the generated W."),
    hidden: int = typer.Option(64, "--hidden", help="Hidden size H of the generated W."),
    activation: Act = typer.Option(Act.tanh, "--activation", help="Bounds max |f'|."),
    threshold: float = typer.Option(1e-6, "--threshold", help="Horizon: steps until below this."),
    top: int = typer.Option(10, "--top", help="Eigenvalues shown in the table."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Eigenvalues, spectral radius and norm of W_hh, its fate, and the memory horizon."""
    if not 0 < threshold < 1:
        raise _bad("--threshold", threshold, "must lie strictly between 0 and 1")
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
    ev = ", ".join(f"{z.real:+.4f}{z.imag:+.4f}j" for z in s.eigenvalues[:top])
    out.print(f"largest {min(top, s.hidden)} eigenvalues by modulus: {ev}")


# ---------------------------------------------------------------------------------------------
# dynamics
# ---------------------------------------------------------------------------------------------

LESSON_NOTE = (
    "The lesson's demo starts at h_0 = 0 with x_t = 0, so tanh(W·0) = 0 keeps the whole trajectory "
    "at zero: every D = diag(tanh'(0)) = I and the product is just W^k. Its Frobenius norm starts "
    "at ||I||_F = sqrt(H) = {sqrtH:g}, not 1, and at t = 0 is {end:.4g}. The lesson's loop also "
    "multiplies the Jacobians in forward order (J_1 J_2 ...), where BPTT needs J_T ... J_(t+1); "
    "the two agree here only because every J_t equals W. bpttlab walks the correct order."
)


@app.command()
def walk(
    preset: str | None = typer.Option(None, "--preset", help="'lesson': the lesson's NumPy demo."),
    weights: Path | None = typer.Option(None, "--weights", help="W_hh as a .npy or .pt file."),
    key: str | None = typer.Option(None, "--key", help="State-dict entry holding W_hh (.pt)."),
    init: Init = typer.Option(Init.gaussian, "--init", help="Generated W when no --weights."),
    gain: float | None = typer.Option(None, "--gain", help="Scale of W [default: 0.9]."),
    hidden: int | None = typer.Option(None, "--hidden", help="Hidden size H [default: 64]."),
    length: int | None = typer.Option(None, "--length", help="Steps T [default: 100; lesson 50]."),
    activation: Act = typer.Option(Act.tanh, "--activation"),
    inputs: Inputs = typer.Option(Inputs.noise, "--inputs", help="Drive: zeros, noise, matrix."),
    input_scale: float = typer.Option(1.0, "--input-scale", help="Std of the input drive."),
    h0: H0 = typer.Option(H0.random, "--h0", help="Initial state: zeros or random N(0, I)."),
    mode: str = typer.Option("full", "--mode", help="full (O(H^3)/step) or vjp (O(H^2)/step)."),
    every: int = typer.Option(1, "--every", help="Report every K-th step."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG of the walk here."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Walk dh_T/dh_t = J_T...J_(t+1) back through a real trajectory, in log space."""
    if preset not in (None, "lesson"):
        raise _bad("--preset", preset, "the only preset is 'lesson'")
    if mode not in ("full", "vjp"):
        raise _bad("--mode", mode, "one of: full, vjp")
    _check_positive("--every", every)
    note = None
    if preset == "lesson":
        res = dynamics.lesson_preset(
            gain=0.9 if gain is None else gain,
            hidden=_check_positive("--hidden", 64 if hidden is None else hidden),
            length=_check_positive("--length", 50 if length is None else length),
        )
        traj, W = res["trajectory"], res["W"]
        w = dynamics.jacobian_walk(traj, mode=mode, every=every)
        end = 10 ** res["walk"].log10_frobenius[-1]  # the preset's own full walk, in any --mode
        note = LESSON_NOTE.format(sqrtH=math.sqrt(W.shape[0]), end=end)
    else:
        if not math.isfinite(input_scale):
            raise _bad("--input-scale", input_scale, "must be a finite number")
        W = _matrix(
            weights,
            key,
            init,
            64 if hidden is None else hidden,
            0.9 if gain is None else gain,
            seed,
        )
        traj = dynamics.simulate(
            W,
            _check_positive("--length", 100 if length is None else length),
            activation.value,
            inputs.value,
            input_scale,
            h0=h0.value,
            seed=seed,
        )
        w = dynamics.jacobian_walk(traj, mode=mode, every=every)
    data = w.to_dict()
    if note:
        data["preset"], data["note"] = "lesson", note
    if plot:
        from .plots import plot_walk

        plot_walk(data, plot, title="lesson preset" if note else "Jacobian walk")
    if as_json:
        return emit_json(data)
    t = Table(
        title=f"dh_T/dh_t along the trajectory: T={traj.length}, H={W.shape[0]}, "
        f"ρ(W)={w.spectral_radius:.4f}, <f'>={w.mean_derivative:.4f}"
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
    if note:
        out.print(note)


@app.command()
def lyapunov(
    gain: float = typer.Option(1.5, "--gain", help="Scale g of W = g·randn/sqrt(H)."),
    gains: str | None = typer.Option(None, "--gains", help="Sweep these gains instead."),
    weights: Path | None = typer.Option(None, "--weights", help="W_hh as a .npy or .pt file."),
    key: str | None = typer.Option(None, "--key", help="State-dict entry holding W_hh (.pt)."),
    init: Init = typer.Option(Init.gaussian, "--init"),
    hidden: int = typer.Option(256, "--hidden", help="Hidden size H."),
    length: int = typer.Option(1500, "--length", help="Trajectory steps T."),
    warmup: int = typer.Option(500, "--warmup", help="Steps discarded before measuring."),
    k: int = typer.Option(8, "--k", help="How many top exponents."),
    activation: Act = typer.Option(Act.tanh, "--activation"),
    inputs: Inputs = typer.Option(Inputs.zeros, "--inputs"),
    input_scale: float = typer.Option(1.0, "--input-scale"),
    h0: H0 = typer.Option(H0.random, "--h0"),
    threshold: float = typer.Option(1e-6, "--threshold", help="Horizon: steps until below this."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of the gain sweep."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Top-k Lyapunov exponents by QR re-orthonormalisation, beside log ρ and the naive rate."""
    _check_positive("--length", length)
    _check_positive("--hidden", hidden)
    if not math.isfinite(input_scale):
        raise _bad("--input-scale", input_scale, "must be a finite number")
    if not 0 <= warmup < length:
        raise _bad("--warmup", warmup, f"must lie in [0, --length={length})")
    if not 0 < threshold < 1:
        raise _bad("--threshold", threshold, "must lie strictly between 0 and 1")
    sweep = gains is not None
    gain_list = _parse_list("--gains", gains, float, "a list of numbers") if sweep else [gain]
    H = hidden if weights is None else None
    if H is not None and not 1 <= k <= H:
        raise _bad("--k", k, f"must lie in [1, --hidden={H}]")
    results = []
    for g in track(
        gain_list, description="Lyapunov", console=err, disable=not sweep or not err.is_terminal
    ):
        W = _matrix(weights, key, init, hidden, g, seed)
        traj = dynamics.simulate(
            W, length, activation.value, inputs.value, input_scale, h0=h0.value, seed=seed
        )
        r = dynamics.lyapunov_exponents(
            traj, k=min(k, W.shape[0]), warmup=warmup, threshold=threshold
        ).to_dict()
        r["gain"] = g if weights is None else None
        results.append(r)
    if plot and sweep:
        from .plots import plot_lyapunov

        plot_lyapunov(results, plot)
    if as_json:
        return emit_json(results if sweep else results[0])
    t = Table(
        title=f"Lyapunov exponents ({activation.value}, H={W.shape[0]}, T={length}, "
        f"warmup {warmup}); rates per step, natural log"
    )
    for c in ("gain", "λ₁", "log ρ(W)", "naive log(ρ<f'>)", "verdict", "half-life", "horizon"):
        t.add_column(c, justify="right")
    for r in results:
        lam = r["exponents"][0]
        verdict = (
            "exploding (chaotic)" if lam > 1e-3 else ("vanishing" if lam < -1e-3 else "marginal")
        )
        wrong = " ← wrong sign" if (r["naive_rate"] < 0) != (lam < 0) and abs(lam) > 1e-3 else ""
        t.add_row(
            _fmt(r["gain"]),
            f"{lam:+.4f}",
            f"{r['log_spectral_radius']:+.4f}",
            f"{r['naive_rate']:+.4f}{wrong}",
            verdict,
            _fmt(r["half_life"]),
            str(r["horizon"] or "—"),
        )
    out.print(t)


@app.command()
def tour(
    out_dir: Path = typer.Option(Path("runs/tour"), "--out", help="Folder for figures + summary."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """A guided walk through the analytic core: writes PNG figures, summary.md and summary.json."""
    from .tour import run_tour

    summary = run_tour(out_dir, seed=seed, echo=lambda m: err.print(m, markup=False))
    if as_json:
        return emit_json(summary)
    out.print((out_dir / "summary.md").read_text(encoding="utf-8"), markup=False)
    out.print(f"wrote {', '.join(summary['files'])} to {out_dir}/")


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------


def join_list_options(argv: Sequence[str]) -> list[str]:
    """``--lengths 10 20 50`` -> ``--lengths "10 20 50"``: one value, up to the next option."""

    def is_option(tok: str) -> bool:
        if not tok.startswith("-"):
            return False
        try:
            float(tok)
            return False  # a negative number is a value
        except ValueError:
            return True

    args, i = [], 0
    while i < len(argv):
        tok = argv[i]
        args.append(tok)
        i += 1
        if tok in LIST_OPTIONS:
            vals = []
            while i < len(argv) and not is_option(argv[i]):
                vals.append(argv[i])
                i += 1
            if vals:
                args.append(" ".join(vals))
    return args


def _error(message: str) -> None:
    """One line on stderr, never wrapped (rich would wrap at the terminal's width)."""
    sys.stderr.write("bpttlab: error: " + " ".join(message.split()) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: one-line errors, exit 2 for usage errors, never a traceback."""
    # the model and experiment commands register themselves on `app` when imported; here, not
    # at the top of this module, because they import from it
    from . import cli_experiments, cli_lab  # noqa: F401

    args = join_list_options(list(sys.argv[1:] if argv is None else argv))
    try:
        rv = app(args=args, prog_name="bpttlab", standalone_mode=False)
    except typer.Abort:
        _error("aborted")
        return 130
    except typer.TyperException as e:  # usage errors: bad option, bad value, missing argument
        ctx = getattr(e, "ctx", None)
        hint = f" (see 'bpttlab {ctx.info_name} --help')" if ctx and ctx.parent else ""
        _error(f"{e.format_message()}{hint}")
        return getattr(e, "exit_code", 2)
    except (ValueError, OSError) as e:  # bad input found by the library itself (or the disk)
        if os.environ.get("BPTTLAB_DEBUG"):
            raise
        _error(str(e))
        return 2
    return rv if isinstance(rv, int) else 0
