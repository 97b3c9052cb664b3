"""The one run pipeline: configs round-trip, runs reproduce, and match the lesson's loop."""

from __future__ import annotations

import json

import pytest

from bpttlab.experiments import (
    PROFILE_KIND,
    RUN_KIND,
    Budget,
    DuelConfig,
    ProfileConfig,
    RunConfig,
    Setting,
    duel,
    profile_run,
    train_run,
)
from bpttlab.store import Store
from bpttlab.testing import lesson_train
from bpttlab.training import TrainConfig

from .conftest import TINY_BUDGET


def test_specs_set_the_fields_and_errors_name_the_field() -> None:
    assert Setting.specs("lstm:forget_bias=one", "copy-bit:noise=0.5") == {
        "arch": "lstm", "arch_options": (("forget_bias", "one"),), "task": "copy-bit",
        "task_options": (("noise", 0.5),)}  # fmt: skip
    with pytest.raises(ValueError, match="arch='lstm:forget=1' is not allowed"):
        Setting.specs("lstm:forget=1", "copy-bit")
    with pytest.raises(ValueError, match="task='copy-bit:noise=-1' .*noise=-1.0"):
        Setting.specs("lstm", "copy-bit:noise=-1")
    with pytest.raises(ValueError, match="length=20 is not allowed: 'digits' images"):
        RunConfig(arch="rnn", task="digits", length=20)


def test_run_config_round_trips_through_json() -> None:
    config = Budget(task="latch:noise=0.1").run("lstm:forget_bias=chrono", 12, seed=3, tbptt=4)
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.train.tbptt == 4 and again.task_options == (("noise", 0.1),)


def test_a_stored_run_reproduces_from_its_record(store: Store) -> None:
    duel(DuelConfig(archs=("rnn:activation=relu", "gru"), seeds=(1,), length=5,
                    budget=TINY_BUDGET), store=store, workers=1)  # fmt: skip
    records = store.runs(RUN_KIND)
    assert len(records) == 2
    for record in records:
        again = train_run(RunConfig.from_dict(record.config))
        assert again.seed == record.seed == 1
        stored, fresh = dict(record.result), dict(again.result)
        stored.pop("wall_time_s"), fresh.pop("wall_time_s")
        assert fresh == stored
        assert [v for _, v in store.metrics(record)["grad_h0"]] == again.metrics["grad_h0"]


def test_train_run_matches_the_lessons_plain_loop() -> None:
    """Same seed, same weights, batch and update order: the same bits, hence the same accuracy."""
    train = TrainConfig(lr=1e-2, steps=8, batch_size=16, fixed_batch=True)
    ours = train_run(RunConfig(arch="lstm", length=7, hidden_size=8, train=train)).result
    plain = lesson_train("lstm", 7, seed=0, steps=8, batch_size=16, hidden_size=8)
    assert ours["train_accuracy"] == plain["accuracy"]


def test_profile_run_diagnoses_and_trains_when_asked() -> None:
    config = ProfileConfig(arch="lstm", length=12, hidden_size=8, batch_size=4, train_steps=3)
    doc = profile_run(config)
    assert len(doc["norms"]) == doc["T"] + 1 == 13 and doc["method"] == "fused"
    assert doc["trained"]["steps"] == 3 and doc["diagnosis"]["decay_rate"] is not None
    assert PROFILE_KIND != RUN_KIND
    with pytest.raises(ValueError, match="dtype='float16' is not allowed"):
        ProfileConfig(dtype="float16")
