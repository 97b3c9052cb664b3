"""Experiments: documented JSON shapes, caching and resume, the cliff bisection, real clipping.

Tiny settings (H <= 16, a few steps, short lengths); runs happen in this process (workers=1)
so that ``train`` calls can be counted; test_sweep.py covers the process pool.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from bpttlab import runs
from bpttlab.experiments import (
    RUN_KIND,
    RunConfig,
    cliff,
    clipping_demo,
    decay_vs_length,
    duel,
    find_cliff,
    parse_arch,
    success_threshold,
    tbptt_sweep,
    train_run,
)
from bpttlab.store import Store
from bpttlab.testing import lesson_train
from bpttlab.train import TrainConfig

TINY: dict[str, Any] = {"steps": 6, "hidden_size": 8, "batch_size": 16, "workers": 1}


@pytest.fixture
def train_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of ``train`` made by the experiments (one per training run)."""
    seen: list[int] = []
    real = runs.train

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "train", counting)
    return seen


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "runs.db") as s:
        yield s


def strict_json(doc: Any) -> Any:
    return json.loads(json.dumps(doc, allow_nan=False))


# ---------------------------------------------------------------- parse_arch
def test_parse_arch_converts_by_field_type() -> None:
    assert parse_arch("lstm") == ("lstm", {})
    assert parse_arch("rnn:activation=relu") == ("rnn", {"activation": "relu"})
    name, options = parse_arch(" lstm:forget_bias=one,num_layers=2,bidirectional=true ")
    assert (name, options) == (
        "lstm",
        {"forget_bias": "one", "num_layers": 2, "bidirectional": True},
    )
    assert parse_arch("rnn:gain=2,init=gaussian")[1] == {"gain": 2.0, "init": "gaussian"}
    assert isinstance(parse_arch("rnn:gain=2")[1]["gain"], float)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("transformer", "arch='transformer' is not one of: rnn, irnn, lstm"),
        ("lstm:forgetbias=one", "lstm's options: forget_bias, chrono_tmax, num_layers"),
        ("lstm:forget_bias", "not KEY=VALUE"),
        ("rnn:num_layers=two", "num_layers='two' in 'rnn:num_layers=two' is not a valid int"),
        ("rnn:bidirectional=maybe", "is not a valid bool"),
        ("lstm:forget_bias=two", "forget_bias='two' is not one of: default, zero, one, chrono"),
        ("rnn:num_layers=0", "num_layers=0 must be a positive integer"),
    ],
)
def test_parse_arch_rejects_with_a_clear_message(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_arch(spec)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        cliff(archs=("rnn", spec), **TINY)  # before anything trains


# ---------------------------------------------------------------- find_cliff
def step_at(cliff_at: float, calls: list[int]) -> Callable[[int], float]:
    def accuracy(length: int) -> float:
        calls.append(length)
        return 1.0 if length < cliff_at else 0.5

    return accuracy


@pytest.mark.parametrize("true_cliff", [6, 21, 37, 49, 50])
def test_find_cliff_bisects_to_the_exact_length(true_cliff: int) -> None:
    calls: list[int] = []
    found = find_cliff(step_at(true_cliff, calls), [5, 20, 50], 0.5, refine=True)
    assert found == true_cliff
    assert len(calls) <= 3 + math.ceil(math.log2(30))


def test_find_cliff_on_the_grid_only() -> None:
    calls: list[int] = []
    assert find_cliff(step_at(37, calls), [50, 5, 20], chance=0.5) == 50
    assert calls == [5, 20, 50]
    calls.clear()
    assert find_cliff(step_at(15, calls), [5, 20, 50, 100], chance=0.5) == 20
    assert calls == [5, 20]  # stops at the first failure


def test_find_cliff_edges() -> None:
    assert find_cliff(lambda n: 1.0, [5, 20, 50], 0.5, refine=True) is None
    assert find_cliff(lambda n: 0.5, [5, 20, 50], 0.5, refine=True) == 5
    assert find_cliff(lambda n: math.nan, [5, 20], 0.5) == 5
    # the margin: 0.74 is not clear of chance 0.5 at margin 0.5, 0.75 is
    assert find_cliff(lambda n: 0.75, [5], 0.5) is None
    assert find_cliff(lambda n: 0.74, [5], 0.5) == 5
    assert find_cliff(lambda n: 0.6, [5], 0.5, margin=0.1) is None
    # chance may depend on the length
    assert find_cliff(lambda n: 0.6, [5, 20], chance=lambda n: 0.1 * n / 5) == 20
    assert success_threshold(0.125, 0.5) == pytest.approx(0.5625)
    with pytest.raises(ValueError, match="margin=1.5 is not allowed"):
        success_threshold(0.5, 1.5)


# ---------------------------------------------------------------- duel
def test_duel_shape_caching_and_force(store: Store, train_calls: list[int]) -> None:
    first = duel(seeds=(0,), length=6, store=store, **TINY)
    assert len(train_calls) == 2
    assert strict_json(first) == first
    assert [(r["arch"], r["seed"]) for r in first["results"]] == [("rnn", 0), ("lstm", 0)]
    for row in first["results"]:
        assert set(row) >= {
            "arch",
            "seed",
            "accuracy",
            "train_accuracy",
            "grad_h0_init",
            "grad_h0_final",
        }
        assert row["grad_h0_init"] > 0
    assert first["claims"] == [] and "exact setup" in first["claims_note"]
    budget = first["budget"]
    assert (budget["steps"], budget["length"], budget["eval_sequences"]) == (6, 6, 8 * 16)
    assert duel(seeds=(0,), length=6, store=store, **TINY) == first
    assert len(train_calls) == 2  # served from the store
    duel(seeds=(0,), length=6, store=store, force=True, **TINY)
    assert len(train_calls) == 4
    runs = store.runs(RUN_KIND)
    assert len(runs) == 2 and len(store.runs("duel")) == 1
    assert runs[0].seed == 0 and runs[0].versions["torch"] == torch.__version__
    assert len(store.metrics(runs[0])["grad_h0"]) == 6


def test_a_stored_run_reproduces_from_its_record(store: Store) -> None:
    duel(archs=("rnn:activation=relu", "gru"), seeds=(1,), length=5, store=store, **TINY)
    for record in store.runs(RUN_KIND):
        again = train_run(RunConfig.from_dict(record.config))
        assert again.seed == record.seed == 1
        stored, fresh = dict(record.result), dict(again.result)
        stored.pop("wall_time_s"), fresh.pop("wall_time_s")
        assert fresh == stored
        assert [v for _, v in store.metrics(record)["grad_h0"]] == again.metrics["grad_h0"]


def test_duel_is_deterministic_for_a_seed() -> None:
    a, b = (duel(seeds=(3,), length=5, **TINY) for _ in range(2))
    assert a["results"] == b["results"]


def test_duel_lesson_preset_checks_the_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    """The claims' logic on canned results: rnn learns, lstm stays at chance (as measured)."""

    def canned(config: RunConfig) -> dict[str, Any]:
        assert (config.length, config.train.steps, config.hidden_size) == (30, 300, 32)
        acc = 1.0 if config.arch == "rnn" else 0.5
        return {
            "accuracy": acc,
            "train_accuracy": acc,
            "grad_h0_init": 1e-9,
            "grad_h0_final": 1e-6,
            "loss": 0.1,
            "diverged": False,
            "wall_time_s": 1.0,
        }

    monkeypatch.setattr(runs, "train_run", canned)
    doc = duel(seeds=(0, 1), workers=1)
    assert [c["holds"] for c in doc["claims"]] == [False, False]
    assert "RNN stays at chance" in doc["claims"][0]["claim"]
    assert "held-out accuracy 1.0000" in doc["claims"][0]["measured"]
    assert "99.8%" in doc["claims"][1]["claim"]
    assert doc["budget"]["length"] == 30 and doc["budget"]["batch_size"] == 256


def test_train_run_matches_the_lessons_plain_loop() -> None:
    """Same seed, same weights, batch and update order: the same bits, hence the same accuracy."""
    config = RunConfig("lstm", 7, TrainConfig(lr=1e-2, steps=8, batch_size=16, fixed_batch=True))
    ours = train_run(replace_hidden(config, 8)).result
    plain = lesson_train("lstm", 7, seed=0, steps=8, batch_size=16, hidden_size=8)
    assert ours["train_accuracy"] == plain["accuracy"]


def replace_hidden(config: RunConfig, hidden: int) -> RunConfig:
    return RunConfig(config.arch, config.length, config.train, hidden_size=hidden)


# ---------------------------------------------------------------- cliff and tbptt
def test_cliff_shape_refine_and_resume(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real, count = runs.train, []

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        count.append(1)
        if len(count) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "train", interrupted)
    args = {"archs": ("rnn", "lstm:forget_bias=one"), "lengths": (2, 6), "seeds": (0, 1)}
    with pytest.raises(KeyboardInterrupt):
        cliff(**args, store=store, **TINY)
    assert len(store.runs(RUN_KIND)) == 2
    doc = cliff(**args, store=store, **TINY)
    assert len(count) == 3 + 6  # resumed: the two finished runs were not repeated
    assert strict_json(doc) == doc
    assert [(r["arch"], r["length"]) for r in doc["rows"]] == [
        ("rnn", 2),
        ("rnn", 6),
        ("lstm:forget_bias=one", 2),
        ("lstm:forget_bias=one", 6),
    ]
    for row in doc["rows"]:
        assert row["accuracy_min"] <= row["accuracy_mean"] <= row["accuracy_max"]
        assert 0 <= row["success_rate"] <= 1 and row["threshold"] == 0.75
    assert set(doc["cliffs"]) == {"rnn", "lstm:forget_bias=one"}
    assert doc["budget"]["steps"] == 6 and doc["budget"]["runs"] == 8


def test_cliff_refine_trains_the_bisected_lengths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Canned runs that learn below T=13: bisecting between 5 and 20 trains 12 and 13, finds 13."""
    trained: list[int] = []

    def canned(config: RunConfig) -> dict[str, Any]:
        trained.append(config.length)
        return {"accuracy": 1.0 if config.length < 13 else 0.5, "wall_time_s": 0.0}

    monkeypatch.setattr(runs, "train_run", canned)
    doc = cliff(archs=("rnn",), lengths=(5, 20), seeds=(0,), refine=True, workers=1)
    assert doc["cliffs"] == {"rnn": 13}
    assert sorted(trained[:2]) == [5, 20] and 13 in trained and 12 in trained
    assert [r["grid"] for r in doc["rows"] if r["length"] in (5, 20)] == [True, True]
    assert sorted(r["length"] for r in doc["rows"] if not r["grid"]) == sorted(trained[2:])


def test_tbptt_sweep_shape() -> None:
    doc = tbptt_sweep(windows=(2, 4), lengths=(2, 5), seeds=(0,), task="latch:noise=0.1", **TINY)
    assert strict_json(doc) == doc
    assert [(r["window"], r["length"]) for r in doc["rows"]] == [(2, 2), (2, 5), (4, 2), (4, 5)]
    assert set(doc["longest_learned"]) == {"2", "4"}
    assert doc["budget"]["arch"] == "rnn"
    assert (doc["budget"]["task"], doc["budget"]["task_options"]) == ("latch", {"noise": 0.1})


# ---------------------------------------------------------------- decay and clipping
def test_decay_vs_length(store: Store) -> None:
    doc = decay_vs_length(lengths=(5, 10, 20), hidden_size=8, batch_size=4, store=store)
    assert strict_json(doc) == doc
    rows = {(r["radius"], r["length"]): r for r in doc["rows"]}
    assert set(rows) == {(r, n) for r in (0.95, 1.05) for n in (5, 10, 20)}
    ratios = [rows[0.95, n]["ratio"] for n in (5, 10, 20)]
    assert ratios[0] > ratios[1] > ratios[2] > 0  # decays with length
    for row in doc["rows"]:
        assert row["naive"] == pytest.approx(
            (row["radius"] * row["mean_derivative"]) ** row["length"]
        )
        assert row["lyapunov"] == pytest.approx(math.exp(row["lyapunov_rate"] * row["length"]))
        assert row["measured_rate"] < 0 and row["lyapunov_rate"] < 0 and row["naive_rate"] < 0
    for radius in (0.95, 1.05):  # past the transient, both predictions track the measured rate
        row = rows[radius, 20]
        assert row["measured_rate"] == pytest.approx(row["lyapunov_rate"], abs=0.05)
        assert row["measured_rate"] == pytest.approx(row["naive_rate"], abs=0.05)
    assert decay_vs_length(lengths=(5, 10, 20), hidden_size=8, batch_size=4, store=store) == doc
    assert len(store.runs("decay-vs-length")) == 1


def test_clipping_demo_real_config() -> None:
    """The documented configurations, as measured: the unclipped explosion diverges, clipping by
    norm or by value trains without diverging, and nothing rescues the vanishing gradient."""
    doc = clipping_demo(steps=40, workers=1)
    assert strict_json(doc) == doc
    runs = {(r["case"], r["clip"]): r for r in doc["runs"]}
    assert runs["exploding", "none"]["diverged"] and runs["exploding", "none"]["diverged_at_step"]
    for clip in ("norm", "value"):
        assert not runs["exploding", clip]["diverged"]
        assert runs["exploding", clip]["diverged_at_step"] is None
    for clip in ("none", "norm", "value"):
        vanishing = runs["vanishing", clip]
        assert not vanishing["diverged"] and vanishing["grad_h0_ratio"] < 1e-10
        assert vanishing["grad_h0_ratio_init"] < 1e-10
    assert runs["exploding", "none"]["grad_h0_ratio_init"] > 1e3
