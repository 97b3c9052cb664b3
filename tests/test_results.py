"""The README's results tables are made from docs/results/*.json, which record the machine they
were computed on. One grid cell is retrained here: on that machine it must give the stored
numbers exactly; on any other, the same conclusion (training is chaotic: the digits move with
the CPU, so no test compares them across machines)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bpttlab.environment import fingerprint
from bpttlab.experiments import CliffConfig, cliff
from bpttlab.stats import wilson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
sys.path.insert(0, str(ROOT / "docs" / "results"))
import compute  # noqa: E402  (docs/results/compute.py)
import readme  # noqa: E402  (docs/readme.py)

DOCS = {task: json.loads((compute.HERE / f"{task}.json").read_text()) for task in compute.GRIDS}


def test_readme_results_region_is_the_tables_of_the_json():
    text = readme.README.read_text(encoding="utf-8")
    region = {m[2]: m[3] for m in readme.REGION.finditer(text)}["results"]
    assert region.rstrip("\n") == compute.tables()


@pytest.mark.parametrize("task", list(compute.GRIDS))
def test_every_result_file_says_where_and_how_it_was_computed(task):
    doc = DOCS[task]
    assert {"cpu", "cpu_capability", "torch", "numpy"} <= set(doc["machine"])
    assert doc["wall_seconds"] > 0 and doc["budget"]["runs"] > 0
    assert CliffConfig.from_dict({"archs": compute.ARCHS, "lengths": compute.GRIDS[task]["lengths"],
                                  "seeds": list(compute.SEEDS),
                                  "budget": {k: v for k, v in doc["budget"].items() if k in (
                                      "task", "task_options", "steps", "batch_size",
                                      "hidden_size", "optimizer", "lr", "fixed_batch",
                                      "device")}}) == compute.config(task)  # fmt: skip
    for row in doc["rows"]:
        low, high = wilson(row["successes"], row["seeds"])
        assert (row["success_low"], row["success_high"]) == pytest.approx((low, high))


@pytest.mark.conclusions
@pytest.mark.parametrize(
    ("task", "arch", "length"), [("copy-bit", "rnn", 5), ("adding", "gru", 10)]
)
def test_one_cell_retrained_gives_the_stored_numbers_here_or_the_conclusion_elsewhere(
    task, arch, length
):
    stored = DOCS[task]
    (row,) = [r for r in stored["rows"] if r["arch"] == arch and r["length"] == length]
    full = compute.config(task)
    config = CliffConfig(archs=(arch,), lengths=(length,), seeds=full.seeds, budget=full.budget)
    (fresh,) = cliff(config, workers=2).rows
    here = {k: v for k, v in fingerprint().items() if k != "bpttlab"}
    there = {k: v for k, v in stored["machine"].items() if k != "bpttlab"}
    if here == there:  # the machine that computed the file: the same bits
        for key in ("accuracies", "accuracy_mean", "successes", "threshold"):
            assert fresh[key] == row[key], key
    else:  # another machine: the conclusion, decided by the Wilson interval, must agree

        def state(r):
            return (
                "learned"
                if r["success_low"] > 0.5
                else ("not learned" if r["success_high"] < 0.5 else "undecided")
            )

        assert state(fresh) == state(row) != "undecided"
