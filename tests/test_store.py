"""Store: round trips, stable keys, one transaction per run, kills and concurrent readers."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest

import bpttlab.store as store_module
from bpttlab.store import RunOutput, Store, cached, canonical_json, run_key

STORE_PY = Path(store_module.__file__)
# Loads store.py by path, so helper processes neither import torch nor the package __init__.
PRELUDE = f"""
import importlib.util, math, os, sys, time
spec = importlib.util.spec_from_file_location("bpttlab_store", {str(STORE_PY)!r})
store = importlib.util.module_from_spec(spec)
sys.modules["bpttlab_store"] = store
spec.loader.exec_module(store)
"""
EXACT = [0.0, 1e-300, 5e-324, 1 / 3, -2.5, 1.7976931348623157e308, math.inf, -math.inf, math.nan]


def same_float(a: float, b: float) -> bool:
    """Bitwise equality (NaN equals NaN, -0.0 differs from 0.0)."""
    return struct.pack("<d", a) == struct.pack("<d", b)


def run_python(code: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "sub" / "runs.db") as store:
        yield store


def test_round_trip_of_a_whole_run(db: Store) -> None:
    config = {"task": {"name": "copy-bit", "length": 20}, "lr": 0.01, "seed": 3}
    result = {"accuracy": 0.75, "losses": [0.7, 0.5], "diverged": False, "final": math.nan}
    record = db.put("train", config, result, metrics={"loss": [0.7, 0.5]}, profiles={0: [1, 2]})
    got = db.run("train", config)
    assert got == dataclasses.replace(record, result=got.result)
    assert got.config == config and got.seed == 3 and got.status == "done"
    assert got.result["losses"] == [0.7, 0.5] and math.isnan(got.result["final"])
    assert set(got.machine) == {"python", "torch", "numpy", "bpttlab"}  # no env: versions
    assert got.machine["bpttlab"] is not None and got.machine["python"].count(".") == 2
    assert datetime.fromisoformat(got.started) <= datetime.fromisoformat(got.finished)
    assert db.get("train", {**config, "lr": 0.02}) is None
    assert db.get("train", config)["accuracy"] == 0.75
    assert db.metrics(got) == {"loss": [(0, 0.7), (1, 0.5)]}
    assert db.profiles(got.id) == {0: [1.0, 2.0]}
    assert db._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_key_ignores_dict_order_but_not_kind_values_or_types() -> None:
    a = {"lr": 0.1, "model": {"name": "rnn", "hidden": 64}, "seed": 0}
    b = {"seed": 0, "model": {"hidden": 64, "name": "rnn"}, "lr": 0.1}
    assert run_key("train", a) == run_key("train", b)
    assert canonical_json(a) == '{"lr":0.1,"model":{"hidden":64,"name":"rnn"},"seed":0}'
    # Pinned: a change here orphans every stored run, so it must be deliberate.
    assert (
        run_key("train", a)
        == _expected_key(a)
        == ("c184489f7ae1fbd2d48bf3765ae86fa3e1b9b60f80586782f29183e4d3d2ec2e")
    )
    assert run_key("sweep", a) != run_key("train", a)
    assert run_key("train", {**a, "lr": 0.2}) != run_key("train", a)
    assert run_key("train", {"x": 1}) != run_key("train", {"x": 1.0})


def _expected_key(config: dict) -> str:
    """The documented recipe, written out independently."""
    import hashlib

    text = json.dumps({"config": config, "kind": "train"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_dataclass_configs_and_results_are_stored_as_their_dicts(db: Store) -> None:
    from bpttlab.tasks import get_task

    task_config = get_task("latch", 10, n_classes=3).config
    assert run_key("k", task_config) == run_key("k", task_config.to_dict())

    @dataclasses.dataclass
    class Result:
        accuracy: float
        steps: tuple[int, ...]

    db.put("k", {"task": task_config}, Result(0.5, (1, 2)))
    assert db.get("k", {"task": task_config.to_dict()}) == {"accuracy": 0.5, "steps": [1, 2]}


def test_put_replaces_the_run_with_the_same_key(db: Store) -> None:
    config = {"seed": 1}
    first = db.put("k", config, {"v": 1}, metrics={"loss": [1.0, 2.0, 3.0]}, profiles={0: [1.0]})
    db.put("k", {"seed": 2}, {"v": 9})
    second = db.put("k", config, {"v": 2}, metrics={"loss": [5.0]})
    assert second.id != first.id and db.get("k", config) == {"v": 2}
    assert [r.result["v"] for r in db.runs()] == [9, 2]
    assert db.metrics(second) == {"loss": [(0, 5.0)]}
    orphans = db._db.execute(
        "SELECT (SELECT count(*) FROM metrics WHERE run_id = ?)"
        " + (SELECT count(*) FROM profiles WHERE run_id = ?)",
        (first.id, first.id),
    ).fetchone()[0]
    assert orphans == 0


def test_metrics_and_profiles_read_back_bit_for_bit(db: Store) -> None:
    metrics = {"loss": EXACT, "grad_norm": [(0, 1e-300), (10, 0.0), (20, math.nan)]}
    profiles = {0: EXACT + [-0.0], 500: [1e-310] * 1001}
    record = db.put("k", {}, {}, metrics=metrics, profiles=profiles)
    got = db.metrics(record)
    assert [s for s, _ in got["loss"]] == list(range(len(EXACT)))
    assert all(same_float(v, w) for (_, v), w in zip(got["loss"], EXACT, strict=True))
    assert [s for s, _ in got["grad_norm"]] == [0, 10, 20]
    assert got["grad_norm"][0][1] == 1e-300 and math.isnan(got["grad_norm"][2][1])
    read = db.profiles(record)
    assert list(read) == [0, 500] and len(read[500]) == 1001
    assert all(same_float(v, w) for v, w in zip(read[0], profiles[0], strict=True))


def test_a_failed_put_changes_nothing(db: Store) -> None:
    db.put("k", {"a": 1}, {"v": 1}, metrics={"loss": [1.0]})
    with pytest.raises(ValueError, match="repeat"):
        db.put("k", {"a": 1}, {"v": 2}, metrics={"loss": [(0, 1.0), (0, 2.0)]})
    with pytest.raises(ValueError, match="could not convert"):
        db.put("k", {"a": 1}, {"v": 3}, metrics={"loss": [1.0, "x"]})
    assert db.get("k", {"a": 1}) == {"v": 1} and len(db.runs()) == 1
    assert db.metrics(db.runs()[0]) == {"loss": [(0, 1.0)]}


def test_bad_configs_raise(db: Store) -> None:
    with pytest.raises(ValueError, match="config=.*finite JSON"):
        db.put("k", {"lr": math.nan}, {})
    with pytest.raises(ValueError, match="config=.*object is not JSON"):
        run_key("k", {"f": object()})


def test_runs_filters_by_kind_in_insertion_order(db: Store) -> None:
    for i in range(3):
        db.put("a" if i != 1 else "b", {"i": i}, {"i": i})
    assert [r.config["i"] for r in db.runs()] == [0, 1, 2]
    assert [r.config["i"] for r in db.runs("a")] == [0, 2] and db.runs("c") == []


def test_default_path_is_runs_bpttlab_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Store() as store:
        store.put("k", {}, {"ok": True})
    assert (tmp_path / "runs" / "bpttlab.db").is_file()
    with Store(tmp_path / "runs" / "bpttlab.db") as store:
        assert store.get("k", {}) == {"ok": True}


def test_cached_computes_once_then_reads(db: Store) -> None:
    calls: list[int] = []

    def fn() -> RunOutput:
        calls.append(1)
        return RunOutput({"n": len(calls)}, metrics={"loss": [0.5]}, profiles={3: [2.0]}, seed=7)

    assert cached(db, "k", {"x": 1}, fn) == {"n": 1}
    assert cached(db, "k", {"x": 1}, fn) == {"n": 1} and len(calls) == 1
    assert cached(db, "k", {"x": 1}, fn, force=True) == {"n": 2} and len(calls) == 2
    run = db.run("k", {"x": 1})
    assert run.seed == 7 and db.profiles(run) == {3: [2.0]}
    assert cached(db, "k", {"x": 2}, lambda: (1, 2)) == [1, 2]  # as stored: JSON lists
    db.put("k", {"x": 3}, {"error": "boom"}, status="failed")
    assert cached(db, "k", {"x": 3}, lambda: {"ok": 1}) == {"ok": 1}  # failures are retried


def test_store_module_never_imports_torch() -> None:
    proc = run_python("assert 'torch' not in sys.modules, 'store imported torch'\n")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


KILLED_MID_PUT = """
path, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = store.Store(path)

