"""Faults: a sweep's parent killed outright or terminated, and stores that are read-only, locked
or not stores at all. Nothing is lost that had finished, no process outlives its parent, and
every failure is one line naming --db, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GRID = ["cliff", "--archs", "rnn", "--lengths", "5", "8", "--seeds", "5", "--steps", "100",
        "--hidden", "8", "--batch", "32", "--workers", "2"]  # fmt: skip


def bpttlab(*args: str, **kw) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bpttlab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpttlab", *args], capture_output=True,
                          text=True, timeout=300, **kw)  # fmt: skip


def stored_runs(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as raw:
            return raw.execute("SELECT count(*) FROM runs WHERE kind = 'run'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (state Z) has exited; its parent just has not reaped it
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def interrupted_then_resumed(tmp_path: Path, sig: int) -> tuple[subprocess.Popen[str], dict]:
    db = tmp_path / "runs.db"
    proc = bpttlab(*GRID, "--db", str(db), "--json")
    deadline = time.monotonic() + 120
    while stored_runs(db) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    workers = children_of(proc.pid)
    assert workers, "no pool workers"
    os.kill(proc.pid, sig)
    proc.out, proc.err = proc.communicate(timeout=30)  # type: ignore[attr-defined]
    time.sleep(1.0)  # "no process left after a second"
    assert [w for w in workers if alive(w)] == []
    kept = stored_runs(db)
    assert 2 <= kept < 10
    again = run(*GRID, "--db", str(db), "--json")
    assert again.returncode == 0, again.stderr
    return proc, json.loads(again.stdout)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    db = tmp_path_factory.mktemp("clean") / "runs.db"
    return json.loads(run(*GRID, "--db", str(db), "--json").stdout)


@pytest.mark.slow
def test_kill_9_of_the_parent_takes_its_workers_and_the_rerun_completes(tmp_path, uninterrupted):
    proc, table = interrupted_then_resumed(tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert table["rows"] == uninterrupted["rows"] and table["t50"] == uninterrupted["t50"]


@pytest.mark.slow
def test_sigterm_ends_the_sweep_in_one_line_saying_what_was_kept(tmp_path, uninterrupted):
    proc, table = interrupted_then_resumed(tmp_path, signal.SIGTERM)
    err = proc.err  # type: ignore[attr-defined]
    lines = err.strip().splitlines()
    assert proc.returncode == 143
    assert len(lines) == 1 and "interrupted: kept" in lines[0] and "of 10 runs" in lines[0], err
    assert proc.out == ""  # type: ignore[attr-defined]  # no half JSON document
    assert table["rows"] == uninterrupted["rows"]


def _error_line(args: list[str], **kw) -> str:
    proc = run(*args, **kw)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 2, (args, err)
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_store_that_is_not_a_store_or_a_folder_names_db(tmp_path):
    (tmp_path / "notes.db").write_bytes(b"\x00garbage, not SQLite\xff" * 100)
    line = _error_line(["profile", "--length", "3", "--db", str(tmp_path / "notes.db")])
    assert "'--db'" in line and "not a bpttlab store" in line
    line = _error_line(["profile", "--length", "3", "--db", str(tmp_path)])
    assert "'--db'" in line and "is a folder" in line


def test_a_locked_store_names_db(tmp_path):
    db = tmp_path / "runs.db"
    assert run("profile", "--length", "3", "--db", str(db)).returncode == 0
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        env = {**os.environ, "BPTTLAB_DB_TIMEOUT": "0.3"}
        line = _error_line(["profile", "--length", "4", "--db", str(db)], env=env)
        assert "'--db'" in line and "locked by another program" in line
    finally:
        locker.execute("ROLLBACK")
        locker.close()


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root writes read-only files; the library's "
    "read-only path is tested in tests/test_store.py",
)
def test_a_read_only_store_serves_what_it_has(tmp_path):
    db = tmp_path / "runs.db"
    args = ["profile", "--length", "5", "--hidden", "4", "--json"]
    first = run(*args, "--db", str(db))
    assert first.returncode == 0, first.stderr
    for p in (tmp_path, *tmp_path.iterdir()):
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        served = run(*args, "--db", str(db))
        assert served.returncode == 0, served.stderr
        stored = json.loads(first.stdout)["norms"]
        assert json.loads(served.stdout)["norms"] == stored  # read back, not recomputed
        line = _error_line(["profile", "--length", "6", "--hidden", "4", "--db", str(db)])
        assert "'--db'" in line and "read-only" in line
    finally:
        for p in (tmp_path, *tmp_path.iterdir()):
            p.chmod(0o755 if p.is_dir() else 0o644)
