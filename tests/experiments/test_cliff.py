"""cliff(): JSON shape with intervals and T50, caching and resume, bisection, axes, bad specs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from bpttlab.experiments import RUN_KIND, Budget, CliffConfig, RunConfig, _runs, cliff
from bpttlab.experiments.cliff import find_cliff, success_threshold
from bpttlab.models import parse_arch
from bpttlab.store import Store

from .conftest import TINY_BUDGET, canned, strict_json


# ---------------------------------------------------------------- specs
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
        ("transformer", "'transformer' is not one of rnn, irnn, lstm"),
        ("lstm:forgetbias=one", "lstm's options: forget_bias, chrono_tmax, num_layers"),
        ("lstm:forget_bias", "not KEY=VALUE"),
        ("rnn:num_layers=two", "option num_layers='two' is not a valid int"),
        ("rnn:bidirectional=maybe", "is not a valid bool"),
        ("lstm:forget_bias=two", "forget_bias='two': choose one of default, zero, one, chrono"),
        ("rnn:num_layers=0", "num_layers=0: must be an int >= 1"),
        ("irnn:gain=nan", "gain=nan: must be a finite number"),
        ("lru:max_phase=inf", "max_phase=inf: must be a finite number"),
        ("rnn:gain=1,gain=2", "'gain' is given twice"),
    ],
)
def test_bad_specs_are_refused_before_anything_trains(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_arch(spec)
    with pytest.raises(ValueError, match="archs=.*" + message.replace("(", r"\(")):
        CliffConfig(archs=("rnn", spec), budget=TINY_BUDGET)


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


# ---------------------------------------------------------------- real runs
def test_cliff_shape_intervals_and_resume(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real, count = _runs.train, []

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        count.append(1)
        if len(count) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_runs, "train", interrupted)
    config = CliffConfig(archs=("rnn", "lstm:forget_bias=one"), lengths=(2, 6), seeds=(0, 1),
                         budget=TINY_BUDGET)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        cliff(config, store=store, workers=1)
    assert len(store.runs(RUN_KIND)) == 2
    doc = cliff(config, store=store, workers=1).to_dict()
    assert len(count) == 3 + 6  # resumed: the two finished runs were not repeated
    assert strict_json(doc) == doc
    fb1 = "lstm:forget_bias=one"
    assert [(r["arch"], r["length"]) for r in doc["rows"]] == [
        ("rnn", 2), ("rnn", 6), (fb1, 2), (fb1, 6)]  # fmt: skip
    for row in doc["rows"]:
        assert row["accuracy_min"] <= row["accuracy_mean"] <= row["accuracy_max"]
        assert row["accuracy_low"] <= row["accuracy_mean"] <= row["accuracy_high"]
        assert row["success_low"] <= row["success_rate"] <= row["success_high"]
        assert row["successes"] == sum(a >= row["threshold"] for a in row["accuracies"])
        assert row["threshold"] == 0.75 and row["seeds"] == 2 and row["series"] == row["arch"]
        assert set(row["grad_h0_final"]) == {"median", "min", "max"}
    assert set(doc["cliffs"]) == set(doc["t50"]) == {"rnn", "lstm:forget_bias=one"}
    for t50 in doc["t50"].values():
        assert t50["status"] in ("found", "beyond grid", "below grid", "inconclusive")
        assert t50["statement"].startswith("succeeds at 2 in ")
    assert doc["budget"]["steps"] == 6 and doc["budget"]["runs"] == 8
    assert cliff(config, store=store, workers=1).to_dict() == doc  # read back
    assert len(count) == 9


def _canned_by(rule: Callable[[RunConfig], float]) -> Callable[[RunConfig], dict[str, Any]]:
    return lambda config: canned(rule(config))


def test_cliff_refine_trains_the_bisected_lengths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Canned runs that learn below T=13: bisecting between 5 and 20 trains 12 and 13, finds 13."""
    trained: list[int] = []

    def rule(config: RunConfig) -> float:
        trained.append(config.length)
        return 1.0 if config.length < 13 else 0.5

    monkeypatch.setattr(_runs, "train_run", _canned_by(rule))
    doc = cliff(CliffConfig(archs=("rnn",), lengths=(5, 20), seeds=(0,), refine=True),
                workers=1).to_dict()  # fmt: skip
    assert doc["cliffs"] == {"rnn": 13}
    assert sorted(trained[:2]) == [5, 20] and 13 in trained and 12 in trained
    assert [r["grid"] for r in doc["rows"] if r["length"] in (5, 20)] == [True, True]
    assert sorted(r["length"] for r in doc["rows"] if not r["grid"]) == sorted(trained[2:])


def test_t50_is_found_where_ten_seeds_decide_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Canned: every seed learns T <= 20 and none learns 50 -> T50 between 20 and 50."""
    monkeypatch.setattr(_runs, "train_run", _canned_by(lambda c: 1.0 if c.length <= 20 else 0.5))
    doc = cliff(CliffConfig(), workers=1).to_dict()  # the lesson's grid, 10 seeds
    for arch in ("rnn", "lstm"):
        t50 = doc["t50"][arch]
        assert t50["status"] == "found" and 20 <= t50["low"] < t50["estimate"] < t50["high"] <= 50
        assert t50["statement"] == "succeeds at 5 in 10/10, at 20 in 10/10, at 50 in 0/10"


def test_axes_make_one_series_per_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int, str]] = []

    def rule(config: RunConfig) -> float:
        seen.append((config.train.optimizer, config.train.steps, str(config.task_options)))
        return 1.0

    monkeypatch.setattr(_runs, "train_run", _canned_by(rule))
    config = CliffConfig(archs=("rnn",), lengths=(5,), seeds=(0,), optimizers=("adam", "sgd"),
                         steps=(10, 20), tasks=("copy-bit", "copy-bit:noise=0.5"))  # fmt: skip
    doc = cliff(config, workers=1).to_dict()
    assert len(doc["t50"]) == 8 and len(set(seen)) == 8
    assert "rnn [sgd, 20 steps, copy-bit:noise=0.5]" in doc["t50"]
    row = next(r for r in doc["rows"] if r["series"] == "rnn [sgd, 10 steps, copy-bit]")
    assert (row["optimizer"], row["steps"], row["task"]) == ("sgd", 10, "copy-bit")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lengths": ()}, "lengths"),
        ({"lengths": (0,)}, "lengths"),
        ({"seeds": (-1,)}, "seeds"),
        ({"optimizers": ("lbfgs",)}, "optimizers"),
        ({"steps": (0,)}, "steps"),
        ({"tasks": ("copy",)}, "tasks"),
        ({"margin": 0.0}, "margin"),
        ({"budget": Budget(task="adding"), "lengths": (2,)}, "lengths"),
    ],  # fmt: skip
)
def test_bad_configs_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}="):
        CliffConfig(**kwargs)
