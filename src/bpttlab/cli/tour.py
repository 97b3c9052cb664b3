"""Commands that run the whole lab: tour (the `make demo` job)."""

from __future__ import annotations

from pathlib import Path

import typer

from bpttlab.cli._common import JSON_OPT, SEED_OPT, emit_json, err, out

__all__ = ["COMMANDS"]


def tour(
    out_dir: Path = typer.Option(Path("runs/tour"), "--out", help="Folder for figures + summary."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """A guided walk through the analytic core: writes PNG figures, summary.md and summary.json."""
    from bpttlab.tour import run_tour

    summary = run_tour(out_dir, seed=seed, echo=lambda m: err.print(m, markup=False))
    if as_json:
        return emit_json(summary)
    out.print((out_dir / "summary.md").read_text(encoding="utf-8"), markup=False)
    out.print(f"wrote {', '.join(summary['files'])} to {out_dir}/")


COMMANDS = {"tour": tour}
