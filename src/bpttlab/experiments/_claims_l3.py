"""The claims of L3, the study note (Keras): one function per claim, measured and judged."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from bpttlab import theory
from bpttlab.experiments._claims_common import (
    CLIPPING,
    Claim,
    Measured,
    clipping,
    decide,
    rate_difference,
    row,
)
from bpttlab.experiments._evidence import Evidence, fmt, fraction

__all__ = ["L3_CLAIMS"]


# ---------------------------------------------------------------- L3: the study note
def _l3_1(ev: Evidence) -> Measured:
    text, verdict, _ = clipping(ev)
    rows = {(r["case"], r["clip"]): r for r in ev.clipping.rows}
    before = rows["vanishing", "none"]["grad_h0_ratio"]["median"]
    after = [rows["vanishing", c]["grad_h0_ratio"]["median"] for c in ("norm", "value")]
    helped = any(a > 10 * before for a in after)
    return text, decide(helped, verdict == "holds"), "clipping bounds large gradients only"


def _l3_2(ev: Evidence) -> Measured:
    ratios = {a: ev.ratio(a, 100) for a in ("rnn", "rnn:activation=sigmoid",
                                            "rnn:activation=relu", "irnn")}  # fmt: skip
    relu, irnn, tanh = ratios["rnn:activation=relu"], ratios["irnn"], ratios["rnn"]
    text = "untrained ratio at T=100: " + ", ".join(f"{a} {fmt(r)}" for a, r in ratios.items())
    cond = ("relu with PyTorch's default init vanishes faster than tanh; with the identity init "
            "(irnn) it keeps the gradient")  # fmt: skip
    verdict = "conditional" if relu < tanh < irnn else decide(relu > tanh, relu < tanh)
    return text, verdict, cond


def _l3_3(ev: Evidence) -> Measured:
    ratios = {a: ev.ratio(a, 100) for a in ("rnn", "rnn:init=orthogonal", "irnn",
                                            "lstm", "lstm:forget_bias=chrono")}  # fmt: skip
    ok = (
        ratios["irnn"] > 1e3 * ratios["rnn"]
        and ratios["lstm:forget_bias=chrono"] > 1e3 * ratios["lstm"]
    )
    text = "untrained ratio at T=100: " + ", ".join(f"{a} {fmt(r)}" for a, r in ratios.items())
    return text, decide(ok, not ok), ""


def _l3_4(ev: Evidence) -> Measured:
    t = ev.tbptt.t50
    rows = ev.tbptt.rows
    windows = sorted({r["window"] for r in rows})
    full = windows[-1]  # >= every length: full BPTT, the baseline
    gaps = {}  # per window: full BPTT's pooled success rate minus the window's, beyond k
    for k in windows[:-1]:
        mine = [r for r in rows if r["window"] == k and r["length"] > k]
        base = [r for r in rows if r["window"] == full and r["length"] > k]
        gaps[k] = rate_difference(base, mine)
    costs = [k for k, (low, _) in gaps.items() if low > 0]
    free = all(high < 0.1 for _, high in gaps.values())
    text = "tanh rnn on latch, by window k (the largest is full BPTT): " + "; ".join(
        f"k={k}: {v['statement']} (T50 {v['status']})" for k, v in t.items())  # fmt: skip
    cond = "full BPTT's success rate beyond k minus the window's (95%): " + ", ".join(
        f"k={k} {low:+.2f} to {high:+.2f}" for k, (low, high) in gaps.items())  # fmt: skip
    return text, decide(bool(costs), free), cond


def _l3_5(ev: Evidence) -> Measured:
    names = ("lstm", "lstm:forget_bias=one", "lstm:forget_bias=chrono", "gru")
    rates = {a: ev.profile(a, 100)["diagnosis"]["rate_per_step"] for a in (*names, "rnn")}
    rows = {a: row(ev.gates, a, 50) for a in names}
    rnn = row(ev.inits, "rnn", 50)
    # the problem is the gradient's decay: a gate alleviates it when it decays clearly slower
    # than the tanh rnn's (the untrained profile, float64: no training noise)
    slower = [a for a in names if rates[a] > rates["rnn"] / 2]
    not_slower = [a for a in names if a not in slower]
    decay = ", ".join(f"{a} {rates[a]:+.3f}" for a in (*names, "rnn"))
    learned_at_50 = ", ".join(f"{a} {fraction(r)}" for a, r in rows.items())
    text = (
        f"decay rate per step (untrained, T=100): {decay}; copy-bit T=50 learned: "
        f"{learned_at_50}; tanh rnn {fraction(rnn)}"
    )
    cond = (f"alleviated with an open forget gate ({', '.join(slower) or 'none'}); at "
            f"PyTorch's default init ({', '.join(not_slower) or 'none'}) the gradient decays "
            "about as fast as the tanh rnn's")  # fmt: skip
    verdict = "conditional" if slower and not_slower else decide(bool(slower), not slower)
    return text, verdict, cond


def _needs_keras(what: str) -> Callable[[Evidence], Measured]:
    def measure(ev: Evidence) -> Measured:
        if importlib.util.find_spec("keras") is None:
            return (
                f"{what}: install the keras extra (pip install 'bpttlab[keras]')",
                "needs keras",
                "",
            )
        from bpttlab.integrations.keras import audit  # the keras extra

        return audit(what)

    return measure


def _l3_8(ev: Evidence) -> Measured:
    text, verdict, _ = clipping(ev)
    grow = theory.decay(1.1, 1.0, [50]).rows[0].magnitude
    shrink = theory.decay(0.9, 0.5, [50]).rows[0].magnitude
    answer = (
        f"one product of Jacobians, two fates: it shrinks (0.45^50 = {fmt(shrink)}) or "
        f"grows (1.1^50 = {fmt(grow)}); the remedies differ: {text}"
    )
    return answer, verdict, "the answer the note asks for"


# fmt: off
L3_CLAIMS: tuple[Claim, ...] = tuple(Claim(*entry) for entry in (
    ("L3.1", "clipping keeps gradients from becoming too large or too small: it mitigates "
     "vanishing as well as exploding gradients", CLIPPING, _l3_1, True),
    ("L3.2", "ReLU-type activations reduce vanishing compared with sigmoid or tanh (but can "
     "explode)", "bpttlab profile --arch rnn:activation=relu --length 100 --dtype float64",
     _l3_2, True),
    ("L3.3", "careful initialisation avoids regions where the derivatives are small",
     "bpttlab profile --arch irnn --length 100 --dtype float64", _l3_3, True),
    ("L3.4", "truncated BPTT costs accuracy on long dependencies",
     "bpttlab tbptt --windows 4 8 16 32 --seeds 10", _l3_4),
    ("L3.5", "LSTMs and GRUs alleviate the problem",
     "bpttlab cliff --archs lstm lstm:forget_bias=one gru --lengths 20 50", _l3_5),
    ("L3.6", "Keras Adam(clipnorm=1.0): the norm of the gradients is clipped to 1, all "
     "elements scaled down proportionally", "bpttlab clipping",
     _needs_keras("clipnorm semantics")),
    ("L3.7", "the example model (Embedding(10000, 128) over 50 steps, LSTM(128), Dense(10000, "
     "softmax), Adam(clipnorm=1.0))", "bpttlab diagnose --model examples/keras_l3.py:factory",
     _needs_keras("the L3 model")),
    ("L3.8", "how do exploding and vanishing gradients relate, and are their remedies the "
     "same?", CLIPPING, _l3_8, True),
))
# fmt: on
