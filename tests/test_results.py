"""The README's results tables are made from docs/results/*.json, and those numbers come from
training: one grid cell is retrained here and must give the stored numbers exactly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bpttlab.experiments import cliff

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
sys.path.insert(0, str(ROOT / "docs" / "results"))
import compute  # noqa: E402  (docs/results/compute.py)
import readme  # noqa: E402  (docs/readme.py)


def test_readme_results_region_is_the_tables_of_the_json():
    text = readme.README.read_text(encoding="utf-8")
    region = {m[2]: m[3] for m in readme.REGION.finditer(text)}["results"]
    assert region.rstrip("\n") == compute.tables()


@pytest.mark.parametrize("task,arch,length", [("copy-bit", "rnn", 5), ("adding", "gru", 10)])
def test_one_cell_retrained_gives_the_stored_numbers(task, arch, length):
    stored = json.loads((compute.HERE / f"{task}.json").read_text())
    (row,) = [r for r in stored["rows"] if r["arch"] == arch and r["length"] == length]
    grid = compute.GRIDS[task]
    again = cliff([arch], [length], task=task, steps=grid["steps"], workers=1, **compute.BUDGET)
    (fresh,) = again["rows"]
    for key in ("accuracy_mean", "accuracy_min", "accuracy_max", "success_rate", "threshold"):
        assert fresh[key] == row[key], key
