"""Refresh README.md from real runs: every ```console block that starts with ``$ bpttlab`` is
re-run and its output replaced, and the regions between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` are regenerated (``profiles``: every architecture's gradient profile;
``results``: the tables of docs/results/*.json).

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


def run_block(command: str) -> str:
    """The combined stdout and stderr of a README command, run in a fresh folder (no store
    from an earlier version can answer) with the examples beside it, 100 columns wide."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "examples", Path(tmp) / "examples")
        env = dict(os.environ, COLUMNS="100")
        args = [sys.executable, "-m", "bpttlab", *shlex.split(command)[1:]]
        res = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp)
    return (res.stdout + res.stderr).rstrip("\n")


def profile_config(arch: str) -> dict:
    return {"arch": arch, "task": "copy-bit", "length": 200, "layers": 1, "hidden": 32,
            "batch": 64, "train_steps": 0, "lr": 0.01, "seed": 0, "device": "cpu",
            "dtype": "float64"}  # fmt: skip


def profiles_table() -> str:
    from bpttlab.cli_lab import run_profile

    rows = [
        "| arch | verdict | ‖dL/dh_0‖ / ‖dL/dh_T‖ | horizon (steps back to 1e-3) | probe |",
        "|---|---|---:|---:|---|",
    ]
    for arch in PROFILE_ARCHS:
        doc = run_profile(profile_config(arch))
        d = doc["diagnosis"]
        h = d["horizon"] if d["horizon"] is not None else "beyond 200"
        rows.append(f"| `{arch}` | {d['verdict']} | {d['ratio']:.2e} | {h} | {doc['method']} |")
    return "\n".join(rows)


def results_tables() -> str:
    sys.path.insert(0, str(ROOT / "docs" / "results"))
    from compute import tables

    return tables()


REGIONS = {"profiles": profiles_table, "results": results_tables}


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
