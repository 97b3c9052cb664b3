"""The report's page builder: figures registered once as JSON, sections, result pickers.

A figure is stored as plotly JSON without its template (the page sets one template for all,
so it is not repeated per figure) and drawn by the page's script when it first becomes
visible. Every text that comes from the store or a result is escaped here.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import plotly.io as pio

__all__ = ["Page", "code", "esc", "table"]


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def code(text: str) -> str:
    return f"<code>{esc(text)}</code>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "data") -> str:
    """An HTML table; ``header`` is escaped, the cells are HTML already."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Page:
    """Collects the figures (id -> plotly JSON) and which sections have data."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.filled: dict[str, bool] = {}

    def figure(self, fig: Any, cls: str = "fig") -> str:
        """Register a plotly figure; returns the div the page's script draws it into."""
        fid = f"fig-{len(self.figures) + 1}"
        doc = json.loads(pio.to_json(fig, validate=False))
        doc.get("layout", {}).pop("template", None)
        self.figures[fid] = {"data": doc.get("data", []), "layout": doc.get("layout", {})}
        return f'<div class="{cls}" id="{fid}" data-figure="{fid}"></div>'

    def choices(self, group: str, items: Sequence[tuple[str, str]], what: str) -> str:
        """One block per result, a select to switch between them (the first is shown)."""
        if len(items) == 1:
            return items[0][1]
        options = "".join(
            f'<option value="{i}">{esc(label)}</option>' for i, (label, _) in enumerate(items)
        )
        blocks = "".join(
            f'<div class="choice" data-pick="{group}" data-index="{i}"{" hidden" if i else ""}>'
            f"{body}</div>"
            for i, (_, body) in enumerate(items)
        )
        return (
            f'<p class="pick"><label>{esc(what)} ({len(items)} in the store): '
            f'<select data-pick="{group}">{options}</select></label></p>{blocks}'
        )

    def section(
        self, sid: str, title: str, look: str, body: str | None, fills: str, level: int = 2
    ) -> str:
        """A section: its title, what to look at, and its body, or, without data, the command
        that fills it (``fills``, HTML)."""
        self.filled[sid] = body is not None
        content = (
            body if body is not None else f'<p class="empty">Nothing in the store yet: {fills}</p>'
        )
        return (
            f'<section id="{sid}" class="level{level}"><h{level}>{esc(title)}</h{level}>'
            f'<p class="look">{look}</p>{content}</section>'
        )

    def data_json(self, **extra: Any) -> str:
        """The page's data for its script; ``</`` escaped so no text can close the script."""
        text = json.dumps(
            {"figures": self.figures, **extra}, allow_nan=False, separators=(",", ":")
        )
        return text.replace("</", "<\\/")
