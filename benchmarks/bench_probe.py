"""Cost of a gradient profile against a plain forward + backward, on CPU.

For nn.RNN / nn.LSTM / nn.GRU (one layer, input size H, loss at the last step) at each
(T, B, H), in one run and interleaved: the plain fused forward + backward, ``gradient_profile``
with its automatic method (the other method in the next column), and the slow unrolled loop with
``retain_grad()`` (bpttlab/testing/unrolled.py). Times are medians; ratios are to the plain run.

    python benchmarks/bench_probe.py [--quick] [--repeats N] [--out benchmarks/probe_table.md]
"""

from __future__ import annotations

import os

# On a shared machine, OpenMP threads that spin at barriers stall whenever a core is taken by
# another process (oneDNN's LSTM went from 12 ms to 2.5 s per call); passive waiting avoids it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from bpttlab.probe import gradient_profile  # noqa: E402
from bpttlab.testing.unrolled import unrolled_rnn  # noqa: E402

SIZES = [(50, 256, 32), (200, 64, 128), (1000, 32, 64)]
MODULES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def loss_fn(out: Any) -> Tensor:
    return out[0][-1].pow(2).sum()  # readout at the last step; x is (T, B, H)


def _median_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for fn in fns.values():  # warm-up (oneDNN primitives, allocator)
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):  # interleaved, so that load changes hit every column alike
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def _columns(m: nn.RNNBase, x: Tensor, other: str | None) -> dict[str, Callable[[], object]]:
    fns: dict[str, Callable[[], object]] = {
        "plain": lambda: loss_fn(m(x)).backward(),
        "auto": lambda: gradient_profile(m, x, loss_fn),
        "ref": lambda: unrolled_rnn(m, x, loss_fn),
    }
    if other is not None:
        fns["other"] = lambda: gradient_profile(m, x, loss_fn, method=other)
    return fns


def run(sizes: list[tuple[int, int, int]], repeats: int) -> str:
    rows = [
        "| arch | T | B | H | plain fwd+bwd (ms) | profile (ms) | profile / plain | method "
        "| other method / plain | unrolled retain_grad / plain |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for T, B, H in sizes:
        for arch, cls in MODULES.items():
            torch.manual_seed(0)
            m, x = cls(H, H), torch.randn(T, B, H)
            auto = "unrolled" if arch == "gru" else "fused"
            other = "fused" if auto == "unrolled" else "unrolled"
            fns = _columns(m, x, None if arch == "gru" else other)  # GRU: no exact fused probe
            ms = _median_ms(fns, repeats)
            p = ms["plain"]
            o = f"{ms['other'] / p:.2f}x ({other})" if "other" in ms else "n/a"
            rows.append(
                f"| {arch} | {T} | {B} | {H} | {p:.1f} | {ms['auto']:.1f} | "
                f"**{ms['auto'] / p:.2f}x** | {auto} | {o} | {ms['ref'] / p:.1f}x |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    env = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY')}, median of {repeats} interleaved runs"
    )
    return "\n".join(rows) + f"\n\n{env}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smallest size only, 2 repeats")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per column (default 7)")
    ap.add_argument("--out", type=Path, help="also write the markdown table to this file")
    args = ap.parse_args()
    torch.set_num_threads(2)
    table = run(SIZES[:1] if args.quick else SIZES, 2 if args.quick else args.repeats)
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
