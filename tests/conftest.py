"""Fixtures every test folder shares: a counter of the pipeline's real training runs."""

from __future__ import annotations

from typing import Any

import pytest

from bpttlab.experiments import _runs


@pytest.fixture
def train_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pipeline's calls of ``training.train`` (one per training run)."""
    seen: list[int] = []
    real = _runs.train

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_runs, "train", counting)
    return seen
