"""Run one function over many configs: a local process pool, one writer into the store, resumable.

``run_many(fn, configs, store=store, kind="train")`` returns ``[fn(c) for c in configs]``, but

- skips every config whose run the store already holds (``kind`` + config -> key, ``store.py``),
  so a sweep that was interrupted resumes where it stopped, and a finished one costs nothing;
- runs the rest in a ``concurrent.futures.ProcessPoolExecutor`` of ``workers`` processes, each
  with ``torch.set_num_threads(1)`` (at the sizes this lab trains, one thread per run and one run
  per core beats several threads per run: no barrier spinning, no oversubscription);
- writes each finished run from the parent, in one transaction (``Store.put``), so SQLite
  never sees two writers and a kill at any point loses only the runs still in flight;
- on KeyboardInterrupt (or a run that raises) cancels what has not started, lets the runs in
  flight end, stores every run that finished, and re-raises.

``fn`` must be picklable (a module-level function) and return JSON data or a ``RunOutput``
(result plus per-step metrics and profiles). Workers are forked on Linux (spawned elsewhere).

``executor="ray"`` is reserved for a Ray cluster (DESIGN.md, "Scale"); it is not implemented
yet and says so, after telling a user without Ray how to install it.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bpttlab.store import RunOutput, Store

__all__ = ["EXECUTORS", "run_many"]

EXECUTORS = ("local", "ray")
_RAY_MISSING = "executor='ray' needs the ray extra: pip install 'bpttlab[ray]'"


def _init_worker() -> None:
    """Pool initializer: one intra-op thread per worker process."""
    import torch

    torch.set_num_threads(1)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _call(fn: Callable[[Any], Any], config: Any) -> tuple[str, Any]:
    """Run ``fn(config)`` and return (start time, output); executed in the worker."""
    started = _now()
    return started, fn(config)


def _check(executor: str, workers: int | None) -> None:
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is not allowed: choose one of local, ray")
    is_count = isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1
    if workers is not None and not is_count:
        raise ValueError(f"workers={workers!r} is not allowed: must be an int >= 1 or None")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError(_RAY_MISSING) from None
        raise NotImplementedError("executor='ray' is not implemented yet; use executor='local'")


def _progress(enabled: bool) -> Progress:
    console = Console(stderr=True)  # stdout stays clean for --json
    return Progress(
        TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=not enabled or not console.is_terminal, transient=True,
    )  # fmt: skip


def run_many(
    fn: Callable[[Any], Any],
    configs: Sequence[Any],
    executor: str = "local",
    workers: int | None = None,
    store: Store | None = None,
    kind: str | None = None,
    force: bool = False,
    progress: bool = False,
) -> list[Any]:
    """``fn(config)`` for every config, in the order of ``configs``.

    Arguments:
        fn: module-level function ``config -> result`` (JSON data) or ``-> RunOutput``.
        configs: JSON-able configs (dicts or dataclasses with ``to_dict``); they are the keys.
        executor: "local" (process pool on this machine) or "ray" (not implemented yet).
        workers: processes; None means ``os.cpu_count()``. With 1 worker, or one run left to do,
            runs happen in this process (no pool).
        store: where results are looked up and written; None keeps nothing.
        kind: the store's run kind; default ``fn.__name__``.
        force: recompute and replace runs the store already has.
        progress: a rich progress bar on stderr (only when stderr is a terminal).

    Returns:
        One result per config. With a store, each is the result as stored (decoded JSON),
        whether computed now or before; without one, ``fn``'s result (``RunOutput.result``).
    Raises:
        KeyboardInterrupt, or the first exception of a run, after storing every finished run.
    """
    _check(executor, workers)
    kind = kind or fn.__name__
    results: list[Any] = [None] * len(configs)
    todo: list[int] = []
    for i, config in enumerate(configs):
        found = None if store is None or force else store.finished(kind, config)
        if found is not None:
            results[i] = found.result
        else:
            todo.append(i)

    def finish(i: int, started: str, out: Any) -> None:
        if store is None:
            results[i] = out.result if isinstance(out, RunOutput) else out
            return
        # one transaction: the run is stored whole or not at all
        results[i] = store.put_output(kind, configs[i], out, started).result

    workers = workers or os.cpu_count() or 1
    with _progress(progress) as bar:
        bar_task = bar.add_task("runs", total=len(configs), completed=len(configs) - len(todo))
        if workers == 1 or len(todo) <= 1:
            for i in todo:
                finish(i, *_call(fn, configs[i]))
                bar.advance(bar_task)
        else:
            _pool(fn, configs, todo, min(workers, len(todo)), finish, lambda: bar.advance(bar_task))
    return results


def _pool(
    fn: Callable[[Any], Any],
    configs: Sequence[Any],
    todo: list[int],
    workers: int,
    finish: Callable[[int, str, Any], None],
    advance: Callable[[], None],
) -> None:
    """Run ``todo`` in a process pool; ``finish`` each result in this (the writer) process."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    pool = cf.ProcessPoolExecutor(workers, mp.get_context(method), initializer=_init_worker)
    futures = {pool.submit(_call, fn, configs[i]): i for i in todo}
    stored: set[cf.Future] = set()
    try:
        for future in cf.as_completed(futures):
            finish(futures[future], *future.result())
            stored.add(future)
            advance()
    except BaseException:  # Ctrl-C or a failed run: cancel what has not started, keep the rest
        for future in futures:
            future.cancel()
        # Runs already handed to a worker finish first (on Ctrl-C the workers got SIGINT too and
        # stop at once; a second Ctrl-C abandons the wait) and are kept if they succeeded.
        pool.shutdown(wait=True)
        for future, i in futures.items():
            done = future.done() and not future.cancelled() and future not in stored
            if done and future.exception() is None:
                finish(i, *future.result())
        raise
    pool.shutdown()
