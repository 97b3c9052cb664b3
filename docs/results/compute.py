"""Compute the README's results: cliffs on copy-bit and adding, and sequential digits.

    python docs/results/compute.py            # ~30 min on 2 cores; resumes from runs/bpttlab.db
    python docs/results/compute.py --tables   # only print the markdown tables from the JSON

Every training run is stored in runs/bpttlab.db as it finishes, so an interrupted computation
carries on where it stopped. The summaries are written to docs/results/<task>.json; the tables
in the README are made from those files by :func:`tables` (tests/test_results.py checks both the
tables and, by retraining one grid cell, the numbers).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

ARCHS = ["rnn", "rnn:activation=relu", "irnn", "orthogonal-rnn", "lstm", "lstm:forget_bias=one",
         "gru", "skip-rnn", "attention-rnn", "lru"]  # fmt: skip
BUDGET = {"seeds": (0, 1, 2), "batch_size": 64, "fixed_batch": False}
GRIDS = {
    "copy-bit": {"lengths": (5, 20, 50, 100, 200), "steps": 500},
    "adding": {"lengths": (10, 20, 50, 100, 200), "steps": 500},
    "digits": {"lengths": (64,), "steps": 1000},
}


def compute(db: str = "runs/bpttlab.db", workers: int = 2) -> None:
    from bpttlab.experiments import cliff
    from bpttlab.store import Store

    with Store(db) as store:
        for task, grid in GRIDS.items():
            doc = cliff(archs=ARCHS, task=task, store=store, workers=workers, progress=True,
                        **BUDGET, **grid)  # fmt: skip
            (HERE / f"{task}.json").write_text(json.dumps(doc, indent=1) + "\n")
            print(task, json.dumps(doc["cliffs"]), flush=True)


def _cell(rows: list[dict], arch: str, length: int) -> str:
    (r,) = [r for r in rows if r["arch"] == arch and r["length"] == length]
    return f"{r['accuracy_mean']:.2f} ({r['success_rate'] * 3:.0f}/3)"


def tables() -> str:
    """The markdown tables the README shows, made from docs/results/*.json."""
    from bpttlab.tasks import get_task

    out = []
    for task in ("copy-bit", "adding"):
        doc = json.loads((HERE / f"{task}.json").read_text())
        lengths = GRIDS[task]["lengths"]
        b = doc["budget"]
        chance = [get_task(task, n).chance for n in lengths]
        out += [
            f"**{task}**: mean held-out accuracy over 3 seeds (in brackets, the seeds that beat "
            f"chance by the margin: accuracy >= chance + {b['margin']:g} (1 - chance)), and the "
            "cliff: the first length whose mean falls below that line",
            "",
            "| arch | " + " | ".join(f"T={n}" for n in lengths) + " | cliff |",
            "|---|" + "---:|" * (len(lengths) + 1),
            "| *chance* | " + " | ".join(f"*{c:.3f}*" for c in chance) + " | |",
        ]
        for arch in ARCHS:
            cells = [_cell(doc["rows"], arch, n) for n in lengths]
            c = doc["cliffs"][arch]
            out.append(f"| `{arch}` | " + " | ".join(cells) + f" | {c if c else 'none'} |")
        out += ["", _budget(b), ""]
    doc = json.loads((HERE / "digits.json").read_text())
    out += [
        "**sequential digits** (scikit-learn's 8x8 digits read pixel by pixel, T = 64; trained "
        "on 1,437 images, scored on 8 batches of 64 drawn with replacement from the other 360; "
        "chance 0.10): held-out accuracy over 3 seeds",
        "",
        "| arch | mean | min | max |",
        "|---|---:|---:|---:|",
    ]
    for arch in ARCHS:
        (r,) = [r for r in doc["rows"] if r["arch"] == arch]
        out.append(
            f"| `{arch}` | {r['accuracy_mean']:.3f} | {r['accuracy_min']:.3f} | "
            f"{r['accuracy_max']:.3f} |"
        )
    out += ["", _budget(doc["budget"])]
    return "\n".join(out)


def _budget(b: dict) -> str:
    batch = "one fixed batch" if b["fixed_batch"] else "fresh batches"
    return (
        f"Budget, the same for every architecture: {b['steps']} {b['optimizer']} steps at "
        f"lr {b['lr']:g}, {batch} of {b['batch_size']}, hidden {b['hidden_size']}, seeds "
        f"{', '.join(map(str, b['seeds']))}."
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
