"""The claims of L1, the interactive lesson: one function per claim, measured and judged."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bpttlab import dynamics, theory
from bpttlab.experiments._claims_common import (
    CLIPPING,
    Claim,
    Measured,
    clipping,
    close,
    decide,
    failed,
    learned,
    row,
    state,
)
from bpttlab.experiments._evidence import Evidence, fmt, fraction
from bpttlab.stats import wilson

__all__ = ["L1_CLAIMS"]


# ---------------------------------------------------------------- L1: the interactive lesson
def _l1_1(ev: Evidence) -> Measured:
    preset = dynamics.lesson_preset()
    walk = preset["walk"]
    start, end = 10 ** walk.log10_frobenius[0], 10 ** walk.log10_frobenius[-1]
    rho = walk.spectral_radius
    ok = close(start, 1.0) and close(end, 1.082e-7) and close(rho, 0.714)
    text = (
        f"the demo's loop starts at ||I||_F = {fmt(start)}, ends at {fmt(end)} (T=50), "
        f"rho(W) = {fmt(rho)}"
    )
    return text, decide(ok, not ok), ""


def _l1_2(ev: Evidence) -> Measured:
    end = 10 ** dynamics.lesson_preset(gain=1.1)["walk"].log10_frobenius[-1]
    explodes = not math.isfinite(end) or end >= 1e10
    return (
        f"at scale 1.1/sqrt(H) the loop ends at {fmt(end)} (T=50), finite",
        decide(explodes, not explodes),
        "",
    )


def _duel_text(d: Any, name: str) -> str:
    s = d.summary
    g = {a: np.median([r["grad_h0_final"] or 0.0 for r in d.results if r["arch"] == a])
         for a in ("rnn", "lstm")}  # fmt: skip
    return (
        f"under {name}: rnn learns in {s['rnn']['successes']}/{s['rnn']['seeds']} seeds, "
        f"lstm in {s['lstm']['successes']}/{s['lstm']['seeds']}; mean accuracy rnn "
        f"{s['rnn']['accuracy_mean']:.3f}, lstm {s['lstm']['accuracy_mean']:.3f}; median "
        f"final ||dL/dh_0|| rnn {fmt(g['rnn'])}, lstm {fmt(g['lstm'])}"
    )


def _l1_3(ev: Evidence) -> Measured:
    adam, sgd = ev.duel_adam, ev.duel_sgd

    def matches(d: Any) -> bool | None:  # the lesson's outcome: rnn at chance, lstm learns
        rnn, lstm = d.summary["rnn"], d.summary["lstm"]
        if rnn["success_high"] < 0.5 and lstm["success_low"] > 0.5:
            return True
        if rnn["success_low"] > 0.5 or lstm["success_high"] < 0.5:
            return False
        return None

    found = (matches(adam), matches(sgd))
    text = _duel_text(adam, "Adam") + "; " + _duel_text(sgd, "SGD")
    verdicts: dict[tuple[bool | None, bool | None], str] = {
        (False, False): "does not hold", (True, True): "holds",
        (True, False): "conditional", (False, True): "conditional"}  # fmt: skip
    verdict = verdicts.get(found, "inconclusive")
    cond = (
        "optimizer: Adam divides out the gradient's scale, so a tiny ||dL/dh_0|| still moves "
        "the RNN; SGD moves neither model off chance"
    )
    return text, verdict, cond


def _l1_4(ev: Evidence) -> Measured:
    rows = {(r["radius"], r["length"]): r for r in ev.decay.rows}
    r95 = rows[0.95, 50]
    drop = rows[0.95, 30]["ratio"] / rows[0.95, 10]["ratio"]
    claimed_drop, f32 = 1e-10, 1.2e-38  # "ten orders of magnitude"; below float32 precision
    text = (
        f"tanh rnn scaled to rho = 0.95 (median over 5 W): ratio at T=50 {fmt(r95['ratio'])} "
        f"({fmt(r95['ratio_min'])}-{fmt(r95['ratio_max'])}); from T=10 to 30 it falls by "
        f"{fmt(drop)}, not 1e-10; rho = 1.05 at T=50: {fmt(rows[1.05, 50]['ratio'])}"
    )
    far = r95["ratio_min"] > 1e6 * f32 and drop > 1e4 * claimed_drop
    return text, decide(False, far), ""


def _l1_5(ev: Evidence) -> Measured:
    cases = [(0.9, 50, 0.005), (0.5, 50, 8.9e-16), (0.25, 20, 1e-12), (0.9, 1000, 1e-46)]
    got = [theory.decay(f, 1.0, [n]).rows[0].log10_magnitude for f, n, _ in cases]
    ok = all(abs(g - math.log10(p)) < 0.35 for g, (_, _, p) in zip(got, cases, strict=True))
    text = ", ".join(f"{f}^{n} = {fmt(10**g)}" for g, (f, n, _) in zip(got, cases, strict=True))
    return text, decide(ok, not ok), ""


def _l1_6(ev: Evidence) -> Measured:
    x = [0.0, 1.0, 2.0, 3.0, 5.0]
    t, s = theory.activation_derivative("tanh", x), theory.activation_derivative("sigmoid", x)
    pt, ps = [1, 0.420, 0.071, 0.010, 0.0001], [0.250, 0.197, 0.105, 0.045, 0.0066]
    # printed to a few digits: each within half a unit of its last printed digit
    ok = all(abs(a - b) <= 5e-4 for a, b in zip(t, pt, strict=True)) and all(
        abs(a - b) <= 5e-4 for a, b in zip(s, ps, strict=True))  # fmt: skip
    text = (
        "tanh' = " + ", ".join(fmt(v) for v in t) + "; sigmoid' = " + ", ".join(fmt(v) for v in s)
    )
    return text, decide(ok, not ok), ""


def _l1_7(ev: Evidence) -> Measured:
    return clipping(ev)


def _l1_8(ev: Evidence) -> Measured:
    names = ("rnn:init=gaussian,gain=0.5", "rnn", "rnn:init=orthogonal", "irnn")
    ratios = {a: ev.ratio(a, 100) for a in names}
    rows = {a: row(ev.inits, a, 50) for a in names}
    default = rows["rnn"]
    speeds = ratios["rnn:init=gaussian,gain=0.5"] < ratios["rnn"]
    kept = [a for a in ("rnn:init=orthogonal", "irnn") if ratios[a] > 1e6 * ratios["rnn"]]
    better = [a for a in ("rnn:init=orthogonal", "irnn") if learned(rows[a]) and not
              learned(default)]  # fmt: skip
    worse = [a for a in ("rnn:init=orthogonal", "irnn") if failed(rows[a]) and not
             failed(default)]  # fmt: skip
    text = ("untrained ratio at T=100: " + ", ".join(f"{a} {fmt(r)}" for a, r in ratios.items())
            + "; copy-bit T=50 learned: " + ", ".join(f"{a} {fraction(r)}" for a, r in
                                                      rows.items()))  # fmt: skip
    holds = speeds and len(kept) == 2 and not worse  # the profiles decide; training may not
    cond = (f"in training (copy-bit, T=50, Adam) better than the default init: "
            f"{', '.join(better) or 'none'}; not decided: "
            f"{', '.join(a for a in ('rnn:init=orthogonal', 'irnn') if a not in better + worse)}"
            ) if holds else ""  # fmt: skip
    return text, decide(holds, not speeds or bool(worse) or len(kept) < 2), cond


def _l1_9(ev: Evidence) -> Measured:
    sig, tanh = ev.ratio("rnn:activation=sigmoid", 100), ev.ratio("rnn", 100)
    rows = {a: row(ev.inits, a, n) for a in ("rnn", "rnn:activation=sigmoid") for n in (20,)}
    worse = sig < tanh and not (learned(rows["rnn:activation=sigmoid"]) and failed(rows["rnn"]))
    text = (
        f"untrained ratio at T=100: sigmoid {fmt(sig)}, tanh {fmt(tanh)}; copy-bit T=20 "
        f"learned: sigmoid {fraction(rows['rnn:activation=sigmoid'])}, tanh "
        f"{fraction(rows['rnn'])}"
    )
    return text, decide(worse, not worse), ""


def _l1_10(ev: Evidence) -> Measured:
    rows = [r for r in ev.duel_adam.results if r["arch"] == "rnn"]
    tiny = [r for r in rows if (r["grad_h0_init"] or 0) < 1e-6]
    learned = [r for r in tiny if (r["accuracy"] or 0) >= ev.duel_adam.summary["rnn"]["threshold"]]
    low, _ = wilson(len(learned), len(tiny)) if tiny else (0.0, 1.0)
    text = (
        f"duel under Adam (copy-bit, T=30): {len(tiny)}/{len(rows)} rnn seeds start with "
        f"||dL/dh_0|| < 1e-6; {len(learned)} of them learn the bit at step 0"
    )
    return text, decide(False, low > 0.5), "under SGD the rule holds: nothing learns"


def _l1_11(ev: Evidence) -> Measured:
    g = ev.grid
    rnn = [row(g, "rnn", n) for n in (5, 20, 50)]
    lstm50 = row(g, "lstm", 50)
    lesson_rnn = learned(rnn[0]) and failed(rnn[2])
    lstm_ok = learned(lstm50)
    text = "; ".join(f"{s}: {t['statement']} (T50 {t['status']})" for s, t in g.t50.items())
    holds = lesson_rnn and lstm_ok
    fails = failed(lstm50) or learned(rnn[2])
    return text, decide(holds, fails), "500 Adam steps on one fixed batch of 256, 10 seeds"


def _l1_12(ev: Evidence) -> Measured:
    lstm = ev.grad_h0_series("lstm", 50)
    rnn = ev.grad_h0_series("rnn", 50)
    lstm_med = float(np.median([np.median(s) for s in lstm])) if lstm else math.nan
    lstm_max = float(max(max(s) for s in lstm)) if lstm else math.nan
    rnn_med = float(np.median([np.median(s) for s in rnn])) if rnn else math.nan
    text = (
        f"||dL/dh_0|| per step at T=50 (500 Adam steps, 10 seeds): lstm median "
        f"{fmt(lstm_med)}, largest {fmt(lstm_max)}; rnn median {fmt(rnn_med)}"
    )
    fails = lstm_max < 1e-3  # the lesson: the LSTM's stays ~1e-1 throughout
    holds = lstm_med > 1e-2 and rnn_med < 1e-5
    return text, decide(holds, fails), ""


def _l1_13(ev: Evidence) -> Measured:
    pairs = [(row(ev.inits, "rnn:activation=relu", n), row(ev.inits, "rnn", n)) for n in (20, 50)]
    rescues = any(learned(r) and failed(t) for r, t in pairs)  # decided: relu learns, tanh not
    never_better = not any(learned(r) and not learned(t) for r, t in pairs)
    text = "copy-bit learned, relu against tanh: " + ", ".join(
        f"T={r['length']} {fraction(r)} against {fraction(t)}" for r, t in pairs)  # fmt: skip
    return text, decide(never_better, rescues), "PyTorch's default init, 500 Adam steps"


def _l1_14(ev: Evidence) -> Measured:
    rates = {
        a: ev.cell_rate(a) for a in ("lstm", "lstm:forget_bias=one", "lstm:forget_bias=chrono")
    }
    text = "||dL/dc_t|| per step back (untrained, T=100): " + ", ".join(
        f"{a} x{math.exp(r):.3f}" for a, r in rates.items())  # fmt: skip
    kept = [a for a, r in rates.items() if math.exp(r) > 0.95]
    lost = [a for a, r in rates.items() if math.exp(r) <= 0.95]
    cond = (f"~1 only with an open forget gate ({', '.join(kept) or 'none'}); "
            f"{', '.join(lost) or 'none'} lose it")  # fmt: skip
    return text, "conditional" if kept and lost else decide(not lost, not kept), cond


def _l1_15(ev: Evidence) -> Measured:
    h = ev.history
    lengths, story = (8, 20, 50), ("learned", "not learned", "not learned")
    rows = {(o, n): row(h, f"rnn [{o}]", n) for o in ("adam", "sgd") for n in lengths}
    states = {o: [state(rows[o, n]) for n in lengths] for o in ("adam", "sgd")}

    def outcome(o: str) -> str:  # the story, against it (decided), or undecided
        s = states[o]
        if any(x not in ("undecided", y) for x, y in zip(s, story, strict=True)):
            return "against"
        return "matches" if list(s) == list(story) else "undecided"

    out = {o: outcome(o) for o in states}
    if set(out.values()) == {"matches"}:
        verdict = "holds"
    elif "matches" in out.values() and "against" in out.values():
        verdict = "conditional"
    elif "against" in out.values():
        verdict = "does not hold"
    else:
        verdict = "inconclusive"
    text = "tanh rnn, copy-bit, 500 steps, 10 seeds: " + "; ".join(
        f"{o}: " + ", ".join(f"T={n} {fraction(rows[o, n])}" for n in lengths) for o in states
    )  # fmt: skip
    cond = "; ".join(f"under {o}: {', '.join(states[o])} (T = 8, 20, 50)" for o in states)
    return text, verdict, cond


# fmt: off
L1_CLAIMS: tuple[Claim, ...] = tuple(Claim(*entry) for entry in (
    ("L1.1", "the NumPy demo (seed 0, H = 64, T = 50) prints norms from 1.000 down to 1.082e-7, "
     "and rho(W) = 0.714", "bpttlab walk --preset lesson", _l1_1, True),
    ("L1.2", "with scale 1.1/sqrt(H) the same loop explodes to ~1e10 and NaN",
     "bpttlab walk --preset lesson --gain 1.1", _l1_2, True),
    ("L1.3", "the duel (copy-bit, T = 30, 300 Adam steps): RNN 51.2%, LSTM 99.8%; ||dL/dh_0|| "
     "RNN 3.1e-8, LSTM 1.4e-1", "bpttlab duel; bpttlab duel --optimizer sgd", _l1_3),
    ("L1.4", "||dL/dh_0|| ≈ (rho <f'>)^N: at length 30 ten orders of magnitude smaller than at "
     "10, and at 50 below float32 precision", "bpttlab decay-vs-length --lengths 10 30 50",
     _l1_4, True),
    ("L1.5", "0.9^50 ≈ 0.005; 0.5^50 ≈ 8.9e-16; 0.25^20 ≈ 1e-12; 0.9^1000 ≈ 1e-46",
     "bpttlab decay -l 0.9 -d 1 --lengths 50 1000", _l1_5, True),
    ("L1.6", "tanh' and sigmoid' at x = 0, 1, 2, 3, 5: 1, 0.420, 0.071, 0.010, 0.0001 and "
     "0.250, 0.197, 0.105, 0.045, 0.0066", "bpttlab budget", _l1_6, True),
    ("L1.7", "clipping fixes exploding gradients and does nothing for vanishing ones",
     CLIPPING, _l1_7, True),
    ("L1.8", "small-norm init 'for stability' speeds vanishing; orthogonal or identity init "
     "(Le et al. 2015) is better for vanilla RNNs",
     "bpttlab cliff --archs rnn rnn:init=orthogonal irnn --lengths 20 50", _l1_8),
    ("L1.9", "sigmoid as the hidden activation is strictly worse than tanh (a 0.25^T ceiling)",
     "bpttlab cliff --archs rnn rnn:activation=sigmoid --lengths 20 50", _l1_9),
    ("L1.10", "||dL/dh_0|| below 1e-6 means the network learns nothing that depended on the "
     "first tokens", "bpttlab duel", _l1_10),
    ("L1.11", "the exercise: RNN perfect at T = 5, decent at 20, at chance at 50; the LSTM's "
     "cliff disappears or moves to 200+ (500 Adam steps)", "bpttlab cliff", _l1_11),
    ("L1.12", "log ||dL/dh_0|| per step: the RNN's collapses to ~1e-7 within a few steps at "
     "T = 50, the LSTM's stays ~1e-1", "bpttlab train --arch lstm --length 50 --steps 500 "
     "--batch 256 --fixed-batch --json", _l1_12),
    ("L1.13", "ReLU does not rescue a vanilla RNN",
     "bpttlab cliff --archs rnn rnn:activation=relu --lengths 20 50", _l1_13),
    ("L1.14", "the LSTM's gates keep dc_t/dc_{t-1} ≈ 1",
     "bpttlab profile --arch lstm --length 100 --dtype float64", _l1_14, True),
    ("L1.15", "history: a bit across 8 steps was learnable, 20 flattened the loss, 50 learned "
     "nothing", "bpttlab cliff --archs rnn --lengths 8 20 50 --optimizer adam sgd", _l1_15),
))
# fmt: on
