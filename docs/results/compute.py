"""Compute the README's results: cliffs on copy-bit and adding, and sequential digits.

    python docs/results/compute.py            # ~75 min on 2 cores; resumes from runs/bpttlab.db
    python docs/results/compute.py --tables   # only print the markdown tables from the JSON

Every training run is stored in runs/bpttlab.db as it finishes, so an interrupted computation
carries on where it stopped. The results are written to docs/results/<task>.json with the
machine they were computed on (CPU, torch's CPU capability, library versions) and the wall time;
the README's tables are made from those files by :func:`tables`. tests/test_results.py checks
the tables against the files, and retrains one cell: on the machine the file names it must give
the stored numbers exactly, elsewhere the same conclusion.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

ARCHS = ["rnn", "rnn:activation=relu", "irnn", "orthogonal-rnn", "lstm", "lstm:forget_bias=one",
         "gru", "skip-rnn", "attention-rnn", "lru"]  # fmt: skip
SEEDS = tuple(range(8))  # 8 seeds: 0/8 and 8/8 (and 1/8, 7/8) are decided by their Wilson interval
BUDGET = {"batch_size": 64, "fixed_batch": False}
GRIDS = {
    "copy-bit": {"lengths": (5, 20, 50, 100, 200), "steps": 500},
    "adding": {"lengths": (10, 20, 50, 100, 200), "steps": 500},
    "digits": {"lengths": (64,), "steps": 1000},
}


def config(task: str) -> Any:
    """The cliff grid of ``task`` (``bpttlab.experiments.CliffConfig``)."""
    from bpttlab.experiments import Budget, CliffConfig

    grid = GRIDS[task]
    budget = Budget(task=task, steps=grid["steps"], **BUDGET)
    return CliffConfig(archs=tuple(ARCHS), lengths=grid["lengths"], seeds=SEEDS, budget=budget)


def compute(db: str = "runs/bpttlab.db", workers: int = 2) -> None:
    from bpttlab.environment import fingerprint
    from bpttlab.experiments import cliff
    from bpttlab.store import Store

    with Store(db) as store:
        for task in GRIDS:
            start = time.perf_counter()
            doc = cliff(config(task), store=store, workers=workers, progress=True).to_dict()
            doc["machine"] = fingerprint()
            doc["wall_seconds"] = round(time.perf_counter() - start)
            (HERE / f"{task}.json").write_text(json.dumps(doc, indent=1) + "\n")
            print(task, json.dumps({k: v["status"] for k, v in doc["t50"].items()}), flush=True)


def _t50(t: dict[str, Any]) -> str:
    def num(v: float | None) -> str:
        return "—" if v is None else f"{v:.3g}"

    if t["status"] == "found":
        return f"{num(t['estimate'])} ({num(t['low'])}-{num(t['high'])})"
    if t["status"] == "beyond grid":
        return f"> {num(t['low'])}"
    if t["status"] == "below grid":
        return f"< {num(t['high'])}"
    return "inconclusive"


def _cell(rows: list[dict[str, Any]], arch: str, length: int) -> str:
    (r,) = [r for r in rows if r["arch"] == arch and r["length"] == length]
    return f"{r['accuracy_mean']:.2f} ({r['successes']}/{r['seeds']})"


def _machine(m: dict[str, Any]) -> str:
    return (f"{m['cpu']}, torch {m['torch']} ({m['cpu_capability']} vector code), "
            f"numpy {m['numpy']}")  # fmt: skip


def tables() -> str:
    """The markdown tables the README shows, made from docs/results/*.json."""
    from bpttlab.tasks import get_task

    out = []
    for task in ("copy-bit", "adding"):
        doc = json.loads((HERE / f"{task}.json").read_text())
        lengths, b = GRIDS[task]["lengths"], doc["budget"]
        chance = [get_task(task, n).chance for n in lengths]
        out += [
            f"**{task}**: mean held-out accuracy over {len(b['seeds'])} seeds, and in brackets "
            f"the seeds that learn it (accuracy >= chance + {b['margin']:g} (1 - chance)); T50, "
            "the length at which half the seeds learn it, with its 95% interval, or where it "
            'lies beyond the grid; "inconclusive" where the seeds do not decide it',
            "",
            "| arch | " + " | ".join(f"T={n}" for n in lengths) + " | T50 |",
            "|---|" + "---:|" * (len(lengths) + 1),
            "| *chance* | " + " | ".join(f"*{c:.3f}*" for c in chance) + " | |",
        ]
        for arch in ARCHS:
            cells = [_cell(doc["rows"], arch, n) for n in lengths]
            out.append(f"| `{arch}` | " + " | ".join(cells) + f" | {_t50(doc['t50'][arch])} |")
        out += ["", _budget(doc), ""]
    doc = json.loads((HERE / "digits.json").read_text())
    out += [
        "**sequential digits** (scikit-learn's 8x8 digits read pixel by pixel, T = 64; trained "
        "on 1,437 images, scored on 8 batches of 64 drawn with replacement from the other 360; "
        f"chance 0.10): held-out accuracy over {len(doc['budget']['seeds'])} seeds, the mean "
        "with its 95% bootstrap interval",
        "",
        "| arch | mean (95%) | min | max |",
        "|---|---:|---:|---:|",
    ]
    for arch in ARCHS:
        (r,) = [r for r in doc["rows"] if r["arch"] == arch]
        out.append(
            f"| `{arch}` | {r['accuracy_mean']:.3f} ({r['accuracy_low']:.3f}-"
            f"{r['accuracy_high']:.3f}) | {r['accuracy_min']:.3f} | {r['accuracy_max']:.3f} |"
        )
    out += ["", _budget(doc)]
    return "\n".join(out)


def _budget(doc: dict[str, Any]) -> str:
    b = doc["budget"]
    batch = "one fixed batch" if b["fixed_batch"] else "fresh batches"
    seeds = b["seeds"]
    return (
        f"Budget, the same for every architecture: {b['steps']} {b['optimizer']} steps at "
        f"lr {b['lr']:g}, {batch} of {b['batch_size']}, hidden {b['hidden_size']}, seeds "
        f"{seeds[0]}-{seeds[-1]}; {b['runs']} runs, {doc['wall_seconds'] / 60:.0f} min on "
        f"{_machine(doc['machine'])}."
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", action="store_true", help="only print the tables")
    ap.add_argument("--db", default="runs/bpttlab.db")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if not args.tables:
        compute(args.db, args.workers)
    print(tables())
