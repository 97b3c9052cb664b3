"""The long-budget campaign: adding (modern variant, MSE) and copy-memory at long lengths.

Seven architectures (rnn, irnn, orthogonal-rnn, lstm with forget bias 1, gru, lru,
attention-rnn), hidden 100, 3,000 Adam steps at lr 1e-3 on fresh batches of 32, gradients
clipped to norm 1, over 5 seeds, at adding T = 100, 200, 400 (Le, Jaitly & Hinton 2015) and
copy-memory L = 100, 200 (Arjovsky, Shah & Bengio 2016). Results are placed beside the
published figures of ../shared/REFERENCES.md by :func:`tables`.

    python docs/results/campaign.py --executor ray --address auto   # all of it, on a cluster
    python docs/results/campaign.py --cells adding:100 copy-memory:100 --workers 2   # some cells
    python docs/results/campaign.py --estimate      # time a few steps per cell: the cost here
    python docs/results/campaign.py --smoke         # 2 seeds, 50 steps, one cell (a check)
    python docs/results/campaign.py --tables        # only print the tables from campaign.json
    python docs/results/campaign.py --update --db runs/campaign.db   # rewrite the JSON, no runs

Every run is stored as it finishes (``--db``, default runs/bpttlab.db), so an interrupted or
partial campaign carries on where it stopped (Ctrl-C stops it with every finished run kept);
each call rewrites docs/results/campaign.json from every campaign run the store holds
(computed now or before), with the driver's machine, the machines the runs were computed on,
the wall time of the call and the summed run time. Cells
not computed yet are marked as such, and a T50 is fitted over the lengths whose seeds are all in.

Cost on the development machine (``--estimate``: CPU time, one core per run; Xeon, torch 2.13
CPU), in core-hours per cell of 7 archs x 5 seeds: adding T = 100: 0.5, 200: 1.6, 400: 4.0;
copy-memory L = 100: 0.6, 200: 1.2; 7.9 in all (about 4 h on 2 free cores). rnn and gru cost
the most at long T: their vanishing gradients pass through subnormal floats, which the CPU
computes slowly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "campaign.json"

ARCHS = ("rnn", "irnn", "orthogonal-rnn", "lstm:forget_bias=one", "gru", "lru", "attention-rnn")
TASKS = {"adding": "adding:variant=modern", "copy-memory": "copy-memory"}
LENGTHS = {"adding": (100, 200, 400), "copy-memory": (100, 200)}
CELLS = tuple(f"{task}:{n}" for task, lengths in LENGTHS.items() for n in lengths)
SEEDS = tuple(range(5))
STEPS = 3000
BUDGET = {"batch_size": 32, "hidden_size": 100, "optimizer": "adam", "lr": 1e-3,
          "fixed_batch": False}  # fmt: skip
CLIP = {"clip": "norm", "clip_threshold": 1.0}  # Le et al. 2015 clip too; the same for every arch
MARGIN = 0.5  # learned: accuracy >= chance + MARGIN (1 - chance), as in the cliff experiment
SMOKE = {"cells": ("adding:100",), "seeds": (0, 1), "steps": 50}


def _cell(cell: str) -> tuple[str, int]:
    task, _, n = cell.rpartition(":")
    if task not in TASKS or not n.isdigit() or int(n) not in LENGTHS[task]:
        raise SystemExit(f"campaign.py: unknown cell {cell!r}; choose from {', '.join(CELLS)}")
    return task, int(n)


def run_config(task: str, length: int, arch: str, seed: int, steps: int = STEPS) -> Any:
    """One run of the campaign (``bpttlab.experiments.RunConfig``)."""
    from bpttlab.experiments import Budget

    budget = Budget(task=TASKS[task], steps=steps, **BUDGET)
    return budget.run(arch, length, seed, **CLIP)


def configs(cells: tuple[str, ...], seeds: tuple[int, ...], steps: int) -> list[Any]:
    """Every run of ``cells``, the longest first (the pool's tail stays short)."""
    pairs = sorted((_cell(c) for c in cells), key=lambda p: -p[1])
    return [run_config(t, n, a, s, steps) for t, n in pairs for a in ARCHS for s in seeds]


# ---------------------------------------------------------------- computing
def compute(cells: tuple[str, ...], seeds: tuple[int, ...], steps: int, db: str,
            out: Path, **run: Any) -> dict[str, Any]:  # fmt: skip
    """Run ``cells`` (``run``: executor, address, workers), then summarise the store."""
    from bpttlab.environment import fingerprint
    from bpttlab.experiments import Runner
    from bpttlab.store import Store
    from bpttlab.sweep import RunFailed, SweepInterrupted

    start, interrupted = time.perf_counter(), False
    with Store(db) as store:
        try:
            Runner(store=store, progress=True, **run)(configs(cells, seeds, steps))
        except RunFailed as failed:  # stored as failed; the rest is summarised, a rerun retries
            print(f"campaign.py: {failed}", file=sys.stderr)
        except (SweepInterrupted, KeyboardInterrupt) as stop:  # finished runs are kept: the
            print(f"campaign.py: {stop or 'interrupted'}", file=sys.stderr)  # JSON says so too
            interrupted = True
        doc = summarize(store, fingerprint(), seeds, steps)
    doc["interrupted"] = interrupted
    doc["wall_seconds"] = round(time.perf_counter() - start, 1)
    doc["computed_now"] = list(cells)
    doc["command"] = " ".join(["python docs/results/campaign.py", *sys.argv[1:]])
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def summarize(store: Any, env: dict[str, Any], seeds: tuple[int, ...], steps: int) -> dict:
    """Every cell of the campaign from the store: per (task, arch, length) the seeds that learn
    it with their Wilson interval, accuracy and held-out loss; per (task, arch) the T50 over the
    complete lengths; the machines the runs were computed on."""
    from bpttlab.experiments import EVAL_BATCHES, RUN_KIND, Budget, success_threshold
    from bpttlab.experiments.cliff import cell_stats
    from bpttlab.stats import fit_t50

    rows, t50, machines, seconds = [], {}, Counter(), 0.0
    for task, lengths in LENGTHS.items():
        t50[task] = {}
        for arch in ARCHS:
            complete: dict[int, list[bool]] = {}
            for n in lengths:
                found = [store.finished(RUN_KIND, run_config(task, n, arch, s, steps), env)
                         for s in seeds]  # fmt: skip
                done = [r for r in found if r is not None]
                machines.update(json.dumps(r.machine, sort_keys=True) for r in done)
                seconds += sum(r.result["wall_time_s"] for r in done)
                row: dict[str, Any] = {"task": task, "arch": arch, "length": n,
                                       "done": len(done), "seeds": len(seeds)}  # fmt: skip
                if len(done) == len(seeds):
                    results = [r.result for r in done]
                    probe = run_config(task, n, arch, 0, steps).make_task()
                    threshold = success_threshold(probe.chance, MARGIN)
                    stats = cell_stats(results, threshold)
                    losses = [r["loss"] for r in results if r["loss"] is not None]
                    row.update(stats, chance=probe.chance, baseline_loss=probe.baseline_loss,
                               loss_median=statistics.median(losses) if losses else None,
                               loss_min=min(losses, default=None),
                               loss_max=max(losses, default=None),
                               diverged=sum(bool(r["diverged"]) for r in results))  # fmt: skip
                    complete[n] = [a >= threshold for a in stats["accuracies"]]
                rows.append(row)
            if complete:
                fit = fit_t50(list(complete), list(complete.values())).to_dict()
                t50[task][arch] = {**fit, "lengths": sorted(complete)}
    budget = {**Budget(steps=steps, **BUDGET).to_dict(), **CLIP, "seeds": list(seeds),
              "eval_sequences": EVAL_BATCHES * BUDGET["batch_size"],
              "margin": MARGIN, "archs": list(ARCHS), "tasks": TASKS,
              "lengths": {k: list(v) for k, v in LENGTHS.items()}}  # fmt: skip
    del budget["task"], budget["task_options"]
    return {"budget": budget, "rows": rows, "t50": t50, "machine": env,
            "run_machines": [{"runs": k, **json.loads(m)} for m, k in machines.items()],
            "runs": sum(r["done"] for r in rows), "train_seconds": round(seconds, 1)}  # fmt: skip


def estimate(steps: int, workers: int) -> str:
    """The cost of each cell here, as a markdown table: one run per (cell, arch) trained for 5
    and for ``5 + steps`` steps, single-threaded in this process, after a warm-up run; the
    difference is the time per step (set-up and the final evaluation cancel), scaled to the
    budget. Times
    are this thread's CPU time, which other programs' load inflates far less than wall time;
    a run on a free core takes about as long."""
    import os

    from bpttlab.experiments import train_run

    def seconds(task: str, n: int, arch: str, k: int) -> float:
        t0 = time.thread_time()  # train_run runs on this thread (torch: 1 thread)
        train_run(run_config(task, n, arch, 0, k))
        return time.thread_time() - t0

    lines = ["| cell | " + " | ".join(f"`{a}`" for a in ARCHS) + " | cell: core-hours | "
             f"cell: hours on {workers} cores |",
             "|---|" + "---:|" * (len(ARCHS) + 2)]  # fmt: skip
    total = 0.0
    for cell in CELLS:
        task, n = _cell(cell)
        per_run = []
        for arch in ARCHS:
            seconds(task, n, arch, 2)  # warm-up: imports, kernels set up per shape
            fixed = seconds(task, n, arch, 5)
            per_step = (seconds(task, n, arch, 5 + steps) - fixed) / steps
            per_run.append(max(0.0, fixed - 5 * per_step) + per_step * STEPS)
        core_h = sum(per_run) * len(SEEDS) / 3600
        total += core_h
        cells = " | ".join(f"{s / 60:.1f} min" for s in per_run)
        lines.append(f"| {cell} | {cells} | {core_h:.2f} | {core_h / workers:.2f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", f"CPU minutes per run (one seed), from 5 and {5 + steps} steps scaled to "
              f"{STEPS}; {len(SEEDS)} seeds per cell. The whole campaign: {total:.1f} core-hours "
              f"({total / workers:.1f} h on {workers} cores). Load average at the end: "
              f"{os.getloadavg()[0]:.1f}."]  # fmt: skip
    return "\n".join(lines)


# ---------------------------------------------------------------- the tables
PUBLISHED = {
    ("adding", "irnn"): "solved at T = 100, 200, 400 (MSE 1e-5, 4e-5, 1e-4), never at 700 or "
    "1000 in 60k iterations (Keller et al. 2024, Table 1)",
    ("adding", "lstm:forget_bias=one"): "T = 100 after 74,000 training sequences (Hochreiter & "
    "Schmidhuber 1997, original variant)",
    ("copy-memory", "orthogonal-rnn"): "expRNN solves the copy task at L = 1000 "
    "(Lezcano-Casado & Martinez-Rubio 2019)",
}


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.3g}"


