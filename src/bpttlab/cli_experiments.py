"""``bpttlab`` experiment commands: duel, cliff, decay-vs-length, clipping, tbptt.

Each maps its flags onto one function of :mod:`bpttlab.experiments` and prints a table or
``--json``. Every training run lands in the store (``--db``) as it finishes, so an interrupted
command resumes where it stopped and a repeated one reads its numbers back (``--force``
recomputes). ``--seeds N`` trains seeds ``--seed`` .. ``--seed + N - 1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .cli import (
    JSON_OPT,
    SEED_OPT,
    _bad,
    _check_positive,
    _parse_list,
    _positive_ints,
    app,
    emit_json,
    err,
    out,
)
from .cli_lab import (
    ARCH_HELP,
    DB_OPT,
    DEVICE_OPT,
    FORCE_OPT,
    TASK_HELP,
    _device,
    _options_named,
    _sci,
    _task,
)
from .store import Store

WORKERS_OPT = typer.Option(2, "--workers", help="Processes training in parallel (1 = serial).")
SEEDS_OPT = typer.Option(3, "--seeds", help="How many seeds: --seed .. --seed + N - 1.")


def _seeds(seed: int, n: int) -> list[int]:
    _check_positive("--seeds", n)
    return list(range(seed, seed + n))


def _workers(workers: int, device: str) -> int:
    _check_positive("--workers", workers)
    return 1 if device == "cuda" else workers  # CUDA cannot be used in forked workers


def _progress() -> bool:
    return err.is_terminal


def _budget_line(b: dict[str, Any]) -> str:
    opts = ",".join(f"{k}={v}" for k, v in (b.get("task_options") or {}).items())
    task = b["task"] + (f":{opts}" if opts else "")
    batch = "one fixed batch" if b.get("fixed_batch") else "fresh batches"
    return (
        f"budget, the same for every architecture: {task}, {b['steps']} {b['optimizer']} steps "
        f"at lr {b['lr']:g}, {batch} of {b['batch_size']}, hidden {b['hidden_size']}, "
        f"seeds {b.get('seeds')}"
    )


@app.command()
def duel(
    archs: str = typer.Option("rnn lstm", "--archs", help="Two architecture specs."),
    preset: str = typer.Option(
        "lesson",
        "--preset",
        help="'lesson': copy-bit T=30, batch 256, "
        "hidden 32, 300 Adam steps at lr 1e-2, one fixed batch.",
    ),
    length: int | None = typer.Option(None, "--length", help="Override the preset's T."),
    steps: int | None = typer.Option(None, "--steps", help="Override the preset's steps."),
    task: str | None = typer.Option(None, "--task", help=TASK_HELP),
    seeds: int = SEEDS_OPT,
    workers: int = WORKERS_OPT,
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Two architectures head to head, each lesson claim beside what was measured.

    --preset lesson is the lesson's exact setup; --length, --steps, --task override it.
    """
    from .experiments import duel as run_duel

    specs = _parse_list("--archs", archs, str, "architecture specs, e.g. rnn lstm", False)
    if preset != "lesson":
        raise _bad("--preset", preset, "the only preset is 'lesson'")
    device = _device(device)
    with Store(db) as store:
        doc = run_duel(
            specs,
            _seeds(seed, seeds),
            preset=preset,
            length=length,
            steps=steps,
            task=task,
            device=device,
            store=store,
            force=force,
            workers=_workers(workers, device),
            progress=_progress(),
        )
    if as_json:
        return emit_json(doc)
    t = Table(title="duel: held-out accuracy (and on the training batch)")
    for c in ("arch", "seed", "accuracy", "train batch", "||dL/dh0|| start", "||dL/dh0|| end"):
        t.add_column(c, justify="right")
    for r in doc["results"]:
        t.add_row(
            r["arch"],
            str(r["seed"]),
            _sci(r["accuracy"]),
            _sci(r.get("train_accuracy")),
            _sci(r["grad_h0_init"]),
            _sci(r["grad_h0_final"]),
        )
    out.print(t)
    out.print(_budget_line(doc["budget"]), markup=False)
    for c in doc["claims"]:
        mark = "holds" if c["holds"] else "does NOT hold"
        out.print(
            f"- the lesson: {c['claim']}\n  measured: {c['measured']} -> {mark}", markup=False
        )
    if doc.get("claims_note"):
        out.print(doc["claims_note"], markup=False)


