"""Shared fixtures: a store per test (the counter of training runs is tests/conftest.py's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bpttlab.experiments import Budget
from bpttlab.store import Store

# Tiny settings (H <= 16, a few steps, short lengths); runs happen in this process (workers=1)
# so that training calls can be counted; tests/test_sweep.py covers the process pool.
TINY_BUDGET = Budget(steps=6, hidden_size=8, batch_size=16)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "runs.db") as s:
        yield s


def strict_json(doc: Any) -> Any:
    return json.loads(json.dumps(doc, allow_nan=False))


def canned(accuracy: float) -> dict[str, Any]:
    """What ``train_run`` stores, for tests that only need the statistics."""
    return {"accuracy": accuracy, "train_accuracy": accuracy, "grad_h0_init": 1e-9,
            "grad_h0_final": 1e-6, "loss": 0.1, "diverged": False, "wall_time_s": 0.0}  # fmt: skip