def _t50(t: dict[str, Any] | None, lengths: tuple[int, ...]) -> str:
    if t is None:
        return "not run yet"
    if t["status"] == "found":
        text = f"{_num(t['estimate'])} ({_num(t['low'])}-{_num(t['high'])})"
    elif t["status"] == "beyond grid":
        text = f"> {_num(t['low'])}"
    elif t["status"] == "below grid":
        text = f"< {_num(t['high'])}"
    else:
        text = "inconclusive"
    partial = tuple(t["lengths"]) != lengths
    return text + (f" (from {', '.join(map(str, t['lengths']))} only)" if partial else "")


def _entry(row: dict[str, Any], loss: str) -> str:
    if row["done"] < row["seeds"]:
        return f"not run yet ({row['done']}/{row['seeds']} seeds)" if row["done"] else "not run yet"
    ci = f"[{row['success_low']:.2f}, {row['success_high']:.2f}]"
    return f"{row['successes']}/{row['seeds']} {ci}; {loss} {_num(row['loss_median'])}"


def tables(doc: dict[str, Any] | None = None) -> str:
    """The campaign's markdown tables (from docs/results/campaign.json unless ``doc``)."""
    from bpttlab.tasks import get_task

    doc = doc if doc is not None else json.loads(OUT.read_text())
    b = doc["budget"]
    rows = {(r["task"], r["arch"], r["length"]): r for r in doc["rows"]}
    adding = get_task("adding", 100, variant="modern")
    add_threshold = adding.chance + b["margin"] * (1 - adding.chance)
    copy = get_task("copy-memory", 100)
    copy_threshold = copy.chance + b["margin"] * (1 - copy.chance)
    captions = {
        "adding": (
            "**adding, modern variant** (Le et al. 2015: T steps, values U[0, 1], one marker in "
            "each half, target their sum; MSE loss). Each cell: the seeds that learn it, with "
            "the 95% Wilson interval, and the median held-out MSE (predicting the mean scores "
            "1/6 = 0.167). *Learned* uses the accuracy criterion of `tasks.py`: at least "
            f"{add_threshold:.3f} of the held-out sequences answered within |error| < 0.04 "
            f"(chance {adding.chance:.3f}: the best constant; halfway from chance to perfect). "
            "For roughly Gaussian errors that is an MSE below about 3e-3, 2% of the constant's; "
            "the published IRNN figures are MSEs."
        ),
        "copy-memory": (
            "**copy-memory** (Arjovsky et al. 2016: 10 symbols from 8, L blanks, a marker, "
            "recall the 10 symbols; T = L + 20 steps; cross-entropy over all steps). Each cell: "
            "the seeds that learn it, with the 95% Wilson interval, and the median held-out "
            "cross-entropy (the memoryless baseline 10 log 8 / (L + 20) is "
            f"{get_task('copy-memory', 100).baseline_loss:.3f} at L = 100, "
            f"{get_task('copy-memory', 200).baseline_loss:.3f} at L = 200). *Learned*: at least "
            f"{copy_threshold:.4f} of the recalled symbols right (chance 1/8)."
        ),
    }
    out: list[str] = []
    for task, lengths in LENGTHS.items():
        name = "T" if task == "adding" else "L"
        loss = "MSE" if task == "adding" else "CE"
        out += [captions[task], "",
                "| arch | " + " | ".join(f"{name}={n}" for n in lengths) +
                " | T50 (95%) | published |",
                "|---|" + "---|" * (len(lengths) + 2)]  # fmt: skip
        for arch in ARCHS:
            cells = [_entry(rows[task, arch, n], loss) for n in lengths]
            t50 = _t50(doc["t50"][task].get(arch), lengths)
            published = PUBLISHED.get((task, arch), "")
            out.append(f"| `{arch}` | " + " | ".join(cells) + f" | {t50} | {published} |")
        out.append("")
    machines = ", ".join(f"{m['cpu']} ({m['runs']} runs)" for m in doc["run_machines"]) or "—"
    out.append(
        f"Budget, the same for every architecture and cell: {b['steps']} {b['optimizer']} steps "
        f"at lr {b['lr']:g}, fresh batches of {b['batch_size']}, hidden {b['hidden_size']}, "
        f"gradients clipped to global norm {b['clip_threshold']:g}, seeds {b['seeds'][0]}-"
        f"{b['seeds'][-1]}; held-out: {b['eval_sequences']} fresh sequences. The published "
        "budgets are longer (Keller et al.: 60k iterations; Arjovsky et al.'s settings: 20,000 "
        f"iterations of batch 20). {doc['runs']} runs, {doc['train_seconds'] / 3600:.1f} "
        f"core-hours of training, computed on {machines}."
    )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=list(CELLS), help=f"of {', '.join(CELLS)}")
    ap.add_argument("--executor", default="local", help="local (a process pool) or ray")
    ap.add_argument("--address", default=None, help="Ray: auto, HOST:PORT, or unset")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    ap.add_argument("--db", default=None, help="the run store (default runs/bpttlab.db)")
    ap.add_argument("--out", type=Path, default=None, help="the JSON (default: campaign.json)")
    ap.add_argument("--smoke", action="store_true", help="2 seeds, 50 steps, adding T = 100")
    ap.add_argument(
        "--estimate",
        type=int,
        nargs="?",
        const=30,
        metavar="STEPS",
        help="time 5 and 5 + STEPS (default 30) steps per cell and arch; print the cost",
    )
    ap.add_argument("--tables", action="store_true", help="only print the tables")
    ap.add_argument("--update", action="store_true",
                    help="rewrite the JSON from the store's runs, computing nothing")  # fmt: skip
    args = ap.parse_args()
    if args.estimate:
        print(estimate(args.estimate, args.workers or 2))
        return
    if args.tables:
        if not OUT.exists():
            raise SystemExit(f"campaign.py: no {OUT.name} yet: run some cells first (--cells)")
        print(tables())
        return
    cells, seeds, steps = tuple(args.cells), SEEDS, STEPS
    out, db = args.out or OUT, args.db or "runs/bpttlab.db"
    if args.smoke:
        cells, seeds, steps = SMOKE["cells"], SMOKE["seeds"], SMOKE["steps"]
        out, db = args.out or Path("runs/campaign-smoke.json"), args.db or "runs/smoke.db"
    for cell in cells:
        _cell(cell)
    if args.update:
        cells = ()
    doc = compute(cells, seeds, steps, db, out, executor=args.executor, address=args.address,
                  workers=args.workers)  # fmt: skip
    print(tables(doc))
    if doc["interrupted"]:
        raise SystemExit(130)


if __name__ == "__main__":
    main()
