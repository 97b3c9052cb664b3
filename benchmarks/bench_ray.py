"""Ray against the local process pool: the cost per task, start-up apart, on the same runs.

``run_many(executor="ray")`` sends each run to a Ray task and writes its result in the driver,
as the local pool does with its processes. In one process run, on one machine:

1. Ray's start-up: ``ray.init`` of a private local instance with ``--workers`` CPUs, then the
   first task on each worker (a fresh worker imports torch and bpttlab; the pool's forked
   workers inherit them);
2. the cost per task: ``--tasks`` runs that do no training but return what a training run
   returns (a result and 5 per-step series of 500 floats), through ``run_many`` into a fresh
   store, local pool against Ray, interleaved, best of ``--repeat``; the difference per task
   is Ray's overhead;
3. a real grid: the lesson's cliff runs (rnn and lstm at T = 20 and 50, 500 Adam steps, batch
   256, hidden 32, copy-bit, 3 seeds: 12 runs) through both executors into fresh stores: the
   wall times, the mean time of one run, and whether both stored the same numbers.

The overhead as a share of a run: (2)'s difference per task over (3)'s mean run time. On a
shared machine the wall times of (3) move with the load by more than the overhead; (2) is the
measurement, (3) the context.

    python benchmarks/bench_ray.py [--quick] [--workers N] [--out benchmarks/ray.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_cliff.py: no spinning threads
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from bpttlab._ray import connect  # noqa: E402
from bpttlab.experiments import RUN_KIND, Budget, train_run  # noqa: E402
from bpttlab.store import RunOutput, Store  # noqa: E402
from bpttlab.sweep import run_many  # noqa: E402

SERIES = ("train_loss", "train_accuracy", "grad_h0", "grad_norm", "clipped_grad_norm")


def replay(config: dict[str, Any]) -> RunOutput:
    """No training, a training run's output: a result and 5 series of ``steps`` floats."""
    values = [1.0 / (1 + i) for i in range(config["steps"])]
    return RunOutput({"x": config["x"], "accuracy": 1.0}, {name: values for name in SERIES})


def timed(fn: Any, configs: list[Any], executor: str, workers: int, kind: str) -> float:
    """Wall seconds of ``run_many`` into a fresh store."""
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "runs.db") as store:
        t0 = time.perf_counter()
        run_many(fn, configs, executor=executor, workers=workers, store=store, kind=kind)
        return time.perf_counter() - t0


def grid(executor: str, configs: list[Any], workers: int) -> tuple[float, dict[str, Any]]:
    """The real runs: (wall seconds, {key: result less its wall time, plus the wall time})."""
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "runs.db") as store:
        t0 = time.perf_counter()
        run_many(train_run, configs, executor=executor, workers=workers, store=store,
                 kind=RUN_KIND)  # fmt: skip
        wall = time.perf_counter() - t0
        return wall, {r.key: r.result for r in store.runs(RUN_KIND)}


def _numbers(stored: dict[str, Any]) -> dict[str, Any]:
    """Every stored result less its wall time: what must be the same bits on both executors."""
    return {k: {f: v for f, v in r.items() if f != "wall_time_s"} for k, r in stored.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 tasks, 2 tiny runs")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="CPUs used")
    parser.add_argument("--tasks", type=int, default=400, help="tasks timed in (2)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many in (2)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args()
    w, n = args.workers, 60 if args.quick else args.tasks

    t0 = time.perf_counter()
    connect(None, w)
    start = time.perf_counter() - t0
    warm = timed(replay, [{"x": -1 - i, "steps": 500} for i in range(2 * w)], "ray", w, "warm")

    replays = [{"x": i, "steps": 500} for i in range(n)]
    best = {"local": float("inf"), "ray": float("inf")}
    for _ in range(1 if args.quick else args.repeat):
        for executor in best:
            best[executor] = min(best[executor], timed(replay, replays, executor, w, "replay"))
    per_task = {k: v / n * 1e3 for k, v in best.items()}  # ms
    overhead = per_task["ray"] - per_task["local"]

    budget = Budget(steps=20 if args.quick else 500)
    lengths, seeds = ([5], [0]) if args.quick else ([20, 50], [0, 1, 2])
    runs = [budget.run(a, t, s) for a in ("rnn", "lstm") for t in lengths for s in seeds]
    walls, stored = {}, {}
    for executor in ("local", "ray"):
        walls[executor], stored[executor] = grid(executor, runs, w)
    run_s = statistics.fmean(r["wall_time_s"] for r in stored["local"].values())
    same = _numbers(stored["ray"]) == _numbers(stored["local"])

    load = os.getloadavg()[0]
    report = "\n".join([
        f"{platform.machine()}, {os.cpu_count()} CPUs (load average {load:.1f} at the end), "
        f"Python {platform.python_version()}, torch {torch.__version__}; {w} workers / Ray CPUs",
        "",
        "| what | local pool | Ray | Ray - local |",
        "|---|---:|---:|---:|",
        f"| start-up: `ray.init` (private local instance) | — | {start:.2f} s | |",
        f"| start-up: first {2 * w} tasks (workers import torch, bpttlab) | — | {warm:.2f} s | |",
        f"| per task: {n} runs returning a run's output, into a store (best of "
        f"{1 if args.quick else args.repeat}) | {per_task['local']:.2f} ms | "
        f"{per_task['ray']:.2f} ms | **{overhead:+.2f} ms** |",
        f"| grid: {len(runs)} training runs ({budget.steps} Adam steps, batch "
        f"{budget.batch_size}, hidden {budget.hidden_size}, T = "
        f"{', '.join(map(str, lengths))}), wall | {walls['local']:.1f} s | {walls['ray']:.1f} s "
        f"| {walls['ray'] - walls['local']:+.1f} s |",
        f"| grid: mean time of one run (in its worker) | {run_s:.2f} s | | |",
        "",
        f"Ray's overhead per task: {overhead:.2f} ms = **{100 * overhead / 1e3 / run_s:.3f}%** "
        f"of a typical run ({run_s:.2f} s); goal under 5%. Start-up, once per process: "
        f"{start + warm:.1f} s. Both executors stored the same numbers for every run: {same}.",
    ])  # fmt: skip
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
