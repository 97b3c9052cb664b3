"""The claims of L0, the textbook lesson: one function per claim, measured and judged."""

from __future__ import annotations

import math

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
    pooled,
    rate_difference,
    row,
)
from bpttlab.experiments._evidence import Evidence, fmt, fraction
from bpttlab.stats import wilson

__all__ = ["L0_CLAIMS"]


# ---------------------------------------------------------------- L0: the textbook lesson
def _l0_1(ev: Evidence) -> Measured:
    printed = [3.49e-3, 1.22e-5, 5.20e-14, 2.70e-27]
    rows = theory.decay(0.9, 0.5, [10, 20, 50, 100]).rows
    got = [r.magnitude or 0.0 for r in rows]
    text = ", ".join(f"{fmt(g)} (T={r.length})" for g, r in zip(got, rows, strict=True))
    ok = all(close(g, p) for g, p in zip(got, printed, strict=True))
    return f"0.45^T = {text}: the printed figures are off by 10x to 10^8", decide(ok, not ok), ""


def _l0_2(ev: Evidence) -> Measured:
    rows = theory.decay(1.1, 1.0, [10, 20, 50]).rows
    got = [r.magnitude or math.inf for r in rows]
    ok = all(close(g, p, 0.01) for g, p in zip(got, [2.59, 6.73, 117], strict=True))
    return (
        "1.1^T = " + ", ".join(f"{fmt(g)} (T={r.length})" for g, r in zip(got, rows, strict=True)),
        decide(ok, not ok),
        "",
    )


def _l0_3(ev: Evidence) -> Measured:
    d = theory.activation_derivative("tanh", [0.0, 2.0, 5.0])
    ok = close(d[0], 1.0, 1e-9) and close(d[1], 0.07, 0.02) and close(d[2], 1.8e-4, 0.02)
    return f"tanh'(0, 2, 5) = {fmt(d[0])}, {fmt(d[1])}, {fmt(d[2])}", decide(ok, not ok), ""


_ZOO = ("rnn", "lstm", "gru", "irnn", "orthogonal-rnn", "lru", "attention-rnn")


def _l0_4(ev: Evidence) -> Measured:
    ratios = {a: ev.ratio(a, 100) for a in _ZOO}
    small = [a for a, r in ratios.items() if r < 1e-6]
    large = [a for a, r in ratios.items() if r >= 1e-6]
    text = "||dL/dh_0||/||dL/dh_T|| at T=100, untrained: " + ", ".join(
        f"{a} {fmt(r)}" for a, r in ratios.items())  # fmt: skip
    verdict = "conditional" if small and large else decide(not large, not small)
    cond = (f"negligible (< 1e-6) for {', '.join(small)} at their default initialisation; not "
            f"for {', '.join(large)}")  # fmt: skip
    return text, verdict, cond


def _l0_5(ev: Evidence) -> Measured:
    parts, claimed = [], 1e-12  # "1e-12 at 'The' ... 1.0 at 'finally'" over 15 positions
    ratios = []
    for arch in ("rnn", "lstm"):
        for trained in (False, True):
            r = ev.agreement(arch, trained)
            ratios += [r["min"], r["max"]]
            parts.append(f"{arch} {'trained' if trained else 'untrained'} {fmt(r['median'])} "
                         f"({fmt(r['min'])}-{fmt(r['max'])})")  # fmt: skip
    far = all(r > 1e4 * claimed for r in ratios)  # four decades above the lesson's figure
    near = all(abs(math.log10(r / claimed)) < 2 for r in ratios)
    text = (
        "||dL/dh_subject|| / ||dL/dh_verb|| on the agreement task (subject, 13 clause "
        "tokens, verb), median over 5 seeds (range): " + "; ".join(parts)
    )
    return text, decide(near, far), ""


