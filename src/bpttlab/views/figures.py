"""Interactive figures (plotly): one function per result, each taking the result's ``to_dict()``.

Views only: every figure draws numbers a result already holds; nothing here trains or fits.
The report (:mod:`bpttlab.views.report`) and the ``.figure()`` methods of ``Profile``,
``Diagnosis`` and the experiment results all draw through these functions. Long series are
thinned to at most ``MAX_POINTS`` points (the last point always kept); zeros and non-finite
norms are gaps on a log axis, never plotted as a number they are not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bpttlab.views._analytic_figures import lyapunov_figure, spectrum_figure, walks_figure
from bpttlab.views._plotly import (
    MAX_POINTS,
    PALETTE,
    color,
    finite,
    layout,
    log10,
    notebook_html,
    positive,
    thin,
)

__all__ = [
    "MAX_POINTS",
    "PALETTE",
    "claims_figure",
    "cliff_figure",
    "clipping_figure",
    "color",
    "decay_length_figure",
    "diagnosis_figure",
    "duel_figure",
    "finite",
    "lyapunov_figure",
    "grad_h0_figure",
    "heatmap_figure",
    "layout",
    "log10",
    "notebook_html",
    "positive",
    "profiles_figure",
    "spectrum_figure",
    "tbptt_figure",
    "thin",
    "walks_figure",
]

Doc = Mapping[str, Any]
_HEIGHT = 380


# ---------------------------------------------------------------- gradient profiles
def profiles_figure(items: Sequence[tuple[str, Sequence[float | None]]], title: str) -> go.Figure:
    """``||dL/dh_t||`` against t, one line per (label, norms (T+1,)), on a log axis."""
    fig = go.Figure()
    for i, (label, norms) in enumerate(items):
        keep = thin(len(norms))
        fig.add_scatter(
            x=keep,
            y=positive([norms[k] for k in keep]),
            name=label,
            mode="lines",
            line={"color": color(i)},
        )
    fig.update_xaxes(title="time step t")
    fig.update_yaxes(title="||dL/dh_t||", type="log", exponentformat="power")
    return layout(fig, title)


def diagnosis_figure(d: Doc) -> go.Figure:
    """The diagnosis' fitted decay ``exp(rate * s)`` against steps back s (relative to the
    readout's gradient), the 1e-3 line and the measured horizon."""
    T, rate = int(d["T"]), d.get("rate_per_step")
    fig = go.Figure()
    if rate is not None:
        s = thin(T + 1)
        fig.add_scatter(x=s, y=[math.exp(max(rate * k, -700.0)) for k in s], mode="lines",
                        name=f"fitted: x{math.exp(rate):.4g} per step")  # fmt: skip
    fig.add_hline(y=1e-3, line_dash="dot", line_color="grey", annotation_text="1e-3 of readout")
    if d.get("horizon") is not None:
        fig.add_vline(x=d["horizon"], line_dash="dash", annotation_text=f"horizon {d['horizon']}")
    fig.update_xaxes(title="steps back s = T - t", range=[0, T])
    fig.update_yaxes(title="||dL/dh_t|| / ||dL/dh_T||", type="log", exponentformat="power")
    ratio = d.get("ratio")
    title = f"{d['verdict']}: ||dL/dh_0|| / ||dL/dh_T|| = {_fmt(ratio)} (T = {T})"
    return layout(fig, title)


