"""duel(): shape, caching and force, determinism, and the lesson's claims on canned results."""

from __future__ import annotations

import pytest
import torch

from bpttlab.experiments import RUN_KIND, DuelConfig, RunConfig, _runs, duel
from bpttlab.store import Store

from .conftest import TINY_BUDGET, canned, strict_json

TINY = DuelConfig(seeds=(0,), length=6, budget=TINY_BUDGET)


def test_duel_shape_caching_and_force(store: Store, train_calls: list[int]) -> None:
    first = duel(TINY, store=store, workers=1).to_dict()
    assert len(train_calls) == 2
    assert strict_json(first) == first
    assert [(r["arch"], r["seed"]) for r in first["results"]] == [("rnn", 0), ("lstm", 0)]
    for row in first["results"]:
        assert set(row) >= {"arch", "seed", "accuracy", "train_accuracy", "grad_h0_init",
                            "grad_h0_final"}  # fmt: skip
        assert row["grad_h0_init"] > 0
    for summary in first["summary"].values():
        assert summary["success_low"] <= summary["successes"] / summary["seeds"]
        assert summary["accuracy_low"] <= summary["accuracy_mean"] <= summary["accuracy_high"]
    assert first["claims"] == [] and "lesson's setup" in first["claims_note"]
    budget = first["budget"]
    assert (budget["steps"], budget["length"], budget["eval_sequences"]) == (6, 6, 8 * 16)
    assert duel(TINY, store=store, workers=1).to_dict() == first
    assert len(train_calls) == 2  # served from the store
    duel(TINY, store=store, workers=1, force=True)
    assert len(train_calls) == 4
    runs = store.runs(RUN_KIND)
    assert len(runs) == 2 and len(store.runs("duel")) == 1
    assert runs[0].seed == 0 and runs[0].machine["torch"] == torch.__version__
    assert len(store.metrics(runs[0])["grad_h0"]) == 6


def test_duel_is_deterministic_for_a_seed() -> None:
    config = DuelConfig(seeds=(3,), length=5, budget=TINY_BUDGET)
    a, b = (duel(config, workers=1).to_dict() for _ in range(2))
    assert a["results"] == b["results"]


@pytest.mark.parametrize(
    ("rnn", "lstm", "verdicts"),
    [
        (1.0, 0.5, ["does not hold", "does not hold"]),  # as measured under Adam
        (0.5, 1.0, ["holds", "holds"]),  # what the lesson printed
        (None, None, ["inconclusive", "does not hold"]),  # half the seeds each way
    ],
)
def test_the_lessons_claims_are_decided_by_their_intervals(
    monkeypatch, rnn, lstm, verdicts
) -> None:
    def rule(config: RunConfig) -> dict:
        assert (config.length, config.train.steps, config.hidden_size) == (30, 300, 32)
        mixed = 1.0 if config.train.seed % 2 else 0.5
        acc = {"rnn": rnn, "lstm": lstm}[config.arch]
        return canned(mixed if acc is None else acc)

    monkeypatch.setattr(_runs, "train_run", rule)
    doc = duel(workers=1).to_dict()  # the lesson's setup, 10 seeds
    assert [c["verdict"] for c in doc["claims"]] == verdicts
    assert "RNN stays at chance" in doc["claims"][0]["claim"]
    assert "99.8%" in doc["claims"][1]["claim"]
    assert doc["budget"]["length"] == 30 and doc["budget"]["batch_size"] == 256


def test_claims_stand_under_any_optimizer_and_not_elsewhere(monkeypatch) -> None:
    monkeypatch.setattr(_runs, "train_run", lambda c: canned(1.0))
    sgd = DuelConfig(budget=DuelConfig().budget.replace(optimizer="sgd", lr=0.1))
    assert sgd.is_lesson and len(duel(sgd, workers=1).claims) == 2
    other = DuelConfig(length=20)
    assert not other.is_lesson and duel(other, workers=1).claims == []


def test_bad_duel_configs_name_the_field() -> None:
    with pytest.raises(ValueError, match="^archs=.*two architectures"):
        DuelConfig(archs=("rnn",))
    with pytest.raises(ValueError, match="^length=2 .*adding"):
        DuelConfig(length=2, budget=TINY_BUDGET.replace(task="adding"))
