"""Refresh README.md from real runs: every ```console block that starts with ``$ bpttlab`` is
re-run and its output replaced, and the regions between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` are regenerated (``profiles``: every architecture's gradient profile;
``results``: the tables of docs/results/*.json).

    python docs/readme.py          # rewrite README.md in place
    python docs/readme.py --check  # exit 1 if README.md is not what a refresh would write

tests/test_readme.py runs the same checks, so the README cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"(```console\n\$ )(bpttlab[^\n]*)\n(.*?)(```)", re.S)
REGION = re.compile(r"(<!-- (\w+):begin -->\n)(.*?)(<!-- \2:end -->)", re.S)

PROFILE_ARCHS = ["rnn", "rnn:activation=relu", "rnn:activation=sigmoid", "irnn", "lstm",
                 "lstm:forget_bias=one", "gru", "skip-rnn", "attention-rnn", "orthogonal-rnn",
                 "lru"]  # fmt: skip


def run_block(command: str) -> str:
    """The combined stdout and stderr of a README command, run in a fresh folder (no store
    from an earlier version can answer) with the examples beside it, 100 columns wide."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "examples", Path(tmp) / "examples")
        env = dict(os.environ, COLUMNS="100")
        args = [sys.executable, "-m", "bpttlab", *shlex.split(command)[1:]]
        res = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp)
    return (res.stdout + res.stderr).rstrip("\n")


def profile_config(arch: str) -> dict:
    return {"arch": arch, "task": "copy-bit", "length": 200, "layers": 1, "hidden": 32,
            "batch": 64, "train_steps": 0, "lr": 0.01, "seed": 0, "device": "cpu",
            "dtype": "float64"}  # fmt: skip


def profiles_table() -> str:
    from bpttlab.cli_lab import run_profile

    rows = [
        "| arch | verdict | ‖dL/dh_0‖ / ‖dL/dh_T‖ | horizon (steps back to 1e-3) | probe |",
        "|---|---|---:|---:|---|",
    ]
    for arch in PROFILE_ARCHS:
        doc = run_profile(profile_config(arch))
        d = doc["diagnosis"]
        h = d["horizon"] if d["horizon"] is not None else "beyond 200"
        rows.append(f"| `{arch}` | {d['verdict']} | {d['ratio']:.2e} | {h} | {doc['method']} |")
    return "\n".join(rows)


def results_tables() -> str:
    sys.path.insert(0, str(ROOT / "docs" / "results"))
    from compute import tables

    return tables()


