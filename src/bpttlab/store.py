"""SQLite run store: finished runs, their per-step metrics and gradient profiles, keyed by config.

A run is identified by ``run_key(kind, config, env)``: the SHA-256 of the canonical JSON (sorted
keys, no spaces) of ``{"kind": kind, "config": config}`` plus ``"env": env`` when given, so dict
order never matters but types do (``1`` and ``1.0`` are different configs: normalise floats in
the config dataclass). ``env`` is what else changes the numbers (``environment.fingerprint()``:
library versions, CPU, vector code): a store shared between machines keeps their runs apart.

``put`` writes a whole run (row, metrics, profiles) in one transaction: a process killed at any
point leaves every earlier run complete and no trace of the run in flight, so a sweep resumes by
skipping the keys it finds (``cached``). The database runs in WAL mode: one writer at a time,
readers never blocked. Nothing here imports torch (versions come from package metadata).

A store that cannot be written (a read-only file or file system) still serves the runs it has;
a path that is a folder, a file that is not a bpttlab store, or a store locked by another
program raises ``ConfigError`` naming ``db``, never a traceback from sqlite3.

Tables:
    runs(id, key UNIQUE, kind, config JSON, machine JSON, seed, status, started, finished,
         result JSON)                         -- machine: where the run was computed
    metrics(run_id, step, name, value REAL)   -- exact doubles; NaN is stored as NULL and read
                                              -- back as NaN; -0.0 reads back as 0.0
    profiles(run_id, step, norms BLOB)        -- little-endian float64: exact, NaN and -0.0 kept
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import sqlite3
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from bpttlab._util import ConfigError, now

__all__ = ["DEFAULT_DB", "RunOutput", "RunRecord", "Store", "cached", "canonical_json", "run_key"]

DEFAULT_DB = Path("runs") / "bpttlab.db"
_SCHEMA_VERSION = 2  # 2: runs.versions became runs.machine, and keys may carry an env
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    machine TEXT NOT NULL,
    seed INTEGER,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_kind ON runs (kind);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS profiles (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    norms BLOB NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
"""

Metrics = Mapping[str, Iterable[float] | Iterable[tuple[int, float]]]
Profiles = Mapping[int, Sequence[float]]


def _plain(obj: Any) -> Any:
    """A config or result object as JSON data: ``to_dict()`` if it has one, dataclass fields,
    a mapping's items; used as ``json.dumps(default=...)`` so nested objects convert too."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON data")


def _dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_plain, **kw)


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, NaN refused: one text per config."""
    try:
        return _dumps(obj, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"config={obj!r} is not allowed: must be finite JSON data ({error})"
        ) from None


def run_key(kind: str, config: Any, env: Mapping[str, Any] | None = None) -> str:
    """SHA-256 hex digest of the canonical JSON of kind and config (and env, when given)."""
    keyed = {"kind": kind, "config": config, **({"env": dict(env)} if env else {})}
    return hashlib.sha256(canonical_json(keyed).encode()).hexdigest()