def losses(i):
    for step in range(50):
        if i == k and step == 25:
            os._exit(3)  # dies inside the transaction of run k, half its metrics written
        yield float(step)

for i in range(n):
    db.put("sweep", {"i": i}, {"i": i, "n": 50}, metrics={"loss": losses(i)}, profiles={0: [i]})
"""


def _assert_complete(store: Store, record: store_module.RunRecord) -> None:
    assert len(store.metrics(record)["loss"]) == record.result["n"]
    assert store.profiles(record) == {0: [float(record.result["i"])]}


def test_killed_mid_put_leaves_exactly_the_finished_runs_and_resumes(tmp_path: Path) -> None:
    path, n, k = tmp_path / "runs.db", 8, 5
    proc = run_python(KILLED_MID_PUT, str(path), str(n), str(k))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    with Store(path) as db:
        runs = db.runs()
        assert [r.config["i"] for r in runs] == list(range(k))
        for record in runs:
            _assert_complete(db, record)
        computed: list[int] = []

        def compute(i: int) -> RunOutput:
            computed.append(i)
            return RunOutput({"i": i, "n": 50}, {"loss": [0.0] * 50}, {0: [float(i)]})

        for i in range(n):  # the sweep starts again: only the missing runs are computed
            cached(db, "sweep", {"i": i}, lambda i=i: compute(i))
        assert computed == list(range(k, n))
        assert [r.config["i"] for r in db.runs()] == list(range(n))


ENDLESS_WRITER = """
db = store.Store(sys.argv[1])
i = 0
while True:
    n = 200 + i % 7
    db.put("sweep", {"i": i}, {"i": i, "n": n}, metrics={"loss": [1.0] * n}, profiles={0: [i]})
    i += 1
