"""``claims()``: the audit of the three lessons bpttlab grew from (L0, L1, L3).

Every checkable claim of the lessons (docs/claims.md lists them with the figures the lessons
printed) gets a measurement here and a verdict:

- "holds" / "does not hold": the measurement decides it, with room to spare: a closed form
  computed exactly, a profile decades away from the claimed figure, or a count of seeds whose
  95% Wilson interval lies on one side of the line (``stats``);
- "conditional": it holds under some conditions the lesson does not state (an optimizer, an
  initialisation, an architecture) and not under others; ``conditions`` says which;
- "inconclusive": the intervals do not decide it at this budget;
- "needs keras": the claim is about Keras; install the keras extra.

A verdict is only printed when the evidence decides it, so the same audit on another CPU (other
digits, chaotic training) gives the same verdicts. ``quick`` keeps the claims that need no
training (closed forms and untrained profiles) plus the cheap clipping runs. The claims of each
lesson are in ``_claims_l0``, ``_claims_l1`` and ``_claims_l3``; the measurements they share in
``_evidence``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bpttlab._util import ConfigError, check_bool
from bpttlab.experiments._claims_common import LESSONS, VERDICTS, Claim
from bpttlab.experiments._claims_l0 import L0_CLAIMS
from bpttlab.experiments._claims_l1 import L1_CLAIMS
from bpttlab.experiments._claims_l3 import L3_CLAIMS
from bpttlab.experiments._evidence import Evidence
from bpttlab.experiments._runs import Runner

__all__ = ["CLAIMS", "LESSONS", "VERDICTS", "ClaimsConfig", "ClaimsResult", "claims"]

CLAIMS: tuple[Claim, ...] = (*L0_CLAIMS, *L1_CLAIMS, *L3_CLAIMS)


@dataclass(frozen=True)
class ClaimsConfig:
    """Which claims: ``lessons`` (L0, L1, L3) and ``quick`` (only those that need no training
    beyond the clipping runs)."""

    lessons: tuple[str, ...] = LESSONS
    quick: bool = False

    def __post_init__(self) -> None:
        lessons = tuple(dict.fromkeys(self.lessons))
        if not lessons or any(v not in LESSONS for v in lessons):
            raise ConfigError("lesson", list(self.lessons), f"choose from {', '.join(LESSONS)}")
        object.__setattr__(self, "lessons", lessons)
        check_bool("quick", self.quick)

    def selected(self) -> list[Claim]:
        return [c for c in CLAIMS if c.lesson in self.lessons and (c.quick or not self.quick)]

    def to_dict(self) -> dict[str, Any]:
        return {"lessons": list(self.lessons), "quick": self.quick}


@dataclass(frozen=True)
class ClaimsResult:
    """``claims``: one dict per claim: id, lesson, claim, measured, verdict, conditions,
    command."""

    claims: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClaimsResult:
        return cls(**data)

    def figure(self) -> Any:
        """The audit as a table: a plotly figure (the report extra)."""
        from bpttlab.views.figures import claims_figure

        return claims_figure(self.to_dict())

    def _repr_html_(self) -> str:
        """Jupyter shows the figure."""
        from bpttlab.views.figures import notebook_html

        return notebook_html(self.figure())


def claims(
    config: ClaimsConfig | None = None, runner: Runner | None = None, **run: Any
) -> ClaimsResult:
    """Audit the lessons' claims (``ClaimsConfig()``: all of them); ``runner`` or its fields.
    Each measurement's runs and profiles are stored, so a second audit reads them back."""
    config = config or ClaimsConfig()
    runner = runner or Runner(**run)

    def compute() -> dict[str, Any]:
        evidence = Evidence(runner)
        rows = []
        for c in config.selected():
            measured, verdict, conditions = c.measure(evidence)
            assert verdict in VERDICTS, (c.id, verdict)
            rows.append({"id": c.id, "lesson": c.lesson, "claim": c.claim,
                         "measured": measured, "verdict": verdict, "conditions": conditions,
                         "command": c.command})  # fmt: skip
        return ClaimsResult(rows).to_dict()

    # not cached itself: the verdicts are cheap to rederive from the stored runs, and must
    # follow the rules of this version of bpttlab
    return ClaimsResult.from_dict(compute())
