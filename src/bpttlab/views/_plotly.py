"""What the interactive figures share: thinning, colours, layout, and values fit for a log axis."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative

__all__ = ["MAX_POINTS", "PALETTE", "color", "finite", "layout", "log10", "notebook_html",
           "positive", "thin"]  # fmt: skip

MAX_POINTS = 600
_HEIGHT = 380
PALETTE = (*qualitative.Plotly, *qualitative.Dark24)


def thin(n: int, limit: int = MAX_POINTS) -> list[int]:
    """Indices 0..n-1 strided to at most ``limit`` (n - 1, the last, always kept)."""
    if n <= limit:
        return list(range(n))
    stride = math.ceil((n - 1) / (limit - 1))
    return sorted({*range(0, n, stride), n - 1})


def positive(values: Sequence[float | None]) -> list[float | None]:
    """A log axis draws only positive finite values: the rest become gaps (None)."""
    return [v if v is not None and math.isfinite(v) and v > 0 else None for v in values]


def color(i: int) -> str:
    """The i-th colour: the same series keeps one colour in every panel of a figure."""
    return str(PALETTE[i % len(PALETTE)])


def layout(fig: go.Figure, title: str, panels: bool = False, **kw: Any) -> go.Figure:
    """Title, size and margins; ``panels``: subplot titles sit below, so the title goes higher."""
    top = 70 if panels else 50
    fig.update_layout(title={"text": title, "font": {"size": 14}, "y": 0.98, "yanchor": "top"},
                      height=kw.pop("height", _HEIGHT), legend={"font": {"size": 10}},
                      margin={"l": 60, "r": 20, "t": top, "b": 50}, **kw)  # fmt: skip
    return fig


def notebook_html(fig: go.Figure, notes: Sequence[str] = ()) -> str:
    """The figure as Jupyter shows it (plotly's own ``_repr_html_``: the notebook renderer in a
    notebook, else a div that loads plotly.js from its CDN), then ``notes`` as a list."""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return str(fig._repr_html_()) + (f"<ul>{items}</ul>" if items else "")


def log10(v: float | None) -> float | None:
    ok = v is not None and math.isfinite(v) and v > 0
    return round(math.log10(v), 4) if ok else None  # type: ignore[arg-type]


def finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None
