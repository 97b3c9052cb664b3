"""Static figures (matplotlib, Agg backend). Views only: nothing here computes a result."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "plot_budget",
    "plot_cliff",
    "plot_decay",
    "plot_decay_vs_length",
    "plot_lyapunov",
    "plot_profile",
    "plot_walk",
]


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_decay(tables: list[dict], path: str | Path) -> Path:
    """log10 |lambda f'|^T against T for each decay table (``DecayTable.to_dict()``)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for tab in tables:
        t = [r["length"] for r in tab["rows"]]
        y = [r["log10_magnitude"] for r in tab["rows"]]
        ax.plot(t, y, label=f"λ={tab['eigenvalue']:g}, f'={tab['derivative']:g}")
    for name, lim in (("float32", np.finfo(np.float32)), ("float64", np.finfo(np.float64))):
        ax.axhline(np.log10(float(lim.smallest_subnormal)), ls=":", lw=1, color="grey")
        ax.annotate(
            f"{name} underflow",
            (0.01, np.log10(float(lim.smallest_subnormal))),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            color="grey",
            va="bottom",
        )
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("log10 gradient magnitude")
    ax.set_title("(λ·f')^T")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_budget(x: np.ndarray, derivs: dict[str, np.ndarray], path: str | Path) -> Path:
    """Activation derivatives f'(x) on a grid."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, d in derivs.items():
        ax.plot(x, d, label=name)
    ax.set_xlabel("pre-activation x")
    ax.set_ylabel("f'(x)")
    ax.set_title("activation derivative budgets")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_walk(walk: dict, path: str | Path, title: str = "Jacobian walk") -> Path:
    """log10 norms of dh_T/dh_t against steps back, with the two approximations."""
    rows = walk["steps"]
    k = [r["steps_back"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key, label in (
        ("log10_spectral", "‖∂h_T/∂h_t‖₂"),
        ("log10_frobenius", "‖∂h_T/∂h_t‖_F"),
        ("log10_vjp", "‖vᵀ ∂h_T/∂h_t‖"),
    ):
        if key in rows[0]:
            ax.plot(k, [r[key] for r in rows], label=label)
    ax.plot(k, [r["log10_rho_power"] for r in rows], "--", label="ρ(W)^k")
    ax.plot(k, [r["log10_naive"] for r in rows], ":", label="(ρ·⟨f'⟩)^k")
    ax.set_xlabel("steps back k = T - t")
    ax.set_ylabel("log10 norm")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_lyapunov(sweep: list[dict], path: str | Path) -> Path:
    """Top Lyapunov exponent, log rho and the naive rate against the gain."""
    g = [r["gain"] for r in sweep]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(g, [r["exponents"][0] for r in sweep], "o-", label="top Lyapunov exponent λ₁")
    ax.plot(g, [r["naive_rate"] for r in sweep], "s--", label="naive log(ρ·⟨f'⟩)")
    ax.plot(g, [r["log_spectral_radius"] for r in sweep], ":", label="log ρ(W)")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("gain g  (W = g·randn/√H)")
    ax.set_ylabel("rate per step (natural log)")
    ax.set_title("where a random tanh network turns chaotic")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_profile(
    norms: np.ndarray | list[float], path: str | Path, title: str = "gradient profile"
) -> Path:
    """||dL/dh_t|| against t on a log scale (float64 norms; zeros drawn as gaps)."""
    norms = np.asarray(norms, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    with np.errstate(divide="ignore"):
        ax.plot(np.arange(norms.size), np.where(norms > 0, np.log10(norms), np.nan))
    ax.set_xlabel("time step t")
    ax.set_ylabel("log10 ‖dL/dh_t‖")
    ax.set_title(title)
    return _save(fig, path)


def plot_cliff(doc: dict, path: str | Path) -> Path:
    """Mean accuracy (min-max band) against length per architecture, from ``cliff``'s result."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for arch in dict.fromkeys(r["arch"] for r in doc["rows"]):
        rows = sorted((r for r in doc["rows"] if r["arch"] == arch), key=lambda r: r["length"])
        t = [r["length"] for r in rows]
        (line,) = ax.plot(t, [r["accuracy_mean"] for r in rows], "o-", label=arch)
        ax.fill_between(
            t,
            [r["accuracy_min"] for r in rows],
            [r["accuracy_max"] for r in rows],
            color=line.get_color(),
            alpha=0.15,
        )
    threshold = doc["rows"][0].get("threshold") if doc["rows"] else None
    if threshold is not None:
        ax.axhline(threshold, ls=":", color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"cliff: {doc['budget']['task']}, {doc['budget']['steps']} steps")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_decay_vs_length(doc: dict, path: str | Path) -> Path:
    """log10 ||dL/dh_0||/||dL/dh_T|| against T, measured and predicted, per spectral radius."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for radius in dict.fromkeys(r["radius"] for r in doc["rows"]):
        rows = [r for r in doc["rows"] if r["radius"] == radius]
        t = [r["length"] for r in rows]
        (line,) = ax.plot(t, np.log10([r["ratio"] for r in rows]), "o-", label=f"ρ={radius:g}")
        c = line.get_color()
        ax.plot(t, np.log10([r["naive"] for r in rows]), "--", color=c, label="(ρ<f'>)^T")
        ax.plot(t, np.log10([r["lyapunov"] for r in rows]), ":", color=c, label="exp(λ₁T)")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("log10 ‖dL/dh_0‖ / ‖dL/dh_T‖")
    ax.legend(fontsize=7)
    return _save(fig, path)
