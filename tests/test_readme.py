"""The README's pasted CLI output must match a real run, character for character."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```console\n\$ (bpttlab[^\n]*)\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_cli_blocks():
    assert len(_blocks()) >= 6


@pytest.mark.parametrize("command,expected", _blocks(), ids=[c for c, _ in _blocks()])
def test_readme_output_matches_a_real_run(command, expected, tmp_path):
    # a fresh folder: no cached runs/bpttlab.db from an older version can answer for the code
    shutil.copytree(README.parent / "examples", tmp_path / "examples")
    args = shlex.split(command)[1:]
    env = dict(os.environ, COLUMNS="100")
    res = subprocess.run(
        [sys.executable, "-m", "bpttlab", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert (res.stdout + res.stderr).rstrip("\n") == expected.rstrip("\n")


ROW = re.compile(r"^\| `([^`]+)` \| (\w+) \| ([0-9.e+-]+) \| ([^|]+) \| ([\w-]+) \|$", re.M)


def test_readme_profile_table_is_recomputed():
    from bpttlab.cli_lab import run_profile

    rows = ROW.findall(README.read_text(encoding="utf-8"))
    assert len(rows) >= 11
    for arch, verdict, ratio, horizon, method in rows:
        config = {
            "arch": arch,
            "task": "copy-bit",
            "length": 200,
            "layers": 1,
            "hidden": 32,
            "batch": 64,
            "train_steps": 0,
            "lr": 0.01,
            "seed": 0,
            "device": "cpu",
            "dtype": "float64",
        }
        doc = run_profile(config)
        d = doc["diagnosis"]
        assert (d["verdict"], f"{d['ratio']:.2e}", doc["method"]) == (verdict, ratio, method)
        assert str(d["horizon"] if d["horizon"] is not None else "beyond 200") == horizon.strip()