@app.command()
def cliff(
    archs: str = typer.Option("rnn lstm", "--archs", help="Architecture specs. " + ARCH_HELP),
    lengths: str = typer.Option("5 20 50", "--lengths", help="Sequence lengths T (the grid)."),
    seeds: int = SEEDS_OPT,
    steps: int = typer.Option(500, "--steps", help="Optimiser steps per run."),
    task: str = typer.Option("copy-bit", "--task", help=TASK_HELP),
    refine: bool = typer.Option(False, "--refine", help="Bisect between grid points."),
    margin: float = typer.Option(
        0.5, "--margin", help="Learned: mean accuracy >= chance + margin * (1 - chance)."
    ),
    hidden: int = typer.Option(32, "--hidden", help="Hidden size H."),
    batch: int = typer.Option(256, "--batch", help="Batch size."),
    lr: float = typer.Option(1e-2, "--lr", help="Learning rate."),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam, rmsprop or sgd."),
    fixed_batch: bool = typer.Option(
        True, "--fixed-batch/--fresh-batches", help="One fixed batch (the lesson) or fresh samples."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of accuracy against length."),
    workers: int = WORKERS_OPT,
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Find each architecture's cliff: accuracy against length, same budget for all.

    The cliff is the first length at which the mean accuracy no longer beats chance by a clear
    margin (--margin). Default: the lesson's exercise grid.
    """
    from .experiments import cliff as run_cliff

    specs = _parse_list("--archs", archs, str, "architecture specs, e.g. rnn lstm", False)
    device = _device(device)
    grid = _positive_ints("--lengths", lengths)
    with _options_named({"length": "--lengths", "task": "--task"}):
        for n in grid:  # every length must suit the task (adding needs T >= 4, digits is 64)
            _task(task, n)
    with Store(db) as store:
        doc = run_cliff(
            specs,
            grid,
            _seeds(seed, seeds),
            steps,
            task,
            refine,
            margin=margin,
            hidden_size=hidden,
            batch_size=batch,
            lr=lr,
            optimizer=optimizer,
            fixed_batch=fixed_batch,
            device=device,
            store=store,
            force=force,
            workers=_workers(workers, device),
            progress=_progress(),
        )
    if plot:
        from .plots import plot_cliff

        plot_cliff(doc, plot)
    if as_json:
        return emit_json(doc)
    t = Table(title=f"cliff on {task}: accuracy mean (min, max) over {seeds} seeds")
    for c in ("arch", "T", "accuracy", "success rate"):
        t.add_column(c, justify="right")
    for r in doc["rows"]:
        t.add_row(
            r["arch"],
            str(r["length"]) + ("" if r.get("grid", True) else "*"),
            f"{r['accuracy_mean']:.3f} ({r['accuracy_min']:.3f}, {r['accuracy_max']:.3f})",
            f"{r['success_rate']:.2f}",
        )
    out.print(t)
    out.print(_budget_line(doc["budget"]), markup=False)
    for a, n in doc["cliffs"].items():
        out.print(f"cliff of {a}: {'none in the grid' if n is None else f'T = {n}'}", markup=False)


@app.command("decay-vs-length")
def decay_vs_length(
    lengths: str = typer.Option("10 20 30 40 50 60 70 80 90 100", "--lengths", help="T values."),
    radii: str = typer.Option("0.95 1.05", "--radii", help="Spectral radii W_hh is scaled to."),
    hidden: int = typer.Option(32, "--hidden", help="Hidden size H."),
    batch: int = typer.Option(32, "--batch", help="Batch size."),
    noise: float = typer.Option(1.0, "--noise", help="Std of the input noise."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of log10 ratio against T."),
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Measured ||dL/dh_0|| against T beside (rho <f'>)^T and the Lyapunov rate.

    A tanh RNN whose W_hh is scaled to each spectral radius in --radii (default 0.95, 1.05).
    """
    from .experiments import decay_vs_length as run

    rs = _parse_list("--radii", radii, float, "a list of positive numbers, e.g. 0.95 1.05")
    if any(r <= 0 for r in rs):
        raise _bad("--radii", radii, "every radius must be > 0")
    with Store(db) as store:
        doc = run(
            _positive_ints("--lengths", lengths),
            rs,
            hidden_size=hidden,
            batch_size=batch,
            noise=noise,
            seed=seed,
            store=store,
            force=force,
        )
    if plot:
        from .plots import plot_decay_vs_length

        plot_decay_vs_length(doc, plot)
    if as_json:
        return emit_json(doc)
    t = Table(title="||dL/dh_0|| / ||dL/dh_T|| measured, against two predictions")
    for c in ("ρ", "T", "measured", "(ρ<f'>)^T", "exp(λ₁ T)", "<f'>"):
        t.add_column(c, justify="right")
    for r in doc["rows"]:
        t.add_row(
            f"{r['radius']:g}",
            str(r["length"]),
            _sci(r["ratio"]),
            _sci(r["naive"]),
            _sci(r["lyapunov"]),
            f"{r['mean_derivative']:.3f}",
        )
    out.print(t)


@app.command()
def clipping(
    steps: int = typer.Option(100, "--steps", help="SGD steps per run."),
    lr: float = typer.Option(0.1, "--lr", help="Learning rate."),
    hidden: int = typer.Option(16, "--hidden", help="Hidden size H."),
    batch: int = typer.Option(32, "--batch", help="Batch size."),
    norm_threshold: float = typer.Option(1.0, "--norm-threshold", help="clip_grad_norm_ max."),
    value_threshold: float = typer.Option(0.1, "--value-threshold", help="clip_grad_value_."),
    workers: int = WORKERS_OPT,
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Clipping fixes exploding gradients, not vanishing ones: measured.

    An exploding and a vanishing RNN, each trained without clipping and with clipping by norm
    and by value.
    """
    from .experiments import clipping_demo

    for opt, v in (("--norm-threshold", norm_threshold), ("--value-threshold", value_threshold)):
        if not v > 0:
            raise _bad(opt, v, "must be > 0")
    device = _device(device)
    with Store(db) as store:
        doc = clipping_demo(
            steps=steps,
            seed=seed,
            hidden_size=hidden,
            batch_size=batch,
            lr=lr,
            norm_threshold=norm_threshold,
            value_threshold=value_threshold,
            device=device,
            store=store,
            force=force,
            workers=_workers(workers, device),
            progress=_progress(),
        )
    if as_json:
        return emit_json(doc)
    t = Table(title="gradient clipping against exploding and vanishing gradients")
    for c in ("case", "clip", "diverged", "||dL/dh0||/||dL/dhT|| start", "end", "accuracy"):
        t.add_column(c, justify="right")
    for r in doc["runs"]:
        div = f"yes, step {r['diverged_at_step']}" if r["diverged"] else "no"
        t.add_row(
            r["case"],
            r["clip"],
            div,
            _sci(r["grad_h0_ratio_init"]),
            _sci(r["grad_h0_ratio"]),
            _sci(r["accuracy"]),
        )
    out.print(t)


@app.command()
def tbptt(
    windows: str = typer.Option("4 8 16", "--windows", help="Truncation windows k."),
    lengths: str = typer.Option("4 8 12 16 24 32", "--lengths", help="Dependency lengths T."),
    arch: str = typer.Option("rnn", "--arch", help=ARCH_HELP),
    task: str = typer.Option("latch", "--task", help=TASK_HELP),
    steps: int = typer.Option(300, "--steps", help="Optimiser steps per run."),
    seeds: int = typer.Option(2, "--seeds", help="How many seeds: --seed .. --seed + N - 1."),
    workers: int = WORKERS_OPT,
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Truncated BPTT: the window k against the longest dependency learned."""
    from .experiments import tbptt_sweep

    device = _device(device)
    with Store(db) as store:
        doc = tbptt_sweep(
            _positive_ints("--windows", windows),
            _positive_ints("--lengths", lengths),
            _seeds(seed, seeds),
            arch=arch,
            task=task,
            steps=steps,
            device=device,
            store=store,
            force=force,
            workers=_workers(workers, device),
            progress=_progress(),
        )
    if as_json:
        return emit_json(doc)
    t = Table(title=f"truncated BPTT: {arch} on {task}")
    for c in ("window k", "longest T learned"):
        t.add_column(c, justify="right")
    for k, n in sorted(doc["longest_learned"].items(), key=lambda kv: int(kv[0])):
        t.add_row(k, "none" if n is None else str(n))
    out.print(t)
    out.print(_budget_line(doc["budget"]), markup=False)
