"""The README's pasted CLI output and generated tables must match a real run (docs/readme.py
rewrites them; this is its --check, one block per test). Exact blocks (theory, walks, spectra,
profiles of untrained models, errors) match character for character; blocks that come from
training match in their structure and conclusions, numbers masked, because the digits of a
trained model move with the CPU (`conclusions` marker: CI runs these again under
ATEN_CPU_CAPABILITY=default)."""

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
EXACT = [b for b in BLOCKS if not readme.is_training(b[0])]
TRAINED = [b for b in BLOCKS if readme.is_training(b[0])]


def test_readme_has_cli_blocks_and_regions():
    assert len(BLOCKS) >= 12 and len(TRAINED) >= 4
    assert set(REGIONS) == set(readme.REGIONS)


@pytest.mark.parametrize("command,expected", EXACT, ids=[c for c, _ in EXACT])
def test_readme_output_matches_a_real_run(command, expected):
    assert readme.run_block(command) == expected.rstrip("\n")


@pytest.mark.conclusions
@pytest.mark.parametrize("command,expected", TRAINED, ids=[c for c, _ in TRAINED])
def test_readme_training_output_has_the_same_conclusions(command, expected):
    actual = readme.run_block(command)
    assert readme.masked(actual) == readme.masked(expected), actual


def test_masking_keeps_words_and_verdicts_and_drops_digits():
    a = "│ rnn │ 50 │ 0.701 [0.55, 0.85] │ 4/10 │\ncliff of rnn: inconclusive (T50 ~ 46.5)"
    b = "┃ rnn ┃ 50 ┃  0.6 [0.4, 1.00] ┃ 7/10 ┃\ncliff of rnn: inconclusive (T50 ~ —)"
    assert readme.masked(a) == readme.masked(b)
    assert readme.masked(a) != readme.masked(a.replace("inconclusive", "found"))
    assert readme.masked("lr 1e-2, seeds 0-9") == "lr #, seeds ##"
    # a bound printed as past the grid is still a number; "beyond the grid" stays a word
    assert readme.masked("80.1 [27.6, > 320]") == readme.masked("41.4 [20.4, 48.2]")
    assert readme.masked("accuracy >= 0.75") == "accuracy >= #"
    assert readme.masked("beyond the grid (T50 > 20)") != readme.masked("T50 = 30.9 (20-50)")


def test_readme_profile_table_is_recomputed():
    assert REGIONS["profiles"].rstrip("\n") == readme.profiles_table()


def test_readme_claims_table_covers_every_claim_of_the_three_lessons():
    from bpttlab.experiments.claims import CLAIMS

    rows = readme.claims_rows(REGIONS["claims"])
    assert list(rows) == [c.id for c in CLAIMS]
    expected = [f"L0.{i}" for i in range(1, 12)] + [f"L1.{i}" for i in range(1, 16)]
    assert [c.id for c in CLAIMS] == expected + [f"L3.{i}" for i in range(1, 9)]


@pytest.mark.conclusions
def test_readme_claims_that_need_no_training_are_recomputed(tmp_path):
    """`claims --quick` here: the same verdicts and wording (numbers masked) as the README's."""
    readme_rows = readme.claims_rows(REGIONS["claims"])
    quick = readme.claims_rows(readme.claims_table(quick=True, db=tmp_path / "claims.db"))
    assert len(quick) >= 15
    for claim_id, row in quick.items():
        assert readme.masked(row) == readme.masked(readme_rows[claim_id]), claim_id
