"""run_many: the same results as a serial loop, resume from the store, interruption keeps work.

Call counts cross process boundaries through a log file: every call appends its config's ``x``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from bpttlab.experiments import RunConfig, train_run
from bpttlab.store import RunOutput, Store
from bpttlab.sweep import RunFailed, SweepInterrupted, run_many
from bpttlab.training import TrainConfig


def square(config: dict[str, Any]) -> dict[str, Any]:
    """Logs the call; raises KeyboardInterrupt (as Ctrl-C would) at the x written in
    ``LOG.stop`` and RuntimeError at the x in ``LOG.fail``, files outside the config (its key)."""
    x, log = config["x"], Path(config["log"])
    with log.open("a") as f:
        f.write(f"{x}\n")
    if _marked(log, ".stop", x):
        raise KeyboardInterrupt
    if _marked(log, ".fail", x):
        raise RuntimeError(f"run {x} failed")
    return {"x": x, "square": x**2}


def _marked(log: Path, suffix: str, x: int) -> bool:
    marker = log.with_suffix(suffix)
    return marker.exists() and int(marker.read_text()) == x


def stop_at(log: Path, x: int | None, suffix: str = ".stop") -> None:
    marker = log.with_suffix(suffix)
    marker.unlink(missing_ok=True)
    if x is not None:
        marker.write_text(str(x))


def with_metrics(config: dict[str, Any]) -> RunOutput:
    return RunOutput({"x": config["x"]}, metrics={"loss": [1.0, 0.5]}, profiles={0: [2.0, 1.0]})


def calls(log: Path) -> list[int]:
    return sorted(int(line) for line in log.read_text().split()) if log.exists() else []


def configs(log: Path, n: int = 6) -> list[dict[str, Any]]:
    return [{"x": x, "log": str(log)} for x in range(n)]


@pytest.mark.parametrize("workers", [1, 2])
def test_results_equal_serial_results(tmp_path: Path, workers: int) -> None:
    cs = configs(tmp_path / "log")
    assert run_many(square, cs, workers=workers) == [square(c) for c in cs]


def test_training_runs_in_workers_equal_serial_runs() -> None:
    """Real runs: bit-identical in a forked single-threaded worker and in this process."""
    train = TrainConfig(steps=4, batch_size=8, fixed_batch=True, eval_batches=1)
    cs = [RunConfig(arch=a, length=6, train=train, hidden_size=4) for a in ("rnn", "lstm")]
    parallel = run_many(train_run, cs, workers=2)
    serial = [train_run(c).result for c in cs]
    for p, s in zip(parallel, serial, strict=True):
        p.pop("wall_time_s"), s.pop("wall_time_s")
        assert p == s


@pytest.mark.parametrize("workers", [1, 2])
def test_store_resume_and_force(tmp_path: Path, workers: int) -> None:
    log, store = tmp_path / "log", Store(tmp_path / "runs.db")
    first = run_many(square, configs(log), workers=workers, store=store, kind="sq")
    assert calls(log) == list(range(6))
    again = run_many(square, configs(log, n=8), workers=workers, store=store, kind="sq")
    assert calls(log) == [*range(6), 6, 7]  # only the two new configs ran
    assert again[:6] == first
    run_many(square, configs(log, n=2), workers=workers, store=store, kind="sq", force=True)
    assert calls(log) == sorted([*range(8), 0, 1])
    stored = [r.config["x"] for r in store.runs("sq")]  # oldest first: the forced ones last
    assert sorted(stored[:6]) == [2, 3, 4, 5, 6, 7] and sorted(stored[6:]) == [0, 1]


def test_store_keeps_metrics_profiles_and_the_machine(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        run_many(with_metrics, [{"x": 1, "seed": 7}], store=store)
        (record,) = store.runs("with_metrics")
        assert record.seed == 7 and record.machine["torch"] and record.machine["cpu_capability"]
        assert store.metrics(record) == {"loss": [(0, 1.0), (1, 0.5)]}
        assert store.profiles(record) == {0: [2.0, 1.0]}


def test_interrupt_keeps_finished_runs_serial(tmp_path: Path) -> None:
    log, store = tmp_path / "log", Store(tmp_path / "runs.db")
    stop_at(log, 3)
    with pytest.raises(SweepInterrupted, match="interrupted: kept 3 of 6 runs in .*runs.db"):
        run_many(square, configs(log), workers=1, store=store, kind="sq")
    assert [r.config["x"] for r in store.runs("sq")] == [0, 1, 2]
    log.unlink(), stop_at(log, None)
    results = run_many(square, configs(log), workers=1, store=store, kind="sq")
    assert calls(log) == [3, 4, 5]  # resumed where it stopped
    assert [r["square"] for r in results] == [x * x for x in range(6)]


def test_interrupt_keeps_finished_runs_in_pool(tmp_path: Path) -> None:
    log, store = tmp_path / "log", Store(tmp_path / "runs.db")
    stop_at(log, 2)
    with pytest.raises(SweepInterrupted, match="interrupted: kept [0-7] of 8 runs"):
        run_many(square, configs(log, n=8), workers=2, store=store, kind="sq")
    kept = {r.config["x"]: r.result for r in store.runs("sq")}
    assert 2 not in kept and all(v == {"x": x, "square": x * x} for x, v in kept.items())
    log.unlink(), stop_at(log, None)
    run_many(square, configs(log, n=8), workers=2, store=store, kind="sq")
    assert calls(log) == sorted(set(range(8)) - set(kept))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_run_is_stored_as_failed_and_the_sweep_goes_on(tmp_path: Path, workers) -> None:
    log, store = tmp_path / "log", Store(tmp_path / "runs.db")
    stop_at(log, 4, suffix=".fail")
    with pytest.raises(RunFailed, match=r"1 of 6 runs failed.*run 4: RuntimeError: run 4 failed"):
        run_many(square, configs(log), workers=workers, store=store, kind="sq")
    status = {r.config["x"]: (r.status, r.result) for r in store.runs("sq")}
    assert calls(log) == list(range(6)) and status[4][0] == "failed"
    assert "run 4 failed" in status[4][1]["error"] and "Traceback" in status[4][1]["traceback"]
    assert all(status[x] == ("done", {"x": x, "square": x * x}) for x in (0, 1, 2, 3, 5))
    stop_at(log, None, suffix=".fail")
    log.unlink()
    assert run_many(square, configs(log), workers=workers, store=store, kind="sq")[4] == {
        "x": 4, "square": 16}  # fmt: skip
    assert calls(log) == [4]  # the rerun retries only the failed run


def test_no_store_no_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_many(with_metrics, [{"x": 3}], progress=True) == [{"x": 3}]
    assert capsys.readouterr() == ("", "")  # the bar is off when stderr is not a terminal
    assert json.dumps(run_many(square, configs(tmp_path / "log", n=2)))
    assert not list(tmp_path.glob("*.db"))


def test_bad_arguments() -> None:
    with pytest.raises(
        ValueError, match="executor='dask' is not allowed: choose one of local, ray"
    ):
        run_many(square, [], executor="dask")
    with pytest.raises(ValueError, match="workers=0 is not allowed"):
        run_many(square, [], workers=0)


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_without_ray_names_the_extra() -> None:
    with pytest.raises(ValueError, match=r"pip install 'bpttlab\[ray\]'"):
        run_many(square, [{"x": 1}], executor="ray")