"""


def test_concurrent_reader_sees_only_complete_runs_and_sigkill_loses_none(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    Store(path).close()  # schema in place before the writer starts
    writer = run_python(ENDLESS_WRITER, str(path))
    seen: set[int] = set()
    try:
        with Store(path) as reader:
            deadline = time.monotonic() + 20
            while len(seen) < 20 and time.monotonic() < deadline:
                for record in reader.runs("sweep"):
                    _assert_complete(reader, record)
                    seen.add(record.id)
            assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate(timeout=30)
    assert len(seen) >= 20
    with Store(path) as db:  # after a SIGKILL at an arbitrary point: all complete, still writable
        runs = db.runs()
        assert len(runs) >= len(seen)
        assert [r.config["i"] for r in runs] == list(range(len(runs)))
        for record in runs:
            _assert_complete(db, record)
        db.put("sweep", {"i": -1}, {"i": -1, "n": 1}, metrics={"loss": [0.0]}, profiles={0: [-1]})
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_env_is_part_of_the_key_and_recorded_as_the_machine(db: Store) -> None:
    here, there = {"cpu_capability": "AVX512"}, {"cpu_capability": "DEFAULT"}
    db.put("run", {"x": 1}, {"acc": 1.0}, env=here)
    assert db.finished("run", {"x": 1}, here).machine == here
    assert db.finished("run", {"x": 1}, there) is None  # another machine's numbers: not mixed
    assert db.finished("run", {"x": 1}) is None
    assert (
        run_key("run", {"x": 1}, here) != run_key("run", {"x": 1}) == run_key("run", {"x": 1}, {})
    )


def test_a_folder_a_foreign_file_and_a_newer_schema_are_refused_naming_db(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="db=.* is not allowed: is a folder"):
        Store(tmp_path)
    (tmp_path / "notes.txt").write_text("not a database, just text " * 100)
    with pytest.raises(ValueError, match="db=.*notes.txt.* is not a bpttlab store"):
        Store(tmp_path / "notes.txt")
    with closing(sqlite3.connect(tmp_path / "new.db")) as raw:
        raw.execute("PRAGMA user_version=99")
    with pytest.raises(ValueError, match="db=.*schema version 99.*upgrade bpttlab"):
        Store(tmp_path / "new.db")


def test_a_read_only_store_serves_its_runs_and_refuses_to_write(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as db:
        db.put("k", {"x": 1}, {"y": 2}, metrics={"loss": [1.0]})
    with Store(tmp_path / "runs.db", read_only=True) as ro:
        assert ro.read_only and ro.get("k", {"x": 1}) == {"y": 2}
        assert ro.metrics(ro.runs()[0]) == {"loss": [(0, 1.0)]}
        assert cached(ro, "k", {"x": 1}, lambda: 1 / 0) == {"y": 2}  # served, never computed
        assert cached(ro, "k", {"x": 2}, lambda: {"y": 3}) == {"y": 3}  # computed, not stored
        with pytest.raises(ValueError, match="db=.*is read-only"):
            ro.put("k", {"x": 3}, {"y": 4})
    assert Store(tmp_path / "runs.db").get("k", {"x": 2}) is None


def test_an_unwritable_file_opens_read_only(tmp_path: Path, monkeypatch) -> None:
    with Store(tmp_path / "runs.db") as db:
        db.put("k", {"x": 1}, {"y": 2})
    # a read-only file (or file system) as os.access reports it; root ignores chmod itself
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK)
    with Store(tmp_path / "runs.db") as ro:
        assert ro.read_only and ro.get("k", {"x": 1}) == {"y": 2}
    with pytest.raises(ValueError, match="db=.*does not exist and cannot be created"):
        Store(tmp_path / "absent.db")


def test_a_store_locked_by_another_program_is_named_not_a_traceback(tmp_path: Path) -> None:
    Store(tmp_path / "runs.db").close()
    locker = sqlite3.connect(tmp_path / "runs.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:  # opening it (or, if it opened first, storing into it) names --db
        with pytest.raises(ValueError, match="db=.*is locked by another program"):
            with Store(tmp_path / "runs.db", timeout=0.2) as db:
                db.put("k", {"x": 1}, {"y": 2})
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def test_a_version_1_store_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as raw:
        raw.executescript(store_module._SCHEMA.replace("machine TEXT", "versions TEXT"))
        raw.execute("INSERT INTO runs (key, kind, config, versions, seed, status, started, "
                    "finished, result) VALUES (?, 'k', '{}', '{\"torch\": \"2\"}', NULL, 'done', "
                    "'t', 't', '{\"y\": 1}')", (run_key("k", {}),))  # fmt: skip
        raw.execute("PRAGMA user_version=1")
        raw.commit()
    with Store(path) as db:
        assert db.get("k", {}) == {"y": 1} and db.runs()[0].machine == {"torch": "2"}
