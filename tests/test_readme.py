"""The README's pasted CLI output and generated tables must match a real run, character for
character (docs/readme.py rewrites them; this is its --check, one block per test)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import readme  # noqa: E402  (docs/readme.py)

TEXT = readme.README.read_text(encoding="utf-8")
BLOCKS = [(m[2], m[3]) for m in readme.BLOCK.finditer(TEXT)]
REGIONS = {m[2]: m[3] for m in readme.REGION.finditer(TEXT)}


def test_readme_has_cli_blocks_and_regions():
    assert len(BLOCKS) >= 12
    assert set(REGIONS) == set(readme.REGIONS)


@pytest.mark.parametrize("command,expected", BLOCKS, ids=[c for c, _ in BLOCKS])
def test_readme_output_matches_a_real_run(command, expected):
    assert readme.run_block(command) == expected.rstrip("\n")


def test_readme_profile_table_is_recomputed():
    assert REGIONS["profiles"].rstrip("\n") == readme.profiles_table()


def test_readme_claims_table_is_recomputed():
    assert REGIONS["claims"].rstrip("\n") == readme.claims_table()
