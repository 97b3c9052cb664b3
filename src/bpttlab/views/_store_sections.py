"""The report's sections that read the store: profiles, training, duel, cliff, clipping, and
the measured decay against length. Read only: each shows what is stored, newest first, and
names the command that fills it when nothing is."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bpttlab.store import RunRecord, Store
from bpttlab.views import figures
from bpttlab.views._page import Page, code, esc, table

__all__ = [
    "clipping_section",
    "cliff_section",
    "decay_length_block",
    "duel_section",
    "profiles_section",
    "training_section",
]

MAX_CHOICES = 12  # results of one kind offered in a picker, newest first
TRAIN_COMMAND = (
    "bpttlab train --arch rnn --length 30 --steps 300 --batch 256 --fixed-batch --profile-every 5"
)


def _g(x: float | None, digits: int = 3) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _spec(arch: str, options: dict[str, Any] | None) -> str:
    """``arch:k=v,...`` as the command line writes it."""
    if not options:
        return arch
    return arch + ":" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))


def _newest(store: Store, kind: str) -> list[RunRecord]:
    return [r for r in reversed(store.runs(kind)) if r.status == "done"][:MAX_CHOICES]


# ---------------------------------------------------------------- 5. profiles
def profiles_section(page: Page, store: Store) -> str:
    """Untrained profiles of the length with the most architectures (ties: the longest)."""
    groups: dict[tuple[str, int, str], dict[str, RunRecord]] = {}
    for r in store.runs("profile"):
        c = r.config
        if r.status != "done" or c.get("train_steps"):
            continue
        key = (_spec(c["task"], c.get("task_options")), int(c["length"]), str(c["dtype"]))
        groups.setdefault(key, {})[_spec(c["arch"], c.get("arch_options"))] = r  # newest wins
    look = (
        "Each slope is a decay rate per step: a falling straight line vanishes (tanh rnn, "
        "default lstm), a flat one keeps the gradient (irnn, orthogonal-rnn, lru), a rising "
        "one explodes (skip-rnn). The table gives each model's diagnosis and first advice."
    )
    fills = (
        f"{code('bpttlab profile --arch ARCH --length 100 --dtype float64')} for each "
        f"architecture, or {code('bpttlab tour')}."
    )
    if not groups:
        return page.section(
            "profiles", "5. Gradient profiles of every architecture", look, None, fills
        )
    (task, length, dtype), chosen = max(groups.items(), key=lambda g: (len(g[1]), g[0][1]))
    items = [(arch, r.result["norms"]) for arch, r in chosen.items()]
    fig = figures.profiles_figure(items, f"||dL/dh_t||, untrained, {task} T = {length} ({dtype})")
    rows = []
    for arch, r in chosen.items():
        d = r.result["diagnosis"]
        rate = d.get("rate_per_step")
        advice = d["advice"][0]["text"] if d.get("advice") else ""
        rows.append(
            [
                code(arch),
                f'<span class="verdict {esc(d["verdict"])}">{esc(d["verdict"])}</span>',
                _g(d["ratio"]),
                "—" if rate is None else f"{rate:+.4f} (x{math.exp(rate):.4g})",
                "beyond T" if d["horizon"] is None else str(d["horizon"]),
                esc(r.result["method"]),
                f'<span class="advice">{esc(advice)}</span>',
            ]
        )
    others = sorted(k for k in groups if k != (task, length, dtype))
    note = (
        ""
        if not others
        else '<p class="note">Also stored: '
        + ", ".join(
            f"{esc(t)} T = {n} ({esc(dt)}, {len(groups[t, n, dt])} archs)" for t, n, dt in others
        )
        + ".</p>"
    )
    body = (
        page.figure(fig)
        + table(
            [
                "arch",
                "verdict",
                "‖dL/dh_0‖/‖dL/dh_T‖",
                "rate per step",
                "horizon (to 1e-3)",
                "probe",
                "first advice",
            ],
            rows,
        )
        + note
    )
    return page.section(
        "profiles", f"5. Gradient profiles of every architecture (T = {length})", look, body, fills
    )


# ---------------------------------------------------------------- 6. training
def _profiled(store: Store) -> list[RunRecord]:
    """An rnn and an lstm with profiles (the newest of each), else the newest others."""
    runs = [
        r
        for r in store.runs("run")
        if r.status == "done" and (r.config.get("train") or {}).get("profile_every")
    ]
    newest: dict[str, RunRecord] = {}
    for r in reversed(runs):
        newest.setdefault(_spec(r.config["arch"], r.config.get("arch_options")), r)
    chosen = [newest[a] for a in ("rnn", "lstm") if a in newest]
    chosen += [r for a, r in newest.items() if a not in ("rnn", "lstm")][: 2 - len(chosen)]
    return chosen


def _run_label(r: RunRecord) -> str:
    c, t = r.config, r.config["train"]
    return (
        f"{_spec(c['arch'], c.get('arch_options'))} on {_spec(c['task'], c.get('task_options'))} "
        f"T={c['length']}: {t['steps']} {t['optimizer']} steps, seed {t['seed']}, held-out "
        f"accuracy {_g(r.result.get('accuracy'))}"
    )


def training_section(page: Page, store: Store) -> str:
    """The time x training-step heatmaps of ``||dL/dh_t||`` and ``||dL/dh_0||`` per step."""
    look = (
        "Each row of a heatmap is the gradient profile at one training step; the colour in "
        "the left columns is how much gradient reaches the first inputs. Watch whether it "
        "brightens as the model learns, and how ||dL/dh_0|| moves step by step."
    )
    fills = (
        f"{code(TRAIN_COMMAND)} (and the same with {code('--arch lstm')}), or "
        f"{code('bpttlab tour')}."
    )
    chosen = _profiled(store)
    if not chosen:
        return page.section(
            "training", "6. Training: gradient flow step by step", look, None, fills
        )
    maps, series = [], []
    for r in chosen:
        profiles = store.profiles(r)
        steps = sorted(profiles)
        name = _spec(r.config["arch"], r.config.get("arch_options"))
        fig = figures.heatmap_figure(
            steps,
            [profiles[s] for s in steps],
            f"{name}, T = {r.config['length']}: log10 ||dL/dh_t||",
        )
        maps.append(
            f'<div class="half">{page.figure(fig)}<p class="note">{esc(_run_label(r))}</p></div>'
        )
        g = store.metrics(r).get("grad_h0", [])
        series.append((name, [s for s, _ in g], [v for _, v in g]))
    body = f'<div class="row">{"".join(maps)}</div>' + page.figure(figures.grad_h0_figure(series))
    return page.section("training", "6. Training: gradient flow step by step", look, body, fills)


def duel_section(page: Page, store: Store) -> str:
    look = (
        "Each dot is a seed. The lesson says that at T = 30 the RNN stays at chance and the "
        "LSTM reaches 99.8%: see what the seeds say under Adam and under SGD, and which "
        "model's ||dL/dh_0|| grows with training."
    )
    items = []  # the newest first, Adam's before SGD's (the lesson's duel is Adam's)
    duels = sorted(_newest(store, "duel"), key=lambda r: r.result["budget"]["optimizer"] != "adam")
    for r in duels:
        b = r.result["budget"]
        verdicts = "".join(
            f"<li>{esc(c['claim'])}: <b>{esc(c['verdict'])}</b> — {esc(c['measured'])}</li>"
            for c in r.result.get("claims", [])
        )
        archs = dict.fromkeys(row["arch"] for row in r.result["results"])
        label = (
            f"{' vs '.join(archs)}, T={b['length']}, {b['steps']} "
            f"{b['optimizer']} steps, {len(b['seeds'])} seeds"
        )
        items.append(
            (
                label,
                page.figure(figures.duel_figure(r.result))
                + (f"<ul>{verdicts}</ul>" if verdicts else ""),
            )
        )
    body = page.choices("duel", items, "duel") if items else None
    fills = (
        f"{code('bpttlab duel')} and {code('bpttlab duel --optimizer sgd')}, or "
        f"{code('bpttlab tour')}."
    )
    return page.section("duel", "The duel: RNN against LSTM", look, body, fills, level=3)


def cliff_section(page: Page, store: Store) -> str:
    look = (
        "The success rate against T with its 95% interval: where it crosses 1/2 is T50 "
        "(the diamond, with its bootstrap interval); a cliff is named only where the "
        "intervals decide it. Truncated-BPTT sweeps are listed here too, one curve per window."
    )
    items = []
    for r in _newest(store, "cliff"):
        b = r.result["budget"]
        statements = "".join(
            f"<li>{code(s)}: {esc(t['statement'])}; T50 {esc(t['status'])}</li>"
            for s, t in r.result["t50"].items()
        )
        label = (
            f"{', '.join(r.result['t50'])} on {b['task']}, T = "
            f"{', '.join(map(str, b['lengths']))}, {len(b['seeds'])} seeds"
        )
        items.append(
            (label, page.figure(figures.cliff_figure(r.result)) + f"<ul>{statements}</ul>")
        )
    for r in _newest(store, "tbptt-sweep"):
        b = r.result["budget"]
        label = f"truncated BPTT: {b['arch']} on {b['task']}, windows {', '.join(r.result['t50'])}"
        items.append((label, page.figure(figures.tbptt_figure(r.result))))
    body = page.choices("cliff", items, "grid") if items else None
    fills = f"{code('bpttlab cliff')} (and {code('bpttlab tbptt')}), or {code('bpttlab tour')}."
    return page.section("cliff", "The cliff: accuracy against length", look, body, fills, level=3)


def clipping_section(page: Page, store: Store) -> str:
    look = (
        "Clipping stops the exploding relu RNN from diverging, by any rule, and leaves the "
        "vanishing tanh RNN's ||dL/dh_0|| / ||dL/dh_T|| where it was: it cannot create "
        "gradient that never arrives."
    )
    items = []
    for r in _newest(store, "clipping-demo"):
        s = r.result["setup"]
        label = f"{s['steps']} SGD steps at lr {s['lr']:g}, {len(s['seeds'])} seeds"
        items.append((label, page.figure(figures.clipping_figure(r.result))))
    body = page.choices("clipping", items, "demo") if items else None
    fills = f"{code('bpttlab clipping')}, or {code('bpttlab tour')}."
    return page.section("clipping", "Clipping", look, body, fills, level=3)


def decay_length_block(page: Page, store: Store) -> str:
    """The measured ``||dL/dh_0|| / ||dL/dh_T||`` against T (``bpttlab decay-vs-length``)."""
    items: Sequence[tuple[str, str]] = [
        (
            f"T = {', '.join(map(str, r.result['config']['lengths']))}, ρ = "
            f"{', '.join(f'{x:g}' for x in r.result['config']['radii'])}",
            page.figure(figures.decay_length_figure(r.result)),
        )
        for r in _newest(store, "decay-vs-length")
    ]
    if not items:
        return (
            f'<p class="empty">No measured decay against length yet: '
            f"{code('bpttlab decay-vs-length')} (or {code('bpttlab claims --quick')}).</p>"
        )
    return page.choices("decay-length", items, "measurement")
