"""Run one function over many configs: a process pool or Ray, one writer into the store, resumable.

``run_many(fn, configs, store=store, kind="run")`` returns ``[fn(c) for c in configs]``, but

- skips every config whose run the store already holds (``kind`` + config + this machine's
  fingerprint -> key, ``store.py``), so an interrupted sweep resumes where it stopped and a
  finished one costs nothing;
- runs the rest in a ``concurrent.futures.ProcessPoolExecutor`` of ``workers`` processes, each
  with ``torch.set_num_threads(1)`` (at the sizes this lab trains, one thread per run and one run
  per core beats several threads per run), or as Ray tasks (``executor="ray"``);
- writes each finished run from this process, in one transaction (``Store.put``), so SQLite
  never sees two writers and a kill at any point loses only the runs in flight;
- records a run that raises as "failed" with its error and goes on; after the sweep it raises
  ``RunFailed`` naming them (the rerun retries only those);
- on Ctrl-C or SIGTERM stops the workers at once, keeps every finished run and raises
  ``SweepInterrupted`` (a KeyboardInterrupt) saying how many were kept. Workers die with this
  process even when it is killed outright (Linux: ``PR_SET_PDEATHSIG``).

``fn`` must be picklable (a module-level function) and return JSON data or a ``RunOutput``.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bpttlab._util import ConfigError, check_choice, check_int, now
from bpttlab._util import progress as progress_bar
from bpttlab.store import RunOutput, Store

__all__ = ["EXECUTORS", "RunFailed", "SweepInterrupted", "call_run", "run_many"]

EXECUTORS = ("local", "ray")
RAY_MISSING = "--executor ray needs the ray extra: pip install 'bpttlab[ray]'"


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a sweep; ``str()`` says what was kept."""


class RunFailed(RuntimeError):
    """Some runs raised; they are stored as "failed" with their errors and rerun next time."""


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            return
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


def _init_worker() -> None:
    """Pool initializer: one intra-op thread, dies with the parent, leaves Ctrl-C to it."""
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the sweep
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: terminate() kills
    _die_with_parent()


def call_run(fn: Callable[[Any], Any], config: Any) -> tuple[str, Any]:
    """Run ``fn(config)``; return (start time, output) or (start time, ``RunOutput`` of status
    "failed" carrying the error). Executed in the worker (a pool process or a Ray task)."""
    started = now()
    try:
        return started, fn(config)
    except Exception as error:  # a bad run must not stop the sweep: it is recorded instead
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        detail = {"error": text, "traceback": traceback.format_exc(limit=20)}
        return started, RunOutput(detail, status="failed")


def _check(executor: str, workers: int | None) -> None:
    check_choice("executor", executor, EXECUTORS)
    if workers is not None:
        check_int("workers", workers, 1, 1024)
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("executor", executor, RAY_MISSING) from None


def run_many(
    fn: Callable[[Any], Any],
    configs: Sequence[Any],
    executor: str = "local",
    workers: int | None = None,
    store: Store | None = None,
    kind: str | None = None,
    force: bool = False,
    progress: bool = False,
    address: str | None = None,
    env: Mapping[str, Any] | None = None,
) -> list[Any]:
    """``fn(config)`` for every config, in the order of ``configs``.

    Arguments:
        fn: module-level function ``config -> result`` (JSON data) or ``-> RunOutput``.
        configs: JSON-able configs (dicts or dataclasses with ``to_dict``); they are the keys.
        executor: "local" (process pool on this machine) or "ray" (``address``: "auto",
            "HOST:PORT", or None for ``$RAY_ADDRESS`` or a local instance).
        workers: processes (local), or the CPUs of the local Ray instance it starts (a running
            cluster brings its own); None: ``os.cpu_count()``. With one worker, or one run to
            do, runs happen in this process (local).
        store: where results are looked up and written; None keeps nothing.
        kind: the store's run kind; default ``fn.__name__``.
        force: recompute and replace runs the store already has.
        progress: a rich progress bar on stderr (when stderr is a terminal); it counts
            finished runs, cached ones included.
        env: the machine's fingerprint in every key; default ``environment.fingerprint()``
            when there is a store.

    Returns:
        One result per config. With a store, each is the result as stored (decoded JSON),
        whether computed now or before; without one, ``fn``'s result (``RunOutput.result``).
    Raises:
        RunFailed: after the sweep, if any run raised (each is stored as "failed").
        SweepInterrupted: on Ctrl-C or SIGTERM, after storing every finished run.
    """
    _check(executor, workers)
    kind = kind or fn.__name__
    if store is not None and env is None:
        from bpttlab.environment import fingerprint

        env = fingerprint()
    results: list[Any] = [None] * len(configs)
    todo: list[int] = []
    for i, config in enumerate(configs):
        found = None if store is None or force else store.finished(kind, config, env)
        if found is not None:
            results[i] = found.result
        else:
            todo.append(i)
    failed: list[tuple[int, str]] = []
    stored = [0]

    def finish(i: int, started: str, out: Any) -> None:
        if isinstance(out, RunOutput) and out.status == "failed":
            failed.append((i, out.result["error"]))
        if store is not None and not store.read_only:
            # one transaction: the run is stored whole or not at all
            results[i] = store.put_output(kind, configs[i], out, started, env).result
            stored[0] += 1
        else:
            results[i] = _json_result(out)

    workers = workers or os.cpu_count() or 1
    with progress_bar("runs", progress) as bar:
        task = bar.add_task("runs", total=len(configs), completed=len(configs) - len(todo))

        def done(i: int, started: str, out: Any) -> None:
            finish(i, started, out)
            bar.advance(task)

        try:
            if executor == "ray":
                from bpttlab._ray import run_on_ray

                run_on_ray(fn, configs, todo, workers, address, done)
            elif workers == 1 or len(todo) <= 1:
                for i in todo:
                    done(i, *call_run(fn, configs[i]))
            else:
                _pool(fn, configs, todo, min(workers, len(todo)), done)
        except KeyboardInterrupt:
            where = f" in {store.path}" if store is not None else ""
            kept = f"kept {len(configs) - len(todo) + stored[0]} of {len(configs)} runs{where}"
            raise SweepInterrupted(f"interrupted: {kept}; the same command resumes") from None
    if failed:
        i, error = failed[0]
        raise RunFailed(f"{len(failed)} of {len(configs)} runs failed (stored as failed; a rerun "
                        f"retries them); the first, run {i}: {error}")  # fmt: skip
    return results


def _json_result(out: Any) -> Any:
    """What a store would give back for ``out``, without a store."""
    return out.result if isinstance(out, RunOutput) else out


def _pool(
    fn: Callable[[Any], Any],
    configs: Sequence[Any],
    todo: list[int],
    workers: int,
    done: Callable[[int, str, Any], None],
) -> None:
    """Run ``todo`` in a process pool; ``done`` each result in this (the writer) process."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pool = cf.ProcessPoolExecutor(workers, mp.get_context(method), initializer=_init_worker)
    futures = {pool.submit(call_run, fn, configs[i]): i for i in todo}
    try:
        for future in cf.as_completed(futures):
            done(futures[future], *future.result())
    except BaseException:  # Ctrl-C, SIGTERM or a dead worker: stop now, keep what finished
        pool.shutdown(wait=False, cancel_futures=True)
        for child in mp.active_children():
            child.terminate()
        raise
    pool.shutdown()
