"""tbptt_sweep(): one series per window, T50 per window, the budget stated."""

from __future__ import annotations

import pytest

from bpttlab.experiments import CliffConfig, TbpttConfig, cliff, tbptt_sweep

from .conftest import TINY_BUDGET, strict_json


def test_tbptt_sweep_shape() -> None:
    budget = TINY_BUDGET.replace(task="latch:noise=0.1", fixed_batch=False)
    config = TbpttConfig(windows=(2, 4), lengths=(2, 5), seeds=(0,), budget=budget)
    doc = tbptt_sweep(config, workers=1).to_dict()
    assert strict_json(doc) == doc
    assert [(r["window"], r["length"]) for r in doc["rows"]] == [(2, 2), (2, 5), (4, 2), (4, 5)]
    assert set(doc["longest_learned"]) == set(doc["t50"]) == {"2", "4"}
    assert doc["budget"]["arch"] == "rnn"
    assert (doc["budget"]["task"], doc["budget"]["task_options"]) == ("latch", {"noise": 0.1})


def test_a_model_that_cannot_truncate_is_refused_before_training() -> None:
    with pytest.raises(ValueError, match="tbptt is not supported for model 'skip-rnn'"):
        TbpttConfig(arch="skip-rnn")


def test_a_window_as_long_as_the_sequence_is_full_bptt() -> None:
    """Truncation at k >= T cuts nothing: the same runs as the cliff without truncation, bit for
    bit; a shorter window cuts the path to the answer and grad_h0 is exactly 0 beyond it."""
    budget = TINY_BUDGET.replace(task="latch:noise=0.1", fixed_batch=False)
    sweep = tbptt_sweep(TbpttConfig(windows=(2, 8), lengths=(5,), seeds=(0, 1), budget=budget),
                        workers=1)  # fmt: skip
    full = cliff(CliffConfig(archs=("rnn",), lengths=(5,), seeds=(0, 1), budget=budget), workers=1)
    (k8,) = [r for r in sweep.rows if r["window"] == 8]
    (k2,) = [r for r in sweep.rows if r["window"] == 2]
    assert k8["accuracies"] == full.rows[0]["accuracies"]
    assert k8["grad_h0_final"] == full.rows[0]["grad_h0_final"]
    assert k2["grad_h0_final"] == {"median": 0.0, "min": 0.0, "max": 0.0}
