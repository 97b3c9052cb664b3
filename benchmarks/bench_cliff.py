"""The default cliff grid through bpttlab against the lesson's own training loop, on CPU.

The grid is the lesson's exercise: rnn and lstm at T = 5, 20, 50, 500 Adam steps at lr 1e-2 on
one fixed copy-bit batch of 256, hidden 32, here over 3 seeds (18 runs). In one process run:

1. the lesson's loop (``testing.lesson_train``: nn.RNN/nn.LSTM + nn.Linear, Adam, no logging)
   run serially, with PyTorch's default intra-op threads, as a user would run it, and again
   on one thread (to show how much of the difference is the thread count alone);
2. ``experiments.cliff`` with ``workers=1``: bpttlab's training (gradient norms every step,
   held-out evaluation, the store) serially, each run single-threaded;
3. ``experiments.cliff`` as shipped: ``sweep.run_many`` with a process pool of ``--workers``
   (one thread each), results written by the parent into a fresh SQLite store.

Both sides draw the same weights and the same batch for a seed and apply the same updates, so
the accuracies on the training batch are compared run by run. Times are wall clock; on a shared
machine they move with the load, so the ratios inside one table are what to read.

    python benchmarks/bench_cliff.py [--quick] [--workers N] [--out benchmarks/cliff.md]
"""

from __future__ import annotations

import os

# On a shared machine, OpenMP threads that spin at barriers stall whenever a core is taken by
# another process; passive waiting avoids it (as in bench_probe.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from bpttlab.experiments import RUN_KIND, Budget, CliffConfig, cliff  # noqa: E402
from bpttlab.store import Store  # noqa: E402
from bpttlab.testing import lesson_train  # noqa: E402

Key = tuple[str, int, int]  # (arch, length, seed)


def lesson_grid(archs: list[str], lengths: list[int], seeds: list[int], steps: int) -> dict:
    """Every run of the lesson's loop, serially: {key: (accuracy, seconds)}."""
    out: dict[Key, tuple[float, float]] = {}
    for arch in archs:
        for length in lengths:
            for seed in seeds:
                t0 = time.perf_counter()
                accuracy = lesson_train(arch, length, seed, steps=steps)["accuracy"]
                out[arch, length, seed] = (accuracy, time.perf_counter() - t0)
    return out


def bpttlab_grid(args: dict[str, Any], workers: int) -> tuple[dict, float]:
    """``experiments.cliff`` into a fresh store: ({key: result}, wall seconds)."""
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "runs.db") as store:
        t0 = time.perf_counter()
        config = CliffConfig(
            archs=tuple(args["archs"]),
            lengths=tuple(args["lengths"]),
            seeds=tuple(args["seeds"]),
            budget=Budget(steps=args["steps"]),
        )
        cliff(config, store=store, workers=workers)
        wall = time.perf_counter() - t0
        runs = {
            (r.config["arch"], r.config["length"], r.seed): r.result for r in store.runs(RUN_KIND)
        }
    return runs, wall


def table(lesson: dict, ours: dict, walls: dict[str, Any], workers: int) -> str:
    """The markdown report: per cell, then the totals."""
    cells = sorted({(a, n) for a, n, _ in lesson}, key=lambda c: (c[0] != "rnn", c[1]))
    lines = [
        "| arch | T | lesson loop: accuracy per seed (training batch) | bpttlab: same | "
        "bpttlab: held-out | identical | lesson loop (s) | bpttlab run in worker (s) |",
        "|---|---:|---|---|---|---|---:|---:|",
    ]
    for arch, n in cells:
        keys = sorted(k for k in lesson if k[:2] == (arch, n))
        plain = [lesson[k][0] for k in keys]
        mine = [ours[k]["train_accuracy"] for k in keys]
        held = [ours[k]["accuracy"] for k in keys]
        same = sum(a == b for a, b in zip(plain, mine, strict=True))
        lines.append(
            f"| {arch} | {n} | {_accs(plain)} | {_accs(mine)} | {_accs(held)} | "
            f"{same}/{len(keys)} | {sum(lesson[k][1] for k in keys):.1f} | "
            f"{sum(ours[k]['wall_time_s'] for k in keys):.1f} |"
        )
    base = walls["lesson"]
    lines += [
        "",
        "| what | wall (s) | speed-up over the lesson's loop |",
        "|---|---:|---:|",
        f"| lesson loop, serial, {walls['threads']} torch threads (default) | {base:.1f} | 1.0x |",
        f"| lesson loop, serial, 1 torch thread | {walls['lesson_1']:.1f} | "
        f"{base / walls['lesson_1']:.2f}x |",
        f"| bpttlab cliff, workers=1 (serial, 1 thread) | {walls['serial']:.1f} | "
        f"{base / walls['serial']:.2f}x |",
        f"| bpttlab cliff, workers={workers} (process pool, 1 thread each) | {walls['pool']:.1f} | "
        f"**{base / walls['pool']:.2f}x** |",
    ]
    return "\n".join(lines)


def _accs(values: list[float]) -> str:
    return ", ".join(f"{v:.4f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: T = 5, 10; 2 seeds; 30 steps"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="pool size")
    parser.add_argument("--out", type=Path, help="also write the markdown table to this file")
    args = parser.parse_args()
    archs = ["rnn", "lstm"]
    lengths, seeds, steps = ([5, 10], [0, 1], 30) if args.quick else ([5, 20, 50], [0, 1, 2], 500)
    grid = {"archs": archs, "lengths": lengths, "seeds": seeds, "steps": steps}

    for arch in archs:  # warm-up: first calls pay for kernel and thread-pool setup
        lesson_train(arch, 5, steps=2, batch_size=8)
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    lesson = lesson_grid(archs, lengths, seeds, steps)
    walls = {"lesson": time.perf_counter() - t0}
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lesson_1 = lesson_grid(archs, lengths, seeds, steps)
    walls["lesson_1"] = time.perf_counter() - t0
    torch.set_num_threads(threads)
    walls["threads"] = threads
    same_bits = all(lesson[k][0] == lesson_1[k][0] for k in lesson)
    _, walls["serial"] = bpttlab_grid(grid, workers=1)
    ours, walls["pool"] = bpttlab_grid(grid, workers=args.workers)

    header = (
        f"{len(archs) * len(lengths) * len(seeds)} runs: {steps} Adam steps, batch 256, hidden 32, "
        f"copy-bit; {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )
    report = header + "\n\n" + table(lesson, ours, walls, args.workers)
    report += (
        f"\n\nThe lesson's loop on 1 thread gives the same accuracies as on {threads}: {same_bits}."
    )
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