def _l0_6(ev: Evidence) -> Measured:
    peaks = {}
    for init, gain in (("default", 1.0), ("orthogonal", 0.9), ("identity", 1.0),
                       ("orthogonal", 1.1), ("identity", 1.1)):  # fmt: skip
        W = theory.make_matrix(init, 32, gain, seed=0)
        traj = dynamics.simulate(W, 200, "relu", "noise", 1.0, h0="random", seed=0)
        peaks[f"{init} x{gain:g}"] = float(np.linalg.norm(traj.h, axis=1).max())
    bounded = [k for k, v in peaks.items() if v < 1e3]
    exploded = [k for k, v in peaks.items() if not v < 1e3]
    text = "largest ||h_t|| over 200 steps of a relu RNN (H=32, N(0,1) inputs): " + ", ".join(
        f"W {k}: {fmt(v)}" for k, v in peaks.items())  # fmt: skip
    cond = (f"explodes (past 1e3) with W {', '.join(exploded)}; stays below 1e3 with W "
            f"{', '.join(bounded)}: relu zeroes every negative unit, so only a W that keeps "
            "positive states growing (identity above 1) blows up")  # fmt: skip
    return (
        text,
        "conditional" if bounded and exploded else decide(not bounded, not exploded),
        cond,
    )


def _l0_7(ev: Evidence) -> Measured:
    lengths = (5, 10, 20, 40, 80)
    short = [row(ev.latch, "rnn [300 steps]", n) for n in lengths]
    long_ = [row(ev.latch, "rnn [1200 steps]", n) for n in lengths]
    # (a) up to ~10-20 steps, then chance: beyond 20 (T = 40, 80, both budgets) the pooled
    # success rate's interval must lie near 0; (b) more training does not help: the rate beyond
    # 20 after 1200 steps against after 300 steps
    beyond = [r for r in short + long_ if r["length"] > 20]
    k, n = pooled(beyond)
    low, high = wilson(k, n)
    help_low, help_high = rate_difference(long_[3:], short[3:])
    learns_early = any(learned(r) for r in short[:3])
    a_fails, a_holds = low > 0.2, learns_early and high < 0.2
    b_fails, b_holds = help_low > 0, help_high < 0.1
    verdict = ("does not hold" if a_fails or b_fails else
               "holds" if a_holds and b_holds else "inconclusive")  # fmt: skip
    text = "latch (noise 0.2, fresh batches of 64), tanh rnn: " + "; ".join(
        f"{s}: {v['statement']} (T50 {v['status']})" for s, v in ev.latch.t50.items())  # fmt: skip
    cond = (
        f"beyond T = 20, {k}/{n} seeds learn it (95% interval {low:.2f}-{high:.2f}); the "
        f"rate there after 1200 steps minus after 300: {help_low:+.2f} to {help_high:+.2f}"
    )
    return text, verdict, cond


def _l0_8(ev: Evidence) -> Measured:
    return clipping(ev)


def _l0_9(ev: Evidence) -> Measured:
    ratio = ev.ratio("skip-rnn", 200)
    rows = [row(ev.direct, "skip-rnn", n) for n in (20, 50, 100)]
    flows = ratio >= 1e-3 and not any(failed(r) for r in rows)  # the gradient reaches h_0
    text = (
        f"untrained skip-rnn (k=2) at T=200: ||dL/dh_0||/||dL/dh_T|| = {fmt(ratio)} "
        f"({'exploding' if ratio > 1e3 else 'healthy'}); copy-bit learned by "
        + ", ".join(f"{fraction(r)} at T={r['length']}" for r in rows)
    )
    cond = ("the gradient does reach early steps; at PyTorch's default init it grows with T "
            "(exploding), so clip the gradient")  # fmt: skip
    verdict = "conditional" if flows and ratio > 1e3 else decide(flows, not flows)
    return text, verdict, cond if verdict == "conditional" else ""


def _l0_10(ev: Evidence) -> Measured:
    ratio = ev.ratio("attention-rnn", 200)
    rows = [row(ev.direct, "attention-rnn", n) for n in (20, 50, 100)]
    ok = ratio >= 1e-3 and not any(failed(r) for r in rows)
    bad = ratio < 1e-6 or any(failed(r) for r in rows)
    text = (
        f"untrained attention-rnn at T=200: ratio {fmt(ratio)}; copy-bit learned by "
        + ", ".join(f"{fraction(r)} at T={r['length']}" for r in rows)
    )
    return text, decide(ok, bad), ""


