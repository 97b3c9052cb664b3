"""Commands that run the whole lab: tour (the `make demo` job) and report."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import typer

from bpttlab.cli._common import (
    DB_OPT,
    JSON_OPT,
    SEED_OPT,
    emit_json,
    err,
    options,
    out,
    writable_folder,
)

__all__ = ["COMMANDS"]

WORKERS_OPT = typer.Option(2, "--workers", help="Runs in parallel (1 = in this process).")
CLAIMS_HELP = (
    "Claims table: auto (the full audit if the store holds its runs, else quick), full (trains "
    "what is missing: ~600 runs), quick (no training beyond the clipping demo), none."
)


def _say(message: str) -> None:
    err.print(message, markup=False)


def tour(
    out_dir: Path = typer.Option(
        Path("runs/tour"), "--out", help="Folder for the figures, summaries and report.html."
    ),
    db: Path = DB_OPT,
    workers: int = WORKERS_OPT,
    claims: str = typer.Option("auto", "--claims", help=CLAIMS_HELP),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Run the whole lab at small settings (about 2-5 minutes on 2 cores; a second run reads
    the store): the analytic core, profiles of the zoo, the lesson's duel under Adam and SGD,
    a small cliff, clipping and training with profiles. Writes PNG figures, summary.md,
    summary.json and report.html (open it in a browser)."""
    from bpttlab.tour import TourConfig, run_tour

    writable_folder("--out", out_dir)
    with options({"claims": "--claims"}):
        config = TourConfig(seed=seed, workers=workers, claims=claims)
        summary = run_tour(out_dir, echo=_say, db=db, config=config)
    if as_json:
        return emit_json(summary)
    out.print((out_dir / "summary.md").read_text(encoding="utf-8"), markup=False)
    out.print(f"wrote {', '.join(summary['files'])} to {out_dir}/", markup=False)
    if summary.get("report"):
        path = Path(summary["report"]["path"]).resolve()
        out.print(
            f"report: {path} ({summary['report']['bytes']:,} bytes): open it in a browser",
            markup=False,
        )


def report(
    out_path: Path = typer.Option(
        Path("runs/report.html"), "--out", help="The HTML file to write (self-contained)."
    ),
    db: Path = DB_OPT,
    claims: str = typer.Option("auto", "--claims", help=CLAIMS_HELP),
    workers: int = WORKERS_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """One self-contained interactive HTML report (plotly) of the store and the analytic core:
    decay and saturation explorers, spectra, walks, profiles, training, duel, cliff, clipping
    and the lessons' claims. Sections without data name the command that fills them."""
    from bpttlab.tour import make_report

    writable_folder("--out", out_path.parent)
    original = db
    with contextlib.ExitStack() as stack:
        missing = not db.exists()  # read nothing, create nothing: a mistyped --db stays no file
        if missing:
            db = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "empty.db"
        with options({"claims": "--claims", "out": "--out"}):
            info = make_report(
                db,
                out_path,
                seed=seed,
                claims=claims,
                workers=workers,
                echo=_say,
                progress=err.is_terminal,
            )
        if missing:
            err.print(f"no store at {original}: the sections that read runs name the commands "
                      "that fill them", markup=False, soft_wrap=True)  # fmt: skip
    if as_json:
        return emit_json(info)
    empty = [sid for sid, filled in info["sections"].items() if not filled]
    out.print(
        f"wrote {Path(info['path']).resolve()} ({info['bytes']:,} bytes); claims: "
        f"{info['claims']} ({info['claims_count']})",
        markup=False,
    )
    if empty:
        out.print(
            f"sections without data (each names the command that fills it): {', '.join(empty)}",
            markup=False,
        )


COMMANDS = {"tour": tour, "report": report}