@lru_cache(maxsize=1)
def _versions() -> dict[str, str | None]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    found = {name: version(name) for name in ("torch", "numpy", "bpttlab")}
    return {"python": platform.python_version(), **found}


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One stored run; config, machine and result are the decoded JSON."""

    id: int
    key: str
    kind: str
    config: dict[str, Any]
    machine: dict[str, Any]
    seed: int | None
    status: str
    started: str
    finished: str
    result: Any


@dataclasses.dataclass(frozen=True)
class RunOutput:
    """What a ``cached`` function may return when it has more than a result to store.

    ``machine``: where it was computed, when that is not where it is stored (a Ray worker).
    """

    result: Any
    metrics: Metrics | None = None
    profiles: Profiles | None = None
    seed: int | None = None
    status: str = "done"
    machine: Mapping[str, Any] | None = None


def _db_error(path: Path, error: sqlite3.Error) -> ConfigError:
    """A sqlite3 error as a ConfigError naming ``db`` and what to do."""
    text = str(error)
    if "locked" in text or "busy" in text:
        why = "is locked by another program; wait for it or use another --db"
    elif "not a database" in text or "malformed" in text or "file is encrypted" in text:
        why = f"is not a bpttlab store (SQLite says: {text}); give another --db"
    elif "readonly" in text or "read-only" in text:
        why = "cannot be written (read-only); give a writable --db to store new runs"
    elif "unable to open" in text:
        why = "cannot be opened (check the folder exists and is writable)"
    else:
        why = f"cannot be used: {text}"
    return ConfigError("db", str(path), why)


class Store:
    """The run database at ``path`` (default ``runs/bpttlab.db``; parent folders are created).

    One connection per Store; use one Store per thread or process. Several processes may read
    while one writes; concurrent writers queue on SQLite's lock (up to ``timeout`` seconds;
    default ``$BPTTLAB_DB_TIMEOUT`` or 30). A store that cannot be written, or is opened with
    ``read_only=True``, is read-only (``.read_only``): it serves its runs, and storing one raises
    ConfigError.
    """

    def __init__(
        self, path: str | Path = DEFAULT_DB, timeout: float | None = None, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        self.read_only = False
        if timeout is None:
            timeout = float(os.environ.get("BPTTLAB_DB_TIMEOUT", "30"))
        memory = str(path) == ":memory:"
        if not memory:
            if self.path.is_dir():
                raise ConfigError("db", str(path), "is a folder: give a file path, e.g. "
                                  f"{self.path / 'bpttlab.db'}")  # fmt: skip
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                why = f"its folder cannot be made: {error.strerror}"
                raise ConfigError("db", str(path), why) from None
        writable = memory or (
            not read_only
            and os.access(self.path.parent, os.W_OK)
            and (not self.path.exists() or os.access(self.path, os.W_OK))
        )
        try:
            if writable:
                self._db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
            else:
                self._open_read_only(timeout)
            self._prepare()
        except sqlite3.OperationalError as error:
            if not writable or "readonly" not in str(error):
                raise _db_error(self.path, error) from None
            self._db.close()  # a read-only file system: read what is there
            self._open_read_only(timeout)
            self._prepare()
        except sqlite3.Error as error:
            raise _db_error(self.path, error) from None

    def _open_read_only(self, timeout: float) -> None:
        if not self.path.exists():
            raise ConfigError("db", str(self.path), "does not exist and cannot be created here")
        self.read_only = True
        uri = self.path.resolve().as_uri()
        try:  # WAL needs its -shm file; immutable=1 reads a store that nothing writes
            self._db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout,
                                       isolation_level=None)  # fmt: skip
            self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            self._db = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)

    def _prepare(self) -> None:
        """Check the schema version; create (or migrate) the tables when writable."""
        found = self._db.execute("PRAGMA user_version").fetchone()[0]
        if found > _SCHEMA_VERSION:
            raise ConfigError("db", str(self.path), f"has schema version {found}, newer than "
                              f"this bpttlab's {_SCHEMA_VERSION}: upgrade bpttlab")  # fmt: skip
        if self.read_only:
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
            if found < _SCHEMA_VERSION or "runs" not in tables:
                raise ConfigError("db", str(self.path), "is read-only and holds no bpttlab "
                                  "store of this version")  # fmt: skip
            return
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: commits survive a crash
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._transaction():
            if found == 1:  # version 1 named the machine column "versions"
                self._db.execute("ALTER TABLE runs RENAME COLUMN versions TO machine")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; any exception (or exit) rolls everything back."""
        if self.read_only:
            raise ConfigError("db", str(self.path), "is read-only: it serves stored runs but "
                              "cannot store new ones; give a writable --db")  # fmt: skip
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise _db_error(self.path, error) from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            raise _db_error(self.path, error) from None

    def finished(
        self, kind: str, config: Any, env: Mapping[str, Any] | None = None
    ) -> RunRecord | None:
        """The stored run for (kind, config, env) if it finished ("done"), else None."""
        found = self.run(kind, config, env)
        return found if found is not None and found.status == "done" else None

    def put_output(
        self, kind: str, config: Any, out: Any, started: str | None = None,
        env: Mapping[str, Any] | None = None,
    ) -> RunRecord:  # fmt: skip
        """:meth:`put` for what a run function returned: a ``RunOutput`` or a bare result."""
        out = out if isinstance(out, RunOutput) else RunOutput(out)
        return self.put(kind, config, out.result, metrics=out.metrics, profiles=out.profiles,
                        seed=out.seed, status=out.status, started=started, env=env,
                        machine=out.machine)  # fmt: skip

    def put(
        self,
        kind: str,
        config: Any,
        result: Any,
        *,
        metrics: Metrics | None = None,
        profiles: Profiles | None = None,
        seed: int | None = None,
        status: str = "done",
        started: str | None = None,
        env: Mapping[str, Any] | None = None,
        machine: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Store one run, replacing any run with the same key, in a single transaction.

        Args:
            metrics: name -> values per step, either floats (step = position) or (step, value).
            profiles: step -> norms, e.g. ||dL/dh_t|| for t = 0..T (T + 1 floats).
            seed: defaults to ``config["seed"]`` when the config has an int seed.
            env: part of the key (see ``run_key``); recorded as the machine unless ``machine``.
            machine: where the run was computed; default ``env``, else the library versions.
        """
        plain = json.loads(canonical_json(config))
        if seed is None and isinstance(plain, Mapping) and isinstance(plain.get("seed"), int):
            seed = plain["seed"]
        finished = now()
        where = dict(machine or env or _versions())
        row = (
            *(run_key(kind, plain, env), kind, canonical_json(plain), json.dumps(where), seed),
            *(status, started or finished, finished, _dumps(result)),  # NaN allowed in results
        )
        with self._transaction() as db:
            db.execute("DELETE FROM runs WHERE key = ?", (row[0],))
            run_id = db.execute(f"INSERT INTO runs ({_COLUMNS}) VALUES ({_SLOTS})", row).lastrowid
            assert run_id is not None
            try:  # the rows are generated here, inside the transaction
                db.executemany(
                    "INSERT INTO metrics VALUES (?, ?, ?, ?)", _metric_rows(run_id, metrics)
                )
                db.executemany(
                    "INSERT INTO profiles VALUES (?, ?, ?)", _profile_rows(run_id, profiles)
                )
            except sqlite3.IntegrityError as error:
                raise ValueError(
                    f"metrics/profiles repeat a (name, step) or a step: {error}"
                ) from None
        return _record((run_id, *row))

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as error:
            raise _db_error(self.path, error) from None

    def run(self, kind: str, config: Any, env: Mapping[str, Any] | None = None) -> RunRecord | None:
        """The stored run for (kind, config, env), or None."""
        rows = self._query(f"{_SELECT} WHERE key = ?", (run_key(kind, config, env),))
        return _record(rows[0]) if rows else None

    def get(self, kind: str, config: Any, env: Mapping[str, Any] | None = None) -> Any | None:
        """The stored result for (kind, config, env), or None."""
        record = self.run(kind, config, env)
        return None if record is None else record.result

    def runs(self, kind: str | None = None) -> list[RunRecord]:
        """Every stored run (of ``kind``, if given), oldest first."""
        if kind is None:
            rows = self._query(f"{_SELECT} ORDER BY id")
        else:
            rows = self._query(f"{_SELECT} WHERE kind = ? ORDER BY id", (kind,))
        return [_record(row) for row in rows]

    def metrics(self, run: RunRecord | int) -> dict[str, list[tuple[int, float]]]:
        """name -> [(step, value), ...] in step order; NaN comes back as NaN."""
        run_id = run.id if isinstance(run, RunRecord) else run
        out: dict[str, list[tuple[int, float]]] = {}
        rows = self._query("SELECT name, step, value FROM metrics WHERE run_id = ? "
                           "ORDER BY name, step", (run_id,))  # fmt: skip
        for name, step, value in rows:
            out.setdefault(name, []).append((step, math.nan if value is None else value))
        return out

    def profiles(self, run: RunRecord | int) -> dict[int, list[float]]:
        """step -> norms, exactly as stored."""
        run_id = run.id if isinstance(run, RunRecord) else run
        rows = self._query("SELECT step, norms FROM profiles WHERE run_id = ? ORDER BY step",
                           (run_id,))  # fmt: skip
        return {step: list(struct.unpack(f"<{len(blob) // 8}d", blob)) for step, blob in rows}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_COLUMNS = "key, kind, config, machine, seed, status, started, finished, result"
_SLOTS = ", ".join("?" * 9)
_SELECT = f"SELECT id, {_COLUMNS} FROM runs"


def _record(row: tuple[Any, ...]) -> RunRecord:
    id_, key, kind, config, machine, seed, status, started, finished, result = row
    config, machine, result = json.loads(config), json.loads(machine), json.loads(result)
    return RunRecord(id_, key, kind, config, machine, seed, status, started, finished, result)


def _metric_rows(
    run_id: int, metrics: Metrics | None
) -> Iterator[tuple[int, int, str, float | None]]:
    """Lazily, so rows are produced inside the transaction that writes them."""
    for name, values in (metrics or {}).items():
        for position, item in enumerate(values):
            step, value = item if isinstance(item, tuple | list) else (position, item)
            value = float(value)
            yield run_id, int(step), str(name), None if math.isnan(value) else value


def _profile_rows(run_id: int, profiles: Profiles | None) -> Iterator[tuple[int, int, bytes]]:
    for step, norms in (profiles or {}).items():
        values = [float(v) for v in norms]
        yield run_id, int(step), struct.pack(f"<{len(values)}d", *values)


def cached(
    store: Store,
    kind: str,
    config: Any,
    fn: Callable[[], Any],
    force: bool = False,
    env: Mapping[str, Any] | None = None,
) -> Any:
    """The stored result for (kind, config, env); else run ``fn()``, store it and return it.

    ``fn`` returns a result, or a ``RunOutput`` carrying metrics and profiles too. The value
    returned is the result as stored (decoded JSON) whether it was computed now or earlier.
    ``force=True`` recomputes and replaces; so does a stored run whose status is not "done".
    A read-only store returns ``fn()``'s result without storing it.
    """
    if not force:
        found = store.finished(kind, config, env)
        if found is not None:
            return found.result
    started = now()
    out = fn()
    if store.read_only:
        result = out.result if isinstance(out, RunOutput) else out
        return json.loads(_dumps(result))
    return store.put_output(kind, config, out, started, env).result
