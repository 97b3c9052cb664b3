"""Refresh README.md from real runs: every ```console block that starts with ``$ bpttlab`` is
re-run and its output replaced, and the regions between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` are regenerated (``profiles``: every architecture's gradient profile;
``results``: the tables of docs/results/*.json; ``campaign``: those of campaign.json;
``claims``: the audit of the lessons' claims).

    python docs/readme.py          # rewrite README.md in place
    python docs/readme.py --check  # exit 1 if README.md is not what a refresh would write

tests/test_readme.py runs the same checks, so the README cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"(```console\n\$ )(bpttlab[^\n]*)\n(.*?)(```)", re.S)
REGION = re.compile(r"(<!-- (\w+):begin -->\n)(.*?)(<!-- \2:end -->)", re.S)

PROFILE_ARCHS = ["rnn", "rnn:activation=relu", "rnn:activation=sigmoid", "irnn", "lstm",
                 "lstm:forget_bias=one", "gru", "skip-rnn", "attention-rnn", "orthogonal-rnn",
                 "lru"]  # fmt: skip


# Blocks whose output comes from training: the digits move with the CPU (training is chaotic),
# so they are checked for their structure and conclusions: numbers masked, every word and verdict
# kept. Every other block (theory, walks, spectra, untrained profiles, errors) is exact.
TRAINING = ("bpttlab train", "bpttlab duel", "bpttlab cliff", "bpttlab clipping", "bpttlab tbptt")
# a number, with the "> " or "< " that marks a bootstrap bound past the grid ("[27.6, > 320]"):
# whether a chaotic bound lands past it is a digit, not a conclusion ("beyond the grid" is one)
NUMBER = re.compile(r"(?:[<>] )?(?<![A-Za-z_])[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|—")
FRAME = re.compile(r"[│┃┏┓┗┛┡┩┣┫━─┳┻╇╋┼┌┐└┘├┤┬┴\s]+")


def is_training(command: str) -> bool:
    return command.startswith(TRAINING)


def masked(text: str) -> str:
    """The words of an output with every number (and "—") as #, table frames as one space: what
    must not change between machines when only the rounding does."""
    return FRAME.sub(" ", NUMBER.sub("#", text)).strip()


def same_output(command: str, expected: str, actual: str) -> bool:
    """Exact, or for a training block the same words and conclusions (``masked``)."""
    expected, actual = expected.rstrip("\n"), actual.rstrip("\n")
    return masked(expected) == masked(actual) if is_training(command) else expected == actual


def run_block(command: str) -> str:
    """The combined stdout and stderr of a README command, run in a fresh folder (no store
    from an earlier version can answer) with the examples beside it, 100 columns wide."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "examples", Path(tmp) / "examples")
        env = dict(os.environ, COLUMNS="100")
        args = [sys.executable, "-m", "bpttlab", *shlex.split(command)[1:]]
        res = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp)
    return (res.stdout + res.stderr).rstrip("\n")


def profiles_table() -> str:
    from bpttlab.experiments import ProfileConfig, Setting, profile_run

    rows = [
        "| arch | verdict | ‖dL/dh_0‖ / ‖dL/dh_T‖ | horizon (steps back to 1e-3) | probe |",
        "|---|---|---:|---:|---|",
    ]
    for arch in PROFILE_ARCHS:
        config = ProfileConfig(**Setting.specs(arch, "copy-bit"), length=200, hidden_size=32,
                               batch_size=64, dtype="float64")  # fmt: skip
        doc = profile_run(config)
        d = doc["diagnosis"]
        h = d["horizon"] if d["horizon"] is not None else "beyond 200"
        rows.append(f"| `{arch}` | {d['verdict']} | {d['ratio']:.2e} | {h} | {doc['method']} |")
    return "\n".join(rows)


def results_tables() -> str:
    sys.path.insert(0, str(ROOT / "docs" / "results"))
    from compute import tables

    return tables()


CLAIMS_DB = ROOT / "runs" / "bpttlab.db"  # the audit's ~600 runs are kept between refreshes


def claims_table(quick: bool = False, db: Path | str = CLAIMS_DB) -> str:
    """``bpttlab claims --markdown``: every claim of the three lessons, measured."""
    from bpttlab.cli.audit import claims_markdown
    from bpttlab.experiments.claims import ClaimsConfig, claims
    from bpttlab.store import Store

    with Store(db) as store:
        return claims_markdown(claims(ClaimsConfig(quick=quick), store=store, workers=2).claims)


def claims_rows(table: str) -> dict[str, str]:
    """id -> the row of a claims table (``claims_markdown``)."""
    return {line.split("|")[1].strip(): line for line in table.splitlines()
            if line.startswith("| L")}  # fmt: skip


def campaign_tables() -> str:
    sys.path.insert(0, str(ROOT / "docs" / "results"))
    from campaign import tables

    return tables()


REGIONS = {"profiles": profiles_table, "results": results_tables, "campaign": campaign_tables,
           "claims": claims_table}  # fmt: skip


def refreshed(text: str) -> str:
    text = BLOCK.sub(lambda m: f"{m[1]}{m[2]}\n{run_block(m[2])}\n{m[4]}", text)
    return REGION.sub(lambda m: f"{m[1]}{REGIONS[m[2]]()}\n{m[4]}", text)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare, exit 1 on a difference")
    args = ap.parse_args()
    current = README.read_text(encoding="utf-8")
    new = refreshed(current)
    if args.check:
        sys.exit(0 if new == current else 1)
    README.write_text(new, encoding="utf-8")