def _l0_11(ev: Evidence) -> Measured:
    rates = {a: ev.profile(a, 100)["diagnosis"]["rate_per_step"] for a in
             ("lstm", "lstm:forget_bias=one", "lstm:forget_bias=chrono", "gru")}  # fmt: skip
    rows = {a: row(ev.gates, a, 50) for a in rates}
    text = (
        "decay rate per step of ||dL/dh_t|| (untrained, T=100) and copy-bit T=50 learned: "
        + "; ".join(f"{a} {rates[a]:+.3f}, {fraction(rows[a])}" for a in rates)
    )
    kept = [a for a in rates if rates[a] > -0.05]
    lost = [a for a in rates if rates[a] <= -0.05]
    cond = (f"the gate keeps the gradient when it starts open ({', '.join(kept) or 'none'}); at "
            f"PyTorch's default init the forget gate sits near 0.5 and the gradient decays "
            f"({', '.join(lost) or 'none'})")  # fmt: skip
    return text, "conditional" if kept and lost else decide(not lost, not kept), cond


# fmt: off
L0_CLAIMS: tuple[Claim, ...] = tuple(Claim(*entry) for entry in (
    ("L0.1", "gradient_decay(T, 0.9, 0.5) = 0.45^T prints 3.49e-3, 1.22e-5, 5.20e-14, 2.70e-27 "
     "at T = 10, 20, 50, 100", "bpttlab decay -l 0.9 -d 0.5", _l0_1, True),
    ("L0.2", "growth 1.1^T is 2.59, 6.73, 117 at T = 10, 20, 50",
     "bpttlab decay -l 1.1 -d 1 --lengths 10 20 50", _l0_2, True),
    ("L0.3", "tanh'(0) = 1, tanh'(2) ≈ 0.07, tanh'(5) ≈ 0.00018", "bpttlab budget", _l0_3, True),
    ("L0.4", "after 50-100 steps the gradient is negligibly small: no learning signal reaches "
     "early steps", "bpttlab profile --arch ARCH --length 100 --dtype float64", _l0_4, True),
    ("L0.5", "in 'The dog, who had been chasing the cat around the garden all morning, finally "
     "[MASK]' the gradient is ~1e-12 at 'The' and 1.0 at 'finally': ~100x per step",
     "bpttlab profile --task agreement --length 13 --dtype float64 [--train-steps 300]", _l0_5),
    ("L0.6", "ReLU in an RNN gives unbounded hidden states that explode",
     "bpttlab walk --activation relu --init identity --gain 1.1", _l0_6, True),
    ("L0.7", "Bengio et al. 1994: RNNs learn dependencies up to ~10-20 steps, then fall to "
     "chance, and longer training does not help", "bpttlab cliff --archs rnn --task latch "
     "--lengths 5 10 20 40 80 --steps 300 1200 --fresh-batches --batch 64", _l0_7),
    ("L0.8", "exploding gradients are handled by clipping; vanishing ones need architectural "
     "changes", CLIPPING, _l0_8, True),
    ("L0.9", "skip connections h_t = f(h_{t-1}) + h_{t-k} let gradients flow directly",
     "bpttlab profile --arch skip-rnn --length 200; bpttlab cliff --archs skip-rnn "
     "--lengths 20 50 100", _l0_9),
    ("L0.10", "attention gives direct connections to any step regardless of distance",
     "bpttlab profile --arch attention-rnn --length 200; bpttlab cliff --archs attention-rnn "
     "--lengths 20 50 100", _l0_10),
    ("L0.11", "gating (gate * candidate + (1 - gate) * old) preserves information when the "
     "gate is near 0", "bpttlab cliff --archs lstm lstm:forget_bias=one lstm:forget_bias=chrono "
     "gru --lengths 20 50", _l0_11),
))
# fmt: on
