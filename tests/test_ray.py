"""run_many on Ray: the local executor's results, resumable after a killed driver, a killed
worker retried, failures recorded, and the CLI's ``--executor ray``.

One local Ray instance serves the module (2 CPUs, no dashboard, usage stats off). Functions run
in Ray workers log each call to a file named in their config, with the Ray job that ran it, so
calls are counted across processes, and a killed driver's last tasks are told from a rerun's.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip(
    "ray", reason="the ray extra is not installed: pip install 'bpttlab[ray]'"
)

from bpttlab.cli import main  # noqa: E402
from bpttlab.experiments import RUN_KIND, Budget, CliffConfig, RunConfig, cliff, train_run  # noqa: E402
from bpttlab.store import Store  # noqa: E402
from bpttlab.sweep import RunFailed, run_many  # noqa: E402
from bpttlab.training import TrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray instance for this module; yields its address (HOST:PORT)."""
    saved = dict(os.environ)  # ray.init sets RAY_AUTH_MODE, PYTHONBREAKPOINT for this process
    sigterm = signal.getsignal(signal.SIGTERM)  # and replaces the SIGTERM handler
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})  # fmt: skip
    signal.signal(signal.SIGTERM, sigterm)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


# ---------------------------------------------------------------- functions run in the workers
def _job() -> str:
    return ray.get_runtime_context().get_job_id() if ray.is_initialized() else "local"


def square(config: dict[str, Any]) -> dict[str, Any]:
    """Sleeps ``sleep`` s, logs ``job x``; at the x in ``LOG.fail`` raises, at the x in
    ``LOG.crash`` kills its own process (once, if ``LOG.once`` does not exist yet)."""
    x, log = config["x"], Path(config["log"])
    time.sleep(config.get("sleep", 0.0))
    if _marked(log, ".crash", x):
        once = log.with_suffix(".once")
        if not once.exists() or once.read_text() == "on":
            once.write_text(once.read_text() if once.exists() else "done")
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-task
    with log.open("a") as f:
        f.write(f"{_job()} {x}\n")
    if _marked(log, ".fail", x):
        raise RuntimeError(f"run {x} failed")
    return {"x": x, "square": x * x}


def _marked(log: Path, suffix: str, x: int) -> bool:
    marker = log.with_suffix(suffix)
    return marker.exists() and int(marker.read_text()) == x


def mark(log: Path, suffix: str, value: str | int | None) -> None:
    marker = log.with_suffix(suffix)
    marker.unlink(missing_ok=True)
    if value is not None:
        marker.write_text(str(value))


def calls(log: Path, job: str | None = None) -> list[int]:
    """Logged calls (of ``job`` only, if given), sorted."""
    lines = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return sorted(int(x) for j, x in lines if job is None or j == job)


def configs(log: Path, n: int = 6, sleep: float = 0.0) -> list[dict[str, Any]]:
    return [{"x": x, "log": str(log), "sleep": sleep} for x in range(n)]


def stored(store: Store, kind: str) -> dict[int, tuple[str, Any]]:
    return {r.config["x"]: (r.status, r.result) for r in store.runs(kind)}


# ---------------------------------------------------------------- same results as local
def _runs_of(store: Store) -> dict[str, Any]:
    """Every stored run by key: what was measured (less the wall time), its series, where."""
    out = {}
    for r in store.runs(RUN_KIND):
        result = {k: v for k, v in r.result.items() if k != "wall_time_s"}
        out[r.key] = (r.status, r.seed, result, store.metrics(r), store.profiles(r), r.machine)
    return out


def test_ray_stores_what_the_local_pool_stores(cluster: str, tmp_path: Path) -> None:
    """A cliff grid and a profiled run: bit-identical results, series and profiles."""
    config = CliffConfig(archs=("rnn", "lstm"), lengths=(3,), seeds=(0, 1),
                         budget=Budget(steps=5, hidden_size=4, batch_size=8))  # fmt: skip
    profiled = RunConfig(arch="gru", length=5, hidden_size=4,
                         train=TrainConfig(steps=4, batch_size=8, profile_every=2))  # fmt: skip
    docs, runs = {}, {}
    for executor in ("local", "ray"):
        with Store(tmp_path / f"{executor}.db") as store:
            docs[executor] = cliff(config, store=store, workers=2, executor=executor).to_dict()
            run_many(train_run, [profiled], executor=executor, store=store, kind=RUN_KIND)
            runs[executor] = _runs_of(store)
    assert len(runs["ray"]) == 5 and runs["ray"] == runs["local"]
    assert docs["ray"]["rows"] == docs["local"]["rows"]
    assert docs["ray"]["t50"] == docs["local"]["t50"]
    (machine,) = {r[-1]["cpu"] for r in runs["ray"].values()}  # the worker's fingerprint
    assert machine


