"""The README's pasted CLI output must match a real run, character for character."""

from __future__ import annotations

import os
import re
import shlex
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
def test_readme_output_matches_a_real_run(command, expected):
    args = shlex.split(command)[1:]
    env = dict(os.environ, COLUMNS="100")
    res = subprocess.run(
        [sys.executable, "-m", "bpttlab", *args], capture_output=True, text=True, env=env
    )
    assert (res.stdout + res.stderr).rstrip("\n") == expected.rstrip("\n")
