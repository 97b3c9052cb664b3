"""Jacobian walks: the lesson's loop vs bpttlab's full-matrix and vector-Jacobian walks.

All three run in this one process on the same trajectory. The lesson's loop builds ``np.diag(d)``
and forms ``D @ W`` every step (two O(H^3) products); the full walk scales columns and does one
O(H^3) product; the VJP walk is O(H^2) per step. Target: VJP >= 50x faster than the lesson's loop
at H=512, T=500.

    python benchmarks/bench_walk.py [--quick] [--out benchmarks/walk.md]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from bpttlab import dynamics, theory
from bpttlab.testing import lesson_loop


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (CI smoke run)")
    ap.add_argument("--out", help="also write the markdown table to this file")
    args = ap.parse_args()
    sizes = [(64, 50), (128, 200)] if args.quick else [(64, 50), (256, 500), (512, 500)]
    repeats = 1 if args.quick else 3
    lines = [
        f"numpy {np.__version__}, {platform.processor() or platform.machine()}, best of {repeats}",
        "",
        "| H | T | lesson loop (s) | full walk (s) | VJP walk (s) | full speed-up | VJP speed-up "
        "| rho(W) once (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for H, T in sizes:
        W = theory.make_matrix("gaussian", H, 0.9, seed=0)
        traj = dynamics.simulate(W, T, "tanh", "noise", 1.0, h0="random", seed=0)
        # rho(W) for the rho^t column is one eigendecomposition per W, cached on the trajectory:
        # timed here on its own, then excluded from the per-walk times.
        t0 = time.perf_counter()
        _ = traj.spectral_radius
        t_eig = time.perf_counter() - t0
        t_lesson = best_of(lambda: lesson_loop(W, traj.d), repeats)  # noqa: B023
        t_full = best_of(
            lambda: dynamics.jacobian_walk(traj, mode="full", spectral=False),  # noqa: B023
            repeats,
        )
        t_vjp = best_of(lambda: dynamics.jacobian_walk(traj, mode="vjp"), repeats)  # noqa: B023
        lines.append(
            f"| {H} | {T} | {t_lesson:.3f} | {t_full:.3f} | {t_vjp:.4f} | "
            f"{t_lesson / t_full:.1f}x | {t_lesson / t_vjp:.0f}x | {t_eig:.3f} |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