def test_pure_function_results_and_resume(cluster: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    with Store(tmp_path / "runs.db") as store:
        first = run_many(square, configs(log), executor="ray", store=store, kind="sq")
        assert first == [{"x": x, "square": x * x} for x in range(6)]
        again = run_many(square, configs(log, n=8), executor="ray", store=store, kind="sq")
        assert again[:6] == first and calls(log) == [*range(6), 6, 7]  # only the new two ran


# ---------------------------------------------------------------- a killed driver resumes
N, SLEEP = 8, 0.3  # the killed driver's sweep: 8 runs of 0.3 s on 2 CPUs
DRIVER = f"""
import sys
from bpttlab.store import Store
from bpttlab.sweep import run_many
from tests.test_ray import configs, square
from pathlib import Path
run_many(square, configs(Path(sys.argv[3]), n={N}, sleep={SLEEP}), executor="ray",
         address=sys.argv[1], store=Store(sys.argv[2]), kind="sq")
"""


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_9_the_driver_then_resume(cluster: str, tmp_path: Path) -> None:
    """The driver attaches to the cluster by HOST:PORT; killed once runs are stored, the rerun
    (another Ray job) computes exactly the runs the store lacks."""
    log, db = tmp_path / "log", tmp_path / "runs.db"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, cluster, str(db), str(log)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 300  # left as soon as 2 runs are stored; slow when loaded
    while _count(db) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    driver.kill()  # SIGKILL: no cleanup of any kind
    out, err = driver.communicate()
    assert driver.returncode == -signal.SIGKILL, err.decode()[-2000:]
    with Store(db) as store:
        before = stored(store, "sq")
        assert 2 <= len(before) < N and all(s == "done" for s, _ in before.values())
        results = run_many(square, configs(log, n=N, sleep=SLEEP), executor="ray", store=store,
                           kind="sq")  # fmt: skip
        assert calls(log, _job()) == sorted(set(range(N)) - set(before))  # only the missing
        assert results == [{"x": x, "square": x * x} for x in range(N)]
        assert len(store.runs("sq")) == N
        assert {x: v for x, v in stored(store, "sq").items() if x in before} == before


# ---------------------------------------------------------------- workers that die, runs that fail
def test_a_killed_worker_is_retried_nothing_lost_or_duplicated(cluster: str, tmp_path: Path):
    log = tmp_path / "log"
    mark(log, ".crash", 2)
    with Store(tmp_path / "runs.db") as store:
        results = run_many(square, configs(log), executor="ray", store=store, kind="sq")
        assert log.with_suffix(".once").read_text() == "done"  # the worker did die mid-task
        assert results == [{"x": x, "square": x * x} for x in range(6)]
        assert calls(log) == list(range(6))  # run 2 logged once: by the retry
        runs = store.runs("sq")
        assert sorted(r.config["x"] for r in runs) == list(range(6))
        assert all(r.status == "done" for r in runs)


def test_failures_are_stored_and_the_sweep_goes_on(cluster: str, tmp_path: Path, monkeypatch):
    """Run 1 raises; run 4's worker dies on every attempt (no retries): both are stored as
    failed with their errors, the other four finish, and a rerun retries only those two."""
    log = tmp_path / "log"
    mark(log, ".fail", 1)
    mark(log, ".crash", 4)
    mark(log, ".once", "on")  # crash on every attempt
    monkeypatch.setenv("BPTTLAB_RAY_MAX_RETRIES", "0")
    with Store(tmp_path / "runs.db") as store:
        with pytest.raises(RunFailed, match=r"2 of 6 runs failed.*run 1: RuntimeError: run 1 fa"):
            run_many(square, configs(log), executor="ray", store=store, kind="sq")
        status = stored(store, "sq")
        assert status[1][0] == "failed" and "run 1 failed" in status[1][1]["error"]
        assert "Traceback" in status[1][1]["traceback"]
        assert status[4][0] == "failed" and "WorkerCrashedError" in status[4][1]["error"]
        assert all(status[x] == ("done", {"x": x, "square": x * x}) for x in (0, 2, 3, 5))
        for suffix in (".fail", ".crash", ".once"):
            mark(log, suffix, None)
        log.unlink()
        results = run_many(square, configs(log), executor="ray", store=store, kind="sq")
        assert calls(log) == [1, 4] and results[4] == {"x": 4, "square": 16}


def test_bad_addresses_fail_at_once_naming_them(monkeypatch) -> None:
    """Checked before Ray is asked (a dead address would hang it for minutes)."""
    from bpttlab._ray import connect

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    monkeypatch.setattr(ray, "init", lambda **kw: pytest.fail("ray.init was called"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ValueError, match=r"address='127.0.0.1:1' is not allowed: nothing answer"):
        connect("127.0.0.1:1")
    with pytest.raises(ValueError, match=r"address='nohost' is not allowed: give auto, HOST:PORT"):
        connect("nohost")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # Ray reads it for None and "auto"
    with pytest.raises(ValueError, match=r"nothing answers .*\(from \$RAY_ADDRESS\)"):
        connect("auto")


# ---------------------------------------------------------------- the CLI
CLIFF = ["cliff", "--archs", "rnn", "--lengths", "3", "--seeds", "2", "--steps", "5",
         "--hidden", "4", "--batch", "8"]  # fmt: skip


def test_cli_cliff_on_ray_prints_one_json_document(cluster, tmp_path, capsys) -> None:
    """In a fresh process attached by --address; equal to the local executor's output."""
    res = subprocess.run([sys.executable, "-m", "bpttlab", *CLIFF, "--db", str(tmp_path / "r.db"),
                          "--executor", "ray", "--address", cluster, "--json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)  # exactly one document: anything else on stdout fails here
    assert main([*CLIFF, "--db", str(tmp_path / "l.db"), "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert doc["rows"] == local["rows"] and len(doc["rows"]) == 1


def test_cli_without_ray_exits_2_with_the_install_line(tmp_path, capsys, monkeypatch) -> None:
    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    code = main([*CLIFF, "--db", str(tmp_path / "r.db"), "--executor", "ray"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.count("\n") == 1
    assert "--executor" in captured.err and "pip install 'bpttlab[ray]'" in captured.err
