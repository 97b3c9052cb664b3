"""Interactive figures of the analytic core: spectra, Jacobian walks, Lyapunov sweeps
(re-exported by :mod:`bpttlab.views.figures`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bpttlab.views._plotly import color, finite, layout, thin

__all__ = ["lyapunov_figure", "spectrum_figure", "walks_figure"]

Doc = Mapping[str, Any]


def spectrum_figure(spectra: Sequence[Doc]) -> go.Figure:
    """Eigenvalues of W_hh on the complex plane with the unit circle, one set per gain
    (``{"gain", **Spectrum.to_dict()}``)."""
    fig = go.Figure()
    angles = [2 * math.pi * k / 180 for k in range(181)]
    fig.add_scatter(
        x=[math.cos(a) for a in angles],
        y=[math.sin(a) for a in angles],
        mode="lines",
        line={"color": "black", "width": 1},
        name="unit circle",
    )
    for i, s in enumerate(spectra):
        ev = s["eigenvalues"]
        name = f"gain {s['gain']:g}: ρ={s['spectral_radius']:.3f}, ‖W‖₂={s['spectral_norm']:.3f}"
        fig.add_scatter(
            x=[z["re"] for z in ev],
            y=[z["im"] for z in ev],
            mode="markers",
            marker={"size": 6, "color": color(i)},
            name=name,
        )
    fig.update_xaxes(title="Re λ", zeroline=True)
    fig.update_yaxes(title="Im λ", scaleanchor="x", scaleratio=1, zeroline=True)
    return layout(fig, f"eigenvalues of W_hh (gaussian, H = {spectra[0]['hidden']})", height=460)


_WALK_LINES = (("log10_spectral", "‖∂h_T/∂h_t‖₂", "solid"),
               ("log10_frobenius", "‖∂h_T/∂h_t‖_F", "solid"),
               ("log10_vjp", "‖vᵀ ∂h_T/∂h_t‖", "solid"),
               ("log10_rho_power", "ρ(W)^k", "dash"),
               ("log10_naive", "(ρ·⟨f'⟩)^k", "dot"))  # fmt: skip


def walks_figure(walks: Sequence[tuple[str, Doc]]) -> go.Figure:
    """log10 of the norms of ``dh_T/dh_t`` against steps back k, measured beside ``rho(W)^k``
    and ``(rho <f'>)^k``, one panel per (label, ``JacobianWalk.to_dict()``)."""
    fig = make_subplots(rows=1, cols=len(walks), subplot_titles=[label for label, _ in walks])
    shown: set[str] = set()
    for col, (_, walk) in enumerate(walks, start=1):
        rows = [walk["steps"][i] for i in thin(len(walk["steps"]))]
        k = [r["steps_back"] for r in rows]
        for i, (key, name, dash) in enumerate(_WALK_LINES):
            if key not in rows[0]:
                continue
            fig.add_scatter(
                x=k,
                y=[finite(r[key]) for r in rows],
                mode="lines",
                name=name,
                line={"dash": dash, "color": color(i)},
                legendgroup=key,
                showlegend=key not in shown,
                row=1,
                col=col,
            )
            shown.add(key)
        fig.update_xaxes(title="steps back k = T - t", row=1, col=col)
    fig.update_yaxes(title="log10 norm", row=1, col=1)
    return layout(fig, "Jacobian walks: the product dh_T/dh_t, measured and predicted", panels=True)


def lyapunov_figure(sweep: Sequence[Doc], hidden: int) -> go.Figure:
    """Top Lyapunov exponent against the gain, beside ``log rho(W)`` and the naive rate."""
    g = [r["gain"] for r in sweep]
    fig = go.Figure()
    fig.add_scatter(
        x=g,
        y=[r["exponents"][0] for r in sweep],
        mode="lines+markers",
        name="top Lyapunov exponent λ₁ (measured)",
        line={"color": color(0)},
    )
    fig.add_scatter(
        x=g,
        y=[r["naive_rate"] for r in sweep],
        mode="lines+markers",
        line={"dash": "dash", "color": color(1)},
        name="naive log(ρ·⟨f'⟩)",
    )
    fig.add_scatter(
        x=g,
        y=[r["log_spectral_radius"] for r in sweep],
        mode="lines",
        line={"dash": "dot", "color": color(2)},
        name="log ρ(W)",
    )
    fig.add_hline(y=0.0, line_color="black", line_width=1)
    fig.update_xaxes(title="gain g  (W = g·randn/√H)")
    fig.update_yaxes(title="rate per step (natural log)")
    return layout(fig, f"where a random tanh network turns chaotic (H = {hidden})")