def claims_table() -> str:
    """Each claim of the lesson beside what bpttlab measures, every figure computed here."""
    import math

    from bpttlab import dynamics, experiments, theory
    from bpttlab.store import Store

    def sci(x: float) -> str:
        return f"{x:.3g}"

    rows = ["| the lesson says | bpttlab measures | holds? |", "|---|---|---|"]
    vanish = theory.decay(0.9, 0.5, [10, 20, 50, 100]).rows
    grow = theory.decay(1.1, 1.0, [10, 20, 50]).rows
    rows.append(
        "| `gradient_decay(T, 0.9, 0.5) = 0.45^T`, and growth `1.1^T` | "
        + ", ".join(f"{r.magnitude:.3g} (T={r.length})" for r in vanish)
        + "; growth "
        + ", ".join(f"{r.magnitude:.3g} (T={r.length})" for r in grow)
        + " | the formula, yes: these are its true values |"
    )
    for name, printed in (("tanh", [1, 0.420, 0.071, 0.0099, 1.8e-4]),
                          ("sigmoid", [0.25, 0.197, 0.105, 0.045, 0.0066])):  # fmt: skip
        got = theory.activation_derivative(name, [0, 1, 2, 3, 5])
        ok = all(abs(g - p) <= 0.02 * p for g, p in zip(got, printed, strict=True))
        rows.append(f"| {name}'(x) at x = 0, 1, 2, 3, 5: {', '.join(map(str, printed))} | "
                    f"{', '.join(sci(g) for g in got)} | {'yes' if ok else 'no'} |")  # fmt: skip
    lesson = dynamics.lesson_preset()["walk"]
    start = 10 ** lesson.log10_frobenius[0]
    rows.append(
        f"| the Jacobian-walk demo's norm starts at 1 | it starts at ‖I‖_F = {start:.3g} "
        "(H = 64): the trajectory stays at 0 and the walk is ‖W^k‖_F | no |"
    )
    end11 = 10 ** dynamics.lesson_preset(gain=1.1)["walk"].log10_frobenius[-1]
    rows.append(
        f"| scale 1.1/√H and the loop explodes to 1e10 and NaN | it ends at {sci(end11)} "
        f"at T = 50, finite | {'no' if math.isfinite(end11) and end11 < 1e10 else 'yes'} |"
    )
    traj = dynamics.simulate(theory.make_matrix("gaussian", 256, 1.5, 0), 1500, "tanh", "zeros",
                             h0="random", seed=0)  # fmt: skip
    ly = dynamics.lyapunov_exponents(traj, k=8, warmup=500)
    wrong = (ly.naive_rate < 0) != (ly.exponents[0] < 0)
    rows.append(f"| the rate `log(ρ·<f'>)` tells decay from growth | at gain 1.5 (H = 256) it "
                f"says {ly.naive_rate:+.4f} per step while λ₁ = {ly.exponents[0]:+.4f} | "
                f"{'no, above gain 1' if wrong else 'yes'} |")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "claims.db") as store:
        duel = experiments.duel(store=store, workers=2)
        for c in duel["claims"]:
            rows.append(f"| {c['claim']} (`bpttlab duel`) | {c['measured']} | "
                        f"{'yes' if c['holds'] else 'no'} |")  # fmt: skip
        grid = experiments.cliff(store=store, workers=2)
        rnn, lstm = grid["cliffs"]["rnn"], grid["cliffs"]["lstm"]
        holds = rnn is not None and rnn <= 50 and lstm is None
        rows.append(
            "| the RNN's cliff lies near T = 50, the LSTM's beyond 200 (the exercise grid T = 5, "
            f"20, 50; `bpttlab cliff`) | cliff of rnn: {rnn or 'none in the grid'}; of lstm: "
            f"{lstm or 'none in the grid'} (see the results above for T up to 200) | "
            f"{'yes' if holds else 'no'} |"
        )
        clip = {
            (r["case"], r["clip"]): r
            for r in experiments.clipping_demo(store=store, workers=2)["runs"]
        }
        fixes = clip[("exploding", "none")]["diverged"] and not any(
            clip[("exploding", k)]["diverged"] for k in ("norm", "value"))  # fmt: skip
        v = [clip[("vanishing", k)]["grad_h0_ratio"] for k in ("none", "norm", "value")]
        rows.append(
            "| clipping fixes exploding gradients but not vanishing ones (`bpttlab clipping`) | "
            f"exploding: diverges at step {clip[('exploding', 'none')]['diverged_at_step']} "
            f"unclipped, trains clipped by norm and by value; vanishing: ‖dL/dh_0‖/‖dL/dh_T‖ = "
            f"{', '.join(sci(x) for x in v)} (none, norm, value) | "
            f"{'yes' if fixes and max(v) < 1e-6 else 'no'} |"
        )
    return "\n".join(rows)


REGIONS = {"profiles": profiles_table, "results": results_tables, "claims": claims_table}


def refreshed(text: str) -> str:
    text = BLOCK.sub(lambda m: f"{m[1]}{m[2]}\n{run_block(m[2])}\n{m[4]}", text)
    return REGION.sub(lambda m: f"{m[1]}{REGIONS[m[2]]()}\n{m[4]}", text)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare, exit 1 on a difference")
    args = ap.parse_args()
    current = README.read_text(encoding="utf-8")
    new = refreshed(current)
    if args.check:
        sys.exit(0 if new == current else 1)
    README.write_text(new, encoding="utf-8")
