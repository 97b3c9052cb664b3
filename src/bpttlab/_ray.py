"""``run_many(executor="ray")``: one Ray task per run, results streamed back to the one writer.

``run_on_ray`` is what ``sweep.run_many`` calls for the runs the store does not hold yet:

- it connects (``connect``): ``address=None`` honours ``$RAY_ADDRESS`` as Ray does, else starts
  a private local instance with ``workers`` CPUs; ``"auto"`` attaches to the cluster running on
  this machine; ``"HOST:PORT"`` attaches to that cluster once its port answers (Ray itself
  retries a dead address for minutes). A Ray the caller already started (``ray.init``) is used
  as it is;
- it submits one task per run (``ray.remote``: ``task_cpus`` CPUs each, default 1, and
  ``max_retries`` retries of a task whose worker died, default 3), never more than
  ``IN_FLIGHT_PER_CPU`` times the cluster's CPUs at once, so the driver holds a bounded number
  of references however long the sweep;
- it takes results as they finish (``ray.wait``) and hands each to ``done`` in this process,
  which writes it to the store in one transaction, exactly as the local pool does.

In the task, torch runs on ``task_cpus`` threads (``train_run`` sets one thread itself, as the
local pool's workers do, so both executors give the same bits on the same machine), and
``sweep.call_run`` turns a run that raises into a "failed" ``RunOutput`` with its error and
traceback. A task whose worker died beyond its retries (``WorkerCrashedError``), whose node was
lost or which ran out of memory comes back as "failed" too: no run is lost, none stops the
sweep. Every output carries the worker machine's ``environment.fingerprint()`` as ``machine``, so
a store filled by a heterogeneous cluster records where each run was computed (the key keeps the
driver's fingerprint, so a rerun of the same command finds its runs).

Ctrl-C, or SIGTERM, in the driver cancels the tasks in flight (``ray.cancel(force=True)``),
keeps every finished run and raises ``KeyboardInterrupt``; ``run_many`` reports it as
``SweepInterrupted``. Ray prints the raylet's messages ("a worker died ...") to stdout; they
are sent to stderr instead, so ``--json`` output stays one document.

Every node of a cluster needs the same Python environment as the driver (bpttlab and torch
installed): tasks import ``fn`` by its module. Clusters with token authentication need Ray's
own ``RAY_AUTH_MODE=token`` and the token (``RAY_AUTH_TOKEN`` or ``~/.ray/auth_token``).

Environment: ``$BPTTLAB_RAY_TASK_CPUS`` and ``$BPTTLAB_RAY_MAX_RETRIES`` set the defaults of
``task_cpus`` and ``max_retries``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType
from typing import Any

import ray
import ray.exceptions

from bpttlab._util import ConfigError, check_float, check_int, now
from bpttlab.store import RunOutput
from bpttlab.sweep import call_run

__all__ = ["IN_FLIGHT_PER_CPU", "MAX_RETRIES", "connect", "run_on_ray"]

MAX_RETRIES = 3  # retries of a task whose worker process died (not of a run that raised)
IN_FLIGHT_PER_CPU = 2  # tasks submitted per cluster CPU: every CPU busy, the driver's memory flat
CONNECT_TIMEOUT_S = 5.0
ADDRESS_HELP = "give auto, HOST:PORT (e.g. 10.0.0.1:6379), or leave it unset for a local instance"

NO_CLUSTER = "start one with ray start --head, or leave the address unset for a local instance"
NO_ACCESS = "a cluster with token authentication also needs RAY_AUTH_MODE=token and its token"

Done = Callable[[int, str, Any], None]


# ---------------------------------------------------------------- connecting
def _target(address: str | None) -> tuple[str | None, str]:
    """The address Ray will use, as Ray reads it (``$RAY_ADDRESS`` overrides None and "auto"),
    and where it came from (for the error message)."""
    env = os.environ.get("RAY_ADDRESS") or None
    if env is not None and address in (None, "auto"):
        return env, " (from $RAY_ADDRESS)"
    return address, ""


def _check_reachable(address: str, origin: str) -> None:
    """Fail fast, naming ``address``, if nothing listens at HOST:PORT (``ray://`` allowed):
    Ray retries an address that does not answer for minutes before it gives up."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError("address", address, ADDRESS_HELP + origin)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        why = error.strerror or str(error) or type(error).__name__
        raise ConfigError("address", address, f"nothing answers at {hostport} ({why}){origin}; "
                          "start the cluster (ray start --head) or give another address"
                          ) from None  # fmt: skip


def _stdout_to_stderr() -> None:
    """Send what Ray prints for the driver (the raylet's "worker died" messages; worker output
    is not forwarded at all, ``log_to_driver=False``) to stderr, never to stdout."""
    from ray._private import worker as ray_worker

    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None or getattr(original, "_bpttlab", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr._bpttlab = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = to_stderr


def connect(address: str | None = None, workers: int | None = None) -> None:
    """Connect this process to Ray (once; a connected Ray is used as it is).

    Arguments:
        address: None (``$RAY_ADDRESS``, else a private local instance), "local", "auto" (the
            cluster started on this machine with ``ray start``) or "HOST:PORT".
        workers: CPUs of a private local instance (None: ``os.cpu_count()``).
    Raises:
        ConfigError: naming ``address`` when it is malformed, nothing answers there, or Ray
            cannot connect (no cluster for "auto", refused authentication).
    """
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        target, origin = _target(address)
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        sigterm = signal.getsignal(signal.SIGTERM)  # ray.init replaces it with sys.exit
        try:
            if target in (None, "local"):
                cpus = check_int("workers", workers or os.cpu_count() or 1)
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
            else:
                if target != "auto":
                    _check_reachable(target, origin)
                try:
                    ray.init(address=target, **quiet)
                except (ConnectionError, ray.exceptions.AuthenticationError) as error:
                    why = " ".join(str(error).split()).rstrip(".")
                    hint = NO_CLUSTER if target == "auto" else NO_ACCESS
                    raise ConfigError("address", target, f"Ray cannot connect ({why}){origin}; "
                                      f"{hint}") from None  # fmt: skip
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, sigterm)
    _stdout_to_stderr()


# ---------------------------------------------------------------- the task
def _task(fn: Callable[[Any], Any], config: Any, threads: int) -> tuple[str, RunOutput]:
    """One run in a Ray worker: (start time, output with the worker machine's fingerprint)."""
    import torch

    from bpttlab.environment import fingerprint

    torch.set_num_threads(threads)
    started, out = call_run(fn, config)
    out = out if isinstance(out, RunOutput) else RunOutput(out)
    return started, out if out.machine else replace(out, machine=fingerprint())


def _failed(error: BaseException) -> RunOutput:
    """A task Ray could not finish (its worker died beyond the retries, its node was lost, it
    ran out of memory) as a "failed" run, in ``call_run``'s form."""
    text = " ".join(str(error).split())
    head = text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"
    return RunOutput({"error": head, "traceback": str(error)}, status="failed")


def _setting(name: str, value: float | None, default: float, minimum: float) -> float:
    """``value``, else ``$BPTTLAB_RAY_<NAME>``, else ``default``; checked against ``minimum``."""
    if value is None:
        text = os.environ.get(f"BPTTLAB_RAY_{name.upper()}")
        try:
            value = default if text is None else float(text)
        except ValueError:
            raise ConfigError(name, text, f"$BPTTLAB_RAY_{name.upper()} must be a number") from None
    return check_float(name, value, low=minimum)


# ---------------------------------------------------------------- the driver
@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while the sweep runs, unless a handler is already set
    (the CLI's does the same and reports it)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _in_flight_limit(task_cpus: float) -> int:
    """``IN_FLIGHT_PER_CPU`` tasks per CPU the cluster has now (it may grow or shrink)."""
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    return max(1, int(IN_FLIGHT_PER_CPU * cpus / task_cpus))


def run_on_ray(
    fn: Callable[[Any], Any],
    configs: Sequence[Any],
    todo: Sequence[int],
    workers: int | None,
    address: str | None,
    done: Done,
    task_cpus: float | None = None,
    max_retries: int | None = None,
) -> None:
    """Run ``fn(configs[i])`` for every ``i`` in ``todo`` as Ray tasks; call ``done(i, started,
    output)`` here, in the driver, as each finishes (in the order they finish).

    Arguments:
        fn: module-level function, importable on every node.
        configs, todo: the configs, and the indices of those to run.
        workers: CPUs of a private local instance (see :func:`connect`).
        address: None, "local", "auto" or "HOST:PORT" (see :func:`connect`).
        done: called once per run, with a ``RunOutput`` of status "failed" for a run that
            raised or a task Ray could not finish.
        task_cpus: CPUs per task (Ray's ``num_cpus``; torch threads in the task); default
            ``$BPTTLAB_RAY_TASK_CPUS`` or 1.
        max_retries: retries of a task whose worker died; default ``$BPTTLAB_RAY_MAX_RETRIES``
            or ``MAX_RETRIES``.
    Raises:
        KeyboardInterrupt: on Ctrl-C or SIGTERM, after cancelling the tasks in flight.
        ConfigError: a bad address (``connect``), ``task_cpus`` or ``max_retries``.
    """
    cpus = _setting("task_cpus", task_cpus, 1.0, 0.01)
    retries = int(_setting("max_retries", max_retries, MAX_RETRIES, 0))
    if not todo:
        return  # nothing to compute: no cluster to start or reach
    connect(address, workers)
    remote = ray.remote(_task).options(num_cpus=cpus, max_retries=retries, name=fn.__name__)
    threads = max(1, int(cpus))
    queue = iter(todo)
    pending: dict[ray.ObjectRef, tuple[int, str]] = {}  # in flight: ref -> (index, submitted)
    with _sigterm_interrupts():
        try:
            while True:
                limit = _in_flight_limit(cpus)
                while len(pending) < limit and (i := next(queue, None)) is not None:
                    pending[remote.remote(fn, configs[i], threads)] = (i, now())
                if not pending:
                    return
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i, submitted = pending.pop(ref)
                try:
                    started, out = ray.get(ref)
                except ray.exceptions.RayError as error:  # not the run's own error: Ray's
                    started, out = submitted, _failed(error)
                done(i, started, out)
        except BaseException:  # Ctrl-C, SIGTERM, or the store failing: stop the tasks in flight
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 -- already finished or gone: nothing to stop
                    pass
            raise