def heatmap_figure(steps: Sequence[int], norms: Sequence[Sequence[float]], title: str) -> go.Figure:
    """log10 ``||dL/dh_t||`` over time t (x) and training step (y): rows strided to <= 150,
    columns to <= 300; zeros and non-finite norms are blank cells."""
    rows, cols = thin(len(steps), 150), thin(len(norms[0]) if norms else 0, 300)
    z = [[log10(norms[r][c]) for c in cols] for r in rows]
    fig = go.Figure(
        go.Heatmap(
            x=cols,
            y=[steps[r] for r in rows],
            z=z,
            colorscale="Viridis",
            colorbar={"title": {"text": "log10"}},
            hoverongaps=False,
            hovertemplate="t=%{x}, step %{y}: 10^%{z:.2f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="time step t")
    fig.update_yaxes(title="training step")
    return layout(fig, title)  # fmt: skip


def grad_h0_figure(series: Sequence[tuple[str, Sequence[int], Sequence[float]]]) -> go.Figure:
    """``||dL/dh_0||`` at every training step, one line per (label, steps, values)."""
    fig = go.Figure()
    for i, (label, steps, values) in enumerate(series):
        keep = thin(len(steps))
        fig.add_scatter(
            x=[steps[k] for k in keep],
            y=positive([values[k] for k in keep]),
            mode="lines",
            name=label,
            line={"color": color(i)},
        )
    fig.update_xaxes(title="training step")
    fig.update_yaxes(title="||dL/dh_0||", type="log", exponentformat="power")
    return layout(fig, "||dL/dh_0|| per training step")


# ---------------------------------------------------------------- experiments
def duel_figure(doc: Doc) -> go.Figure:
    """Per seed, held-out accuracy (left) and ``||dL/dh_0||`` at the first and the last step
    (right), each architecture's mean accuracy with its bootstrap 95% interval."""
    b = doc["budget"]
    titles = ("held-out accuracy per seed", "||dL/dh_0||: first and last step")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    archs = list(dict.fromkeys(r["arch"] for r in doc["results"]))  # the config's order
    for i, arch in enumerate(archs):
        s, c = doc["summary"][arch], color(i)
        rows = [r for r in doc["results"] if r["arch"] == arch]
        seeds = [f"seed {r['seed']}" for r in rows]
        fig.add_scatter(
            x=[arch] * len(rows),
            y=[r["accuracy"] for r in rows],
            mode="markers",
            name=f"{arch}: seeds",
            text=seeds,
            legendgroup=arch,
            row=1,
            col=1,
            marker={"size": 8, "opacity": 0.6, "color": c},
        )
        fig.add_scatter(
            x=[arch],
            y=[s["accuracy_mean"]],
            mode="markers",
            legendgroup=arch,
            name=f"{arch}: mean, {s['successes']}/{s['seeds']} learn it",
            marker={
                "symbol": "line-ew-open",
                "size": 34,
                "color": c,
                "line": {"width": 3, "color": c},
            },
            error_y=_interval(s["accuracy_mean"], s["accuracy_low"], s["accuracy_high"]),
            row=1,
            col=1,
        )
        for key, when, symbol in (
            ("grad_h0_init", "first", "circle-open"),
            ("grad_h0_final", "last", "circle"),
        ):
            fig.add_scatter(
                x=[f"{arch} {when}"] * len(rows),
                y=positive([r[key] for r in rows]),
                mode="markers",
                marker={"symbol": symbol, "size": 8, "color": c},
                text=seeds,
                name=f"{arch} {when}",
                legendgroup=arch,
                showlegend=False,
                row=1,
                col=2,
            )
    if archs:
        threshold = doc["summary"][archs[0]]["threshold"]
        fig.add_hline(
            y=threshold,
            line_dash="dot",
            line_color="grey",
            row=1,
            col=1,
            annotation_text="learned above this line",
        )
    fig.update_yaxes(title="accuracy", range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
    title = (
        f"duel: {b['task']} T={b['length']}, {b['steps']} {b['optimizer']} steps at lr "
        f"{b['lr']:g}, {len(b['seeds'])} seeds"
    )
    return layout(fig, title, panels=True)


def cliff_figure(doc: Doc, series_key: str = "series", name: str = "cliff") -> go.Figure:
    """Per series: the success rate against T with its Wilson 95% interval (left), the mean
    accuracy with its bootstrap interval (right), and T50 with its interval at rate 1/2."""
    titles = ("seeds that learn it (95% interval)", "mean held-out accuracy (95% interval)")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    labels = list(dict.fromkeys(str(r[series_key]) for r in doc["rows"]))
    lengths = sorted({r["length"] for r in doc["rows"]})
    for i, label in enumerate(labels):
        rows = [r for r in doc["rows"] if str(r[series_key]) == label]
        rows.sort(key=lambda r: r["length"])
        t, c = [r["length"] for r in rows], color(i)
        shown = f"k={label}" if series_key == "window" else label
        for col, key in ((1, "success"), (2, "accuracy")):
            mid = [r["success_rate" if key == "success" else "accuracy_mean"] for r in rows]
            fig.add_scatter(
                x=t,
                y=mid,
                mode="lines+markers",
                name=shown,
                legendgroup=label,
                showlegend=col == 1,
                line={"color": c},
                row=1,
                col=col,
                error_y=_intervals(
                    mid, [r[f"{key}_low"] for r in rows], [r[f"{key}_high"] for r in rows]
                ),
            )
        t50 = doc["t50"].get(label) or {}
        if t50.get("estimate") is not None:
            est = t50["estimate"]
            low, high = t50.get("low") or est, t50.get("high") or est
            fig.add_scatter(
                x=[est],
                y=[0.5],
                mode="markers",
                legendgroup=label,
                name=f"T50 {shown}: {est:.3g} ({t50['status']})",
                marker={"symbol": "diamond", "size": 12, "color": c},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [high - est],
                    "arrayminus": [est - low],
                    "color": c,
                },
                row=1,
                col=1,
            )
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey", row=1, col=1)
    fig.update_xaxes(title="sequence length T", type="log", tickvals=lengths)
    fig.update_yaxes(range=[-0.05, 1.05])
    b = doc["budget"]
    title = f"{name}: {b['task']}, {b['steps']} {b['optimizer']} steps, {len(b['seeds'])} seeds"
    return layout(fig, title, panels=True)


def tbptt_figure(doc: Doc) -> go.Figure:
    """The cliff of each truncation window k (``TbpttResult.to_dict()``)."""
    return cliff_figure(doc, series_key="window", name=f"truncated BPTT ({doc['budget']['arch']})")


def clipping_figure(doc: Doc) -> go.Figure:
    """Per case and clipping rule: ``||dL/dh_0|| / ||dL/dh_T||`` before and after training
    (median, min-max range over seeds; none after a divergence) and how many seeds diverged."""
    cases = list(dict.fromkeys(r["case"] for r in doc["rows"]))
    fig = make_subplots(rows=1, cols=len(cases), subplot_titles=[f"{c} case" for c in cases])
    for col, case in enumerate(cases, start=1):
        rows = [r for r in doc["rows"] if r["case"] == case]
        labels = [
            f"{r['clip']}<br>{r['diverged']}/{r['seeds']} diverged" + _missing(r) for r in rows
        ]
        for i, (key, name) in enumerate(
            (("grad_h0_ratio_init", "before training"), ("grad_h0_ratio", "after training"))
        ):
            mid = [r[key]["median"] for r in rows]
            fig.add_scatter(
                x=labels,
                y=positive(mid),
                mode="markers",
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                row=1,
                col=col,
                marker={
                    "size": 10,
                    "color": color(i),
                    "symbol": "circle-open" if i == 0 else "circle",
                },
                error_y=_intervals(
                    mid, [r[key]["min"] for r in rows], [r[key]["max"] for r in rows]
                ),
            )
        fig.update_yaxes(type="log", exponentformat="power", row=1, col=col)
    fig.update_yaxes(title="||dL/dh_0|| / ||dL/dh_T||", row=1, col=1)
    s = doc["setup"]
    title = f"clipping: {s['steps']} SGD steps at lr {s['lr']:g}, {len(s['seeds'])} seeds"
    return layout(fig, title, panels=True)


def decay_length_figure(doc: Doc) -> go.Figure:
    """``||dL/dh_0|| / ||dL/dh_T||`` against T per spectral radius: measured (median and range
    over W) beside ``(rho <f'>)^T`` and ``exp(lambda_1 T)``."""
    fig = go.Figure()
    for i, radius in enumerate(dict.fromkeys(r["radius"] for r in doc["rows"])):
        rows = [r for r in doc["rows"] if r["radius"] == radius]
        t, mid, c, group = [r["length"] for r in rows], [r["ratio"] for r in rows], color(i), str(i)
        fig.add_scatter(
            x=t,
            y=positive(mid),
            mode="lines+markers",
            legendgroup=group,
            name=f"measured, ρ={radius:g}",
            line={"color": c},
            error_y=_intervals(mid, [r["ratio_min"] for r in rows], [r["ratio_max"] for r in rows]),
        )
        for key, name, dash in (("naive", "(ρ<f'>)^T", "dash"), ("lyapunov", "exp(λ₁T)", "dot")):
            fig.add_scatter(
                x=t,
                y=positive([r[key] for r in rows]),
                mode="lines",
                line={"dash": dash, "color": c},
                name=f"{name}, ρ={radius:g}",
                legendgroup=group,
            )
    fig.update_xaxes(title="sequence length T")
    fig.update_yaxes(title="||dL/dh_0|| / ||dL/dh_T||", type="log", exponentformat="power")
    return layout(fig, "measured decay against its two predictions (tanh rnn, median over W)")


def claims_figure(doc: Doc) -> go.Figure:
    """The claims audit as a table: id, the claim, the measurement, the verdict."""
    rows = doc["claims"]
    cols = [[r[k] for r in rows] for k in ("id", "claim", "measured", "verdict")]
    header = {"values": ["id", "the lesson says", "measured", "verdict"], "align": "left"}
    table = go.Table(
        columnwidth=[40, 220, 320, 80], header=header, cells={"values": cols, "align": "left"}
    )
    return layout(
        go.Figure(table), f"the lessons' claims ({len(rows)})", height=120 + 60 * len(rows)
    )


# ---------------------------------------------------------------- helpers
def _missing(row: Doc) -> str:
    """Why a clipping rule has no point after training on the log axis, if it has none."""
    after = row["grad_h0_ratio"]["median"]
    if after is None:
        return "<br>after: none (not finite)"
    return "<br>after: 0 (no gradient at h_0)" if after == 0 else ""


def _fmt(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _interval(mid: float | None, low: float | None, high: float | None) -> dict[str, Any]:
    return _intervals([mid], [low], [high])


def _intervals(
    mid: Sequence[float | None], low: Sequence[float | None], high: Sequence[float | None]
) -> dict[str, Any]:
    """Asymmetric error bars from [low, high] around mid (none where a bound is missing)."""

    def gap(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else max(0.0, a - b)

    return {"type": "data", "symmetric": False,
            "array": [gap(h, m) for m, h in zip(mid, high, strict=True)],
            "arrayminus": [gap(m, lo) for m, lo in zip(mid, low, strict=True)]}  # fmt: skip
