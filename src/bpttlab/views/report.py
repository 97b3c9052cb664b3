"""``bpttlab report``: one self-contained interactive HTML file (plotly).

Sections: 1. the decay explorer, 2. the saturation explorer (both computed in the page's
script by the closed forms of ``theory.py``, ported: ``report.js``; the browser test checks
them against ``theory.py``), 3. spectra, 4. Jacobian walks and the Lyapunov sweep, 5. gradient
profiles, 6. training (heatmaps of ``||dL/dh_t||`` over time and training step, the duel, the
cliff, clipping), 7. the lessons' claims, each row linking to the figure behind it.

plotly.js is inlined once, the page's script and style once, every figure as JSON without its
template: the file opens with no network. Views only: the analytic data and the claims audit
are computed by the caller (``bpttlab.tour.make_report``); the rest is read from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import plotly.io as pio
from plotly.offline import get_plotlyjs

from bpttlab._util import now
from bpttlab.store import Store
from bpttlab.views import figures
from bpttlab.views._page import Page, code, esc, table
from bpttlab.views._store_sections import (
    cliff_section,
    clipping_section,
    decay_length_block,
    duel_section,
    profiles_section,
    training_section,
)

__all__ = ["FIGURE_OF_COMMAND", "Report", "render_report"]

# which section holds the figure behind a claim, by the bpttlab command that reproduces it
FIGURE_OF_COMMAND = {
    "decay": "decay",
    "budget": "saturation",
    "spectrum": "spectrum",
    "walk": "walks",
    "lyapunov": "walks",
    "decay-vs-length": "walks",
    "profile": "profiles",
    "diagnose": "profiles",
    "train": "training",
    "duel": "duel",
    "cliff": "cliff",
    "tbptt": "cliff",
    "clipping": "clipping",
}
_TITLES = {
    "decay": "decay explorer",
    "saturation": "saturation explorer",
    "spectrum": "spectrum",
    "walks": "walks",
    "profiles": "profiles",
    "training": "training",
    "duel": "duel",
    "cliff": "cliff",
    "clipping": "clipping",
}


@dataclass(frozen=True)
class Report:
    """The page (``html``) and which sections had data (``filled``: section id -> bool)."""

    html: str
    filled: dict[str, bool]


def _slider(sid: str, label: str, lo: float, hi: float, step: float, value: float) -> str:
    return (
        f'<label class="slider">{label} <input type="range" id="{sid}" min="{lo}" '
        f'max="{hi}" step="{step}" value="{value}"> <output id="{sid}-value"></output></label>'
    )


def _readout(sid: str, rows: list[tuple[str, str]]) -> str:
    cells = "".join(f'<tr><th>{label}</th><td data-key="{key}"></td></tr>' for key, label in rows)
    return f'<table class="readout" id="{sid}"><tbody>{cells}</tbody></table>'


def _explorers(page: Page) -> str:
    decay = page.section(
        "decay",
        "1. Decay explorer: (λ·f')^T",
        "The line is exact in log space for any T; the thin lines are what float32 and float64 "
        "hold, and they end where the magnitude rounds to exactly 0 (marked). Bring λ·f' close to "
        "1 and the underflow runs off to thousands of steps; above 1 it turns into overflow.",
        '<div class="explorer"><div class="panel"><div class="controls">'
        + _slider("decay-lambda", "eigenvalue λ", 0.05, 1.5, 0.005, 0.9)
        + _slider("decay-derivative", "derivative f'", 0.01, 1, 0.005, 0.5)
        + _slider("decay-tmax", "T up to 10^", 1, 6, 0.05, 3)
        + "</div>"
        + _readout(
            "decay-readout",
            [
                ("factor", "factor |λ·f'| per step"),
                ("regime", "regime"),
                ("T", "at T"),
                ("magnitude", "(λ·f')^T in float64"),
                ("log10", "log10 (λ·f')^T (exact)"),
                ("float32_underflow_at", "float32 rounds it to 0 from T ="),
                ("float64_underflow_at", "float64 rounds it to 0 from T ="),
                ("float32_overflow_at", "float32 overflows (inf) from T ="),
                ("float64_overflow_at", "float64 overflows (inf) from T ="),
            ],
        )
        + '</div><div class="fig" id="decay-plot"></div></div>',
        "",
    )
    saturation = page.section(
        "saturation",
        "2. Saturation explorer: tanh, sigmoid, relu and their derivatives",
        "A tanh unit at |z| = 3 passes back 1% of the gradient per step and needs only 3 such "
        "steps to fall below 1e-6; sigmoid' never exceeds 0.25; relu' is exactly 1 or 0. Move "
        "z and read how many steps at that derivative it takes.",
        '<div class="explorer"><div class="panel"><div class="controls">'
        + _slider("sat-z", "pre-activation z", -6, 6, 0.01, 2)
        + "</div>"
        + _readout(
            "sat-readout",
            [
                ("z", "z"),
                ("tanh_d", "tanh'(z)"),
                ("tanh_steps", "steps until below 1e-6 (tanh')"),
                ("sigmoid_d", "σ'(z)"),
                ("sigmoid_steps", "steps until below 1e-6 (σ')"),
                ("relu_d", "relu'(z)"),
                ("relu_steps", "steps until below 1e-6 (relu')"),
            ],
        )
        + '</div><div class="fig" id="sat-plot"></div></div>',
        "",
    )
    return decay + saturation


def _spectrum(page: Page, data: dict[str, Any]) -> str:
    spectra = data["spectra"]
    rows = [
        [
            f"{s['gain']:g}",
            f"{s['spectral_radius']:.4f}",
            f"{s['spectral_norm']:.4f}",
            esc(s["fate"]),
            str(s["horizon"] or "never"),
            str(s["horizon_bound"] or "never"),
        ]
        for s in spectra
    ]
    body = page.figure(figures.spectrum_figure(spectra), cls="fig square") + table(
        ["gain", "ρ(W)", "‖W‖₂", "fate", "horizon ρ^t < 1e-6", "guaranteed ‖W‖₂^t < 1e-6"], rows
    )
    look = (
        "The eigenvalues of gain·randn/√H fill a disc of radius about the gain (the circular "
        "law); the spectral norm ‖W‖₂ is about twice the radius, so the norm bound alone never "
        "proves decay at these gains."
    )
    return page.section(
        "spectrum",
        f"3. Spectrum of W_hh (H = {spectra[0]['hidden']}, seed {data['seed']})",
        look,
        body,
        "",
    )


def _walks(page: Page, store: Store, data: dict[str, Any]) -> str:
    w = data["walks"]
    walks = [
        ("the lesson's demo (gain 0.9): W^k", w["lesson"]),
        ("the lesson's demo at gain 1.1", w["lesson_gain_1.1"]),
        ("tanh RNN driven by noise (gain 0.9)", w["trajectory"]),
    ]
    setup = data["lyapunov_setup"]
    body = (
        page.figure(figures.walks_figure(walks))
        + page.figure(figures.lyapunov_figure(data["lyapunov"], setup["hidden"]))
        + f'<p class="note">Lyapunov sweep: H = {setup["hidden"]}, T = {setup["length"]} '
        f"(warmup {setup['warmup']}), QR re-orthonormalisation.</p>"
        + "<h3>Measured decay against length</h3>"
        + decay_length_block(page, store)
    )
    look = (
        "In the lesson's demo the trajectory stays at 0, so the walk is just ‖W^k‖ and starts "
        "at √H, not 1; on a real trajectory the product falls faster than ρ^k. Above gain ≈ 1 "
        "the top Lyapunov exponent turns positive while the naive rate log(ρ⟨f'⟩) stays "
        "negative: its sign is wrong."
    )
    return page.section("walks", "4. Jacobian walks and Lyapunov exponents", look, body, "")


def _figure_links(command: str) -> str:
    sections = []
    for part in command.split(";"):
        words = part.split()
        if len(words) > 1 and words[0] == "bpttlab" and words[1] in FIGURE_OF_COMMAND:
            sections.append(FIGURE_OF_COMMAND[words[1]])
    links = [f'<a class="figlink" href="#{s}">{_TITLES[s]}</a>' for s in dict.fromkeys(sections)]
    return " · ".join(links) or "—"


def _claims(page: Page, claims: dict[str, Any] | None, scope: str) -> str:
    look = (
        "Every claim of the three lessons the lab was built from, measured here, with a "
        "verdict only where the evidence decides it; each row links to the figure behind it."
    )
    fills = (
        f"{code('bpttlab claims')} (about 600 small runs, kept in the store), then "
        f"{code('bpttlab report')}; {code('bpttlab report --claims quick')} audits the "
        "claims that need no training."
    )
    if claims is None:
        return page.section("claims", "7. The lessons' claims, measured", look, None, fills)
    rows = []
    for c in claims["claims"]:
        measured = esc(c["measured"]) + (
            f'<br><span class="note">{esc(c["conditions"])}</span>' if c.get("conditions") else ""
        )
        css = esc(c["verdict"]).replace(" ", "-")
        verdict = f'<span class="verdict {css}">{esc(c["verdict"])}</span>'
        rows.append(
            [
                esc(c["id"]),
                esc(c["claim"]),
                measured,
                verdict,
                _figure_links(c["command"]) + f"<br>{code(c['command'])}",
            ]
        )
    what = (
        "the full audit, read back from the store"
        if scope == "full"
        else f"the quick audit: the {len(rows)} claims that need no training beyond the clipping "
        f"demo; after {code('bpttlab claims')} the report shows every claim"
    )
    body = f'<p class="note">{what}.</p>' + table(
        ["id", "the lesson says", "bpttlab measures", "verdict", "figure, and how to reproduce"],
        rows,
        cls="data claims",
    )
    return page.section("claims", "7. The lessons' claims, measured", look, body, fills)


def _asset(name: str) -> str:
    return resources.files("bpttlab.views").joinpath(name).read_text(encoding="utf-8")


def render_report(
    store: Store,
    analytic: dict[str, Any],
    claims: dict[str, Any] | None = None,
    claims_scope: str = "none",
    title: str = "bpttlab report",
) -> Report:
    """The report page.

    Arguments:
        store: where the profiles, runs and experiment results are read (nothing is written).
        analytic: ``bpttlab.tour.analytic()``: spectra, Jacobian walks, the Lyapunov sweep.
        claims: ``ClaimsResult.to_dict()``, or None (the section names the command).
        claims_scope: "full" or "quick": which audit ``claims`` is.
    """
    page = Page()
    sections = [
        _explorers(page),
        _spectrum(page, analytic),
        _walks(page, store, analytic),
        profiles_section(page, store),
        training_section(page, store),
        duel_section(page, store),
        cliff_section(page, store),
        clipping_section(page, store),
        _claims(page, claims, claims_scope),
    ]
    runs = store.runs()
    nav = "".join(f'<a href="#{sid}">{esc(_TITLES.get(sid, sid))}</a>' for sid in page.filled)
    template = pio.templates["plotly_white"].to_plotly_json()
    data = page.data_json(template=template)
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")  # never the case in 4.x
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{esc(title)}</title>
<style>{_asset("report.css")}</style></head>
<body><header><h1>{esc(title)}</h1>
<p>Gradient flow through time, computed on the spot: sections 1-4 are closed forms and float64
walks, 5-7 read the store <code>{esc(store.path)}</code> ({len(runs)} stored runs and results).
Generated {esc(now()[:19].replace("T", " "))} UTC. One file: it needs no network.</p>
<nav>{nav}</nav></header><main>
{"".join(sections)}
</main><footer>bpttlab: <code>bpttlab report --db {esc(store.path)}</code> rebuilds this page.
</footer>
<script>{plotly_js}</script>
<script type="application/json" id="bpttlab-data">{data}</script>
<script>{_asset("report.js")}</script>
</body></html>
"""
    return Report(html, dict(page.filled))
