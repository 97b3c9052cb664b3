"""What every lesson's claims share: the register entry and the rules that turn intervals into
verdicts (see ``claims.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bpttlab.experiments._evidence import Evidence, fmt

__all__ = [
    "CLIPPING",
    "LESSONS",
    "VERDICTS",
    "Claim",
    "Measured",
    "clipping",
    "close",
    "decide",
    "failed",
    "learned",
    "pooled",
    "rate_difference",
    "row",
    "state",
]

LESSONS = ("L0", "L1", "L3")
CLIPPING = "bpttlab clipping"
VERDICTS = ("holds", "does not hold", "conditional", "inconclusive", "needs keras")
Measured = tuple[str, str, str]  # (measured, verdict, conditions)


@dataclass(frozen=True)
class Claim:
    """One row of the register: the claim as the lesson put it, and how it is measured."""

    id: str
    claim: str
    command: str
    measure: Callable[[Evidence], Measured]
    quick: bool = False

    @property
    def lesson(self) -> str:
        return self.id.split(".")[0]


def decide(holds: bool, fails: bool) -> str:
    return "holds" if holds else ("does not hold" if fails else "inconclusive")


def close(got: float, printed: float, rel: float = 0.05) -> bool:
    return abs(got - printed) <= rel * abs(printed)


def row(result: Any, series: str, length: int) -> dict[str, Any]:
    (row,) = [r for r in result.rows if r["series"] == series and r["length"] == length]
    return row


def learned(row: dict[str, Any]) -> bool:
    """Most seeds learn it, decided: the 95% interval of the success rate lies above 1/2."""
    return row["success_low"] > 0.5


def failed(row: dict[str, Any]) -> bool:
    return row["success_high"] < 0.5


def state(row: dict[str, Any]) -> str:
    return "learned" if learned(row) else ("not learned" if failed(row) else "undecided")


def _accuracy(row: dict[str, Any]) -> str:
    """A clipping row's mean held-out accuracy and its 95% interval: a run that stops diverging
    may still sit at chance (a dead relu network), and the claim's reader must see that."""
    if row["accuracy_mean"] is None:
        return "none"
    return f"{row['accuracy_mean']:.3f} [{row['accuracy_low']:.3f}-{row['accuracy_high']:.3f}]"


def clipping(ev: Evidence) -> Measured:
    rows = {(r["case"], r["clip"]): r for r in ev.clipping.rows}
    unclipped = rows["exploding", "none"]
    clipped = [rows["exploding", c] for c in ("norm", "variable-norm", "value")]
    vanishing = [rows["vanishing", c]["grad_h0_ratio"]["max"] for c in
                 ("none", "norm", "variable-norm", "value")]  # fmt: skip
    fixes = unclipped["diverged_low"] > 0.5 and all(r["diverged_high"] < 0.5 for r in clipped)
    text = (f"exploding relu RNN: {unclipped['diverged']}/{unclipped['seeds']} seeds diverge "
            f"unclipped, " + ", ".join(f"{r['diverged']}/{r['seeds']} clipped by {r['clip']}"
                                       for r in clipped)
            + " (held-out accuracy then: " + ", ".join(
                f"{r['clip']} {_accuracy(r)}" for r in clipped) + ")"
            + f"; vanishing tanh RNN: largest ||dL/dh_0||/||dL/dh_T|| {fmt(max(vanishing))} "
            "with or without clipping")  # fmt: skip
    return text, decide(fixes and max(vanishing) < 1e-6, not fixes), ""


def pooled(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Seeds that learn, and seeds, over several cells: a count large enough to decide."""
    return sum(r["successes"] for r in rows), sum(r["seeds"] for r in rows)


def rate_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> tuple[float, float]:
    """95% interval (Newcombe) of the pooled success rate of cells ``a`` minus that of ``b``."""
    from bpttlab.stats import difference

    return difference(*pooled(a), *pooled(b))
