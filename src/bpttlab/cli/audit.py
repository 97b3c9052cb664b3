"""``bpttlab claims``: the audit of the lessons' claims, each measured, with its verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bpttlab.cli._common import (
    DB_OPT,
    FORCE_OPT,
    JSON_OPT,
    SEED_OPT,
    WORKERS_OPT,
    bad,
    emit_json,
    err,
    options,
    out,
)

__all__ = ["COMMANDS", "claims_markdown"]


def claims_markdown(rows: list[dict[str, Any]]) -> str:
    """The audit as a Markdown table (the README's claims section)."""
    lines = ["| id | the lesson says | bpttlab measures | verdict | reproduce |",
             "|---|---|---|---|---|"]  # fmt: skip

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    for r in rows:
        measured = r["measured"] + (f" — {r['conditions']}" if r["conditions"] else "")
        lines.append(f"| {r['id']} | {cell(r['claim'])} | {cell(measured)} | **{r['verdict']}** "
                     f"| `{cell(r['command'])}` |")  # fmt: skip
    return "\n".join(lines)


def claims(
    lesson: str | None = typer.Option(None, "--lesson", help="Only L0, L1 or L3."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Only the claims that need no training, and the clipping demo (seconds).",
    ),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
    workers: int = WORKERS_OPT,
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster (--executor ray)."),
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Audit the lessons' claims: each one measured, with a verdict the evidence decides.

    Verdicts: holds, does not hold, conditional (holds only under the conditions given),
    inconclusive (the intervals do not decide it), needs keras. Every training run is kept in
    --db, so a second audit is instant; the whole audit trains about 600 small models.
    """
    from bpttlab.experiments import Runner
    from bpttlab.experiments.claims import LESSONS, ClaimsConfig
    from bpttlab.experiments.claims import claims as audit
    from bpttlab.store import Store

    if lesson is not None and lesson not in LESSONS:
        raise bad("--lesson", lesson, f"choose one of {', '.join(LESSONS)}")
    if executor not in ("local", "ray"):
        raise bad("--executor", executor, "choose one of local, ray")
    if address is not None and executor != "ray":
        raise bad("--address", address, "--address is for --executor ray")
    with options({"lesson": "--lesson"}):
        config = ClaimsConfig(lessons=(lesson,) if lesson else LESSONS, quick=quick)
        with Store(db) as store:
            runner = Runner(store=store, force=force, workers=workers, progress=err.is_terminal,
                            executor=executor, address=address)  # fmt: skip
            rows = audit(config, runner).claims
    if as_json:
        return emit_json({"claims": rows})
    if markdown:
        return out.print(claims_markdown(rows), markup=False)
    for r in rows:
        out.print(f"{r['id']:<6}{r['verdict'].upper()}  {r['claim']}", markup=False)
        out.print(f"      measured: {r['measured']}", markup=False)
        if r["conditions"]:
            out.print(f"      conditions: {r['conditions']}", markup=False)
        out.print(f"      reproduce: {r['command']}", markup=False)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    out.print(f"{len(rows)} claims{' (quick)' if quick else ''}: {summary}", markup=False)


COMMANDS = {"claims": claims}
