"""The tour's ``summary.md``: its numbers as Markdown. Views only: every figure comes from the
summary dict ``bpttlab.tour.run_tour`` computed (or read back from the store)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["tour_markdown"]


def _g(x: float | None, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: str = "") -> list[str]:
    """A Markdown table; the columns whose index is in ``right`` are right-aligned."""
    align = ["---:" if str(i) in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return [*lines, *("| " + " | ".join(map(str, row)) + " |" for row in rows), ""]


def _seeds(seeds: Sequence[int]) -> str:
    return f"{len(seeds)} seed{'s' * (len(seeds) != 1)} ({', '.join(map(str, seeds))})"


def _analytic(s: dict[str, Any]) -> list[str]:
    vanish, grow = s["decay"]["vanishing"], s["decay"]["exploding"]
    growth = ", ".join(f"{r['magnitude']:.3g} (T={r['length']})" for r in grow["rows"])
    md = ["## 1. Decay: (λ·f')^T", "", "With λ = 0.9 and f' = 0.5 the per-step factor is 0.45:", ""]
    md += _table(
        ["T", "magnitude", "log10"],
        [
            [r["length"], f"{r['magnitude']:.3g}", f"{r['log10_magnitude']:.3f}"]
            for r in vanish["rows"]
        ],
        "012",
    )
    md += [
        f"float32 rounds it to 0 from T = {vanish['float32_underflow_at']}, float64 from T = "
        f"{vanish['float64_underflow_at']}. Growth with factor 1.1: {growth}.",
        "",
        "## 2. Activation derivative budgets",
        "",
    ]
    b = s["budget"]
    acts, steps = b["activations"], b["steps_to_threshold"]
    header = ["x", *(h for a in acts for h in (f"{a}'", "steps to 1e-6"))]
    rows = [
        [f"{row['x']:g}", *(v for a in acts for v in (f"{row[a]:.3g}", steps[a][i] or "never"))]
        for i, row in enumerate(b["rows"])
    ]
    md += _table(header, rows, "0123456")
    md += ["A tanh unit at x = 3 passes back 1% per step; sigmoid never more than 25%.", ""]
    md += ["## 3. Spectra of W_hh (gaussian, H = 64)", ""]
    md += _table(
        ["gain", "ρ(W)", "‖W‖₂", "fate", "horizon (ρ^t < 1e-6)"],
        [
            [
                g,
                f"{x['spectral_radius']:.4f}",
                f"{x['spectral_norm']:.4f}",
                x["fate"],
                x["horizon"] or "never",
            ]
            for g, x in s["spectrum"].items()
        ],
        "0124",
    )
    md += ["‖W‖₂ exceeds ρ(W): the norm bound alone never guarantees decay here.", ""]
    w = s["walk"]
    first, last, real = w["lesson"]["first"], w["lesson"]["last"], w["trajectory_last"]
    md += [
        "## 4. Jacobian walks",
        "",
        f"The lesson's demo (seed 0, H=64, T=50, gain 0.9): ‖·‖_F starts at "
        f"{first['frobenius']:.4g} (= √64, the identity) and ends at {last['frobenius']:.4g}. "
        f"At gain 1.1 the same loop ends at {w['lesson_gain_1.1_last']['frobenius']:.4g}: finite.",
        "",
        f"On a real noise-driven trajectory (T=100) ‖∂h_T/∂h_0‖₂ = "
        f"10^{real['log10_spectral']:.2f}, while ρ(W)^T predicts "
        f"10^{real['log10_rho_power']:.2f} and (ρ·⟨f'⟩)^T predicts 10^{real['log10_naive']:.2f} "
        f"(⟨f'⟩ = {w['trajectory_mean_derivative']:.3f}).",
        "",
        "![lesson walk](walk_lesson.png) ![trajectory walk](walk_trajectory.png)",
        "",
        f"## 5. Lyapunov exponents of random tanh networks (H = {s['lyapunov_setup']['hidden']})",
        "",
    ]
    rows = []
    for r in s["lyapunov"]:
        lam = r["exponents"][0]
        ok = "yes" if abs(lam) < 1e-3 or (lam < 0) == (r["naive_rate"] < 0) else "**no**"
        rows.append(
            [
                r["gain"],
                f"{lam:+.4f}",
                f"{r['log_spectral_radius']:+.4f}",
                f"{r['naive_rate']:+.4f}",
                ok,
            ]
        )
    md += _table(["gain", "λ₁", "log ρ(W)", "naive log(ρ⟨f'⟩)", "naive sign right?"], rows, "0123")
    return md + ["![lyapunov](lyapunov.png) ![decay](decay.png) ![budget](budget.png)", ""]


def _lab(lab: dict[str, Any]) -> list[str]:
    ran = lab["ran"]
    md = [
        f"## 6. Gradient profiles of the zoo (untrained, copy-bit, T = {ran['profile_length']}, "
        "float64)",
        "",
    ]
    md += _table(
        ["arch", "verdict", "‖dL/dh_0‖ / ‖dL/dh_T‖", "horizon", "probe"],
        [
            [
                f"`{a}`",
                d["verdict"],
                _g(d["ratio"]),
                _g(d["horizon"], "d") if d["horizon"] is not None else "beyond T",
                d["method"],
            ]
            for a, d in lab["profiles"].items()
        ],
        "23",
    )
    duel = ran["duel"]
    md += [
        f"## 7. The duel: {' vs '.join(duel['archs'])} at T = {duel['length']}",
        "",
        f"Ran {_seeds(duel['seeds'])} per optimizer ({duel['budget']}); `bpttlab duel` runs 10.",
        "",
    ]
    rows = []
    for name, doc in lab["duel"].items():
        for arch in dict.fromkeys(r["arch"] for r in doc["results"]):  # the config's order
            x = doc["summary"][arch]
            mean = f"{x['accuracy_mean']:.3f} ({x['accuracy_low']:.3f}-{x['accuracy_high']:.3f})"
            rows.append([name, f"`{arch}`", f"{x['successes']}/{x['seeds']}", mean])
    md += _table(["optimizer", "arch", "seeds that learn it", "mean held-out accuracy"], rows, "23")
    md += [
        f"- {c['claim']}: **{c['verdict']}** (under {name})"
        for name, doc in lab["duel"].items()
        for c in doc["claims"]
    ]
    md += [
        "",
        "## 8. The cliff (the lesson's exercise grid)",
        "",
        f"Ran {_seeds(ran['cliff_seeds'])} at T = {', '.join(map(str, ran['cliff_lengths']))};"
        " `bpttlab cliff` runs 10.",
        "",
    ]
    for label, t in lab["cliff"]["t50"].items():
        interval = f" ({t['low']:.3g}-{t['high']:.3g})" if t.get("low") is not None else ""
        md.append(f"- `{label}`: {t['statement']}; T50 {t['status']}{interval}")
    md += ["", f"## 9. Clipping ({_seeds(ran['clipping_seeds'])})", ""]
    md += _table(
        ["case", "clip", "diverged", "‖dL/dh_0‖/‖dL/dh_T‖ before", "after"],
        [
            [
                r["case"],
                r["clip"],
                f"{r['diverged']}/{r['seeds']}",
                _g(r["grad_h0_ratio_init"]["median"]),
                _g(r["grad_h0_ratio"]["median"]),
            ]
            for r in lab["clipping"]
        ],
        "234",
    )
    md += [
        f"## 10. Training with a profile every {ran['profile_every']} steps ({duel['budget']}, "
        f"T = {duel['length']})",
        "",
    ]
    md += _table(
        ["arch", "held-out accuracy", "‖dL/dh_0‖ first step", "last step"],
        [
            [f"`{a}`", _g(r["accuracy"]), _g(r["grad_h0_init"]), _g(r["grad_h0_final"])]
            for a, r in lab["training"].items()
        ],
        "123",
    )
    return md


def tour_markdown(summary: dict[str, Any], db: str) -> str:
    """``summary.md`` of a tour (``run_tour``'s summary dict; ``db`` the store it used)."""
    md = [
        "# bpttlab tour",
        "",
        f"seed {summary['seed']}; store `{db}`; every figure computed "
        "on this run or read back from the store.",
        "",
        *_analytic(summary),
    ]
    if "lab" in summary:
        md += _lab(summary["lab"])
    report = summary.get("report")
    if report:
        md += [
            "## 11. The report",
            "",
            f"[report.html](report.html): {report['bytes']:,} bytes, "
            "one file (plotly.js inlined), no network needed; claims audit: "
            f"{report['claims']} ({report['claims_count']} claims).",
            "",
        ]
    elif report is None and "lab" in summary:
        md += ["The report needs plotly: `pip install 'bpttlab[report]'`.", ""]
    return "\n".join(md) + "\n"
