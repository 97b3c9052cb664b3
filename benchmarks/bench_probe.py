"""Cost of a gradient profile against a plain forward + backward, on CPU.

For nn.RNN / nn.LSTM / nn.GRU (one layer, input size H, loss at the last step) at each
(T, B, H), in one run and interleaved: the plain fused forward + backward, ``gradient_profile``
with ``method="auto"`` and with each exact method (``fused``, not exact for GRU; ``unrolled``;
``replay``), and for the smaller sizes the slow unrolled loop with ``retain_grad()``
(bpttlab/testing/unrolled.py). Times are medians; ratios are to the plain run. The raw times go
to a JSON file beside the table (``--out``), so that a table can be re-rendered without
re-running.

    python benchmarks/bench_probe.py [--quick] [--repeats N] [--out benchmarks/probe_table.md]
"""

from __future__ import annotations

import os

# On a shared machine, OpenMP threads that spin at barriers stall whenever a core is taken by
# another process (oneDNN's LSTM went from 12 ms to 2.5 s per call); passive waiting avoids it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from bpttlab.probe import choose_method, gradient_profile  # noqa: E402
from bpttlab.testing.unrolled import unrolled_rnn  # noqa: E402

# (T, B, H): H up to 512, T up to 1000; B shrinks as H grows so that one cell stays minutes
SIZES = [
    (50, 256, 32),
    (200, 64, 128),
    (1000, 32, 64),
    (200, 32, 256),
    (200, 16, 512),
    (1000, 16, 256),
    (1000, 8, 512),
]
REF_UNTIL = 3  # the retain_grad() loop only for the first sizes (it is the slowest column)
MODULES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
METHODS = ("fused", "unrolled", "replay")


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


def _columns(arch: str, m: nn.RNNBase, x: Tensor, ref: bool) -> dict[str, Callable[[], object]]:
    fns: dict[str, Callable[[], object]] = {
        "plain": lambda: loss_fn(m(x)).backward(),
        "auto": lambda: gradient_profile(m, x, loss_fn),
    }
    for method in METHODS:
        if not (arch == "gru" and method == "fused"):  # GRU: no exact fused probe
            fns[method] = lambda method=method: gradient_profile(m, x, loss_fn, method=method)
    if ref:
        fns["ref"] = lambda: unrolled_rnn(m, x, loss_fn)
    return fns


def measure(sizes: list[tuple[int, int, int]], repeats: int, raw: Path | None) -> list[dict]:
    rows: list[dict[str, Any]] = []
    for i, (T, B, H) in enumerate(sizes):
        for arch, cls in MODULES.items():
            torch.manual_seed(0)
            m, x = cls(H, H), torch.randn(T, B, H)
            # fewer repeats where one call takes seconds: the spread is small there
            start = time.perf_counter()
            loss_fn(m(x)).backward()
            once = time.perf_counter() - start
            reps = repeats if once < 0.5 else max(3, repeats // 2) if once < 3 else 3
            ms = _median_ms(_columns(arch, m, x, i < REF_UNTIL), reps)
            rows.append({"arch": arch, "T": T, "B": B, "H": H, "repeats": reps, "ms": ms,
                         "auto": choose_method(m, x)})  # fmt: skip
            print(_row(rows[-1]), file=sys.stderr, flush=True)
            if raw is not None:
                raw.write_text(json.dumps({"env": environment(repeats), "rows": rows}, indent=1))
    return rows


def _row(r: dict[str, Any]) -> str:
    ms = r["ms"]
    p = ms["plain"]

    def ratio(k: str) -> str:
        return f"{ms[k] / p:.2f}x" if k in ms else "n/a"

    best = min((k for k in METHODS if k in ms), key=lambda k: ms[k])
    return (
        f"| {r['arch']} | {r['T']} | {r['B']} | {r['H']} | {p:.1f} | **{ratio('auto')}** | "
        f"{r['auto']} | {ratio('fused')} | {ratio('unrolled')} | {ratio('replay')} | {best} | "
        f"{ratio('ref') if 'ref' in ms else '—'} |"
    )


def environment(repeats: int) -> str:
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY')}, median of up to {repeats} interleaved runs"
    )


def table(rows: list[dict[str, Any]], env: str) -> str:
    head = [
        "| arch | T | B | H | plain fwd+bwd (ms) | auto / plain | auto's method | fused / plain "
        "| unrolled / plain | replay / plain | fastest | retain_grad loop / plain |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    return "\n".join(head + [_row(r) for r in rows]) + f"\n\n{env}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smallest size only, 2 repeats")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per column (default 7)")
    ap.add_argument("--out", type=Path, help="also write the table there, raw times to .json")
    ap.add_argument("--render", type=Path, help="only render the table from a raw .json file")
    args = ap.parse_args()
    if args.render:
        data = json.loads(args.render.read_text())
        print(table(data["rows"], data["env"]))
        return
    torch.set_num_threads(2)
    repeats = 2 if args.quick else args.repeats
    raw = args.out.with_suffix(".json") if args.out else None
    rows = measure(SIZES[:1] if args.quick else SIZES, repeats, raw)
    text = table(rows, environment(repeats))
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
