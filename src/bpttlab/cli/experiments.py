"""Experiment commands: duel, cliff, decay-vs-length, clipping, tbptt.

Each maps its flags onto one frozen config of :mod:`bpttlab.experiments` and prints the result
or ``--json``. Every training run lands in the store (``--db``) as it finishes, so an
interrupted command resumes where it stopped and a repeated one reads its numbers back
(``--force`` recomputes). ``--seeds N`` trains seeds ``--seed`` .. ``--seed + N - 1``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from bpttlab.cli._common import (
    ARCH_HELP,
    DB_OPT,
    DEVICE_OPT,
    FORCE_OPT,
    JSON_OPT,
    SEED_OPT,
    TASK_HELP,
    WORKERS_OPT,
    Table,
    bad,
    device,
    emit_json,
    err,
    options,
    out,
    parse_list,
    positive_ints,
    sci,
    seeds_option,
)

__all__ = ["COMMANDS"]

EXECUTOR_OPT = typer.Option(
    "local", "--executor", help="local (a process pool here) or ray (a Ray cluster)."
)
ADDRESS_OPT = typer.Option(
    None, "--address", help="Ray cluster: auto, HOST:PORT, or unset ($RAY_ADDRESS or a local one)."
)
OPTIMIZER_HELP = "adam, rmsprop or sgd"


def _runner(store: Any, force: bool, workers: int, device_name: str, executor: str,
            address: str | None) -> Any:  # fmt: skip
    from bpttlab.experiments import Runner

    if executor not in ("local", "ray"):
        raise bad("--executor", executor, "choose one of local, ray")
    if address is not None and executor != "ray":
        raise bad("--address", address, "--address is for --executor ray")
    workers = 1 if device_name == "cuda" and executor == "local" else workers  # no CUDA in forks
    return Runner(store=store, force=force, workers=workers, progress=err.is_terminal,
                  executor=executor, address=address)  # fmt: skip


def _interval(low: float | None, high: float | None, digits: int = 2) -> str:
    if low is None or high is None:
        return ""
    return f" [{low:.{digits}f}, {high:.{digits}f}]"


def _median_range(m: dict[str, float | None], sep: str = " ") -> str:
    if m["median"] is None:
        return "—"
    if m["min"] == m["max"]:
        return sci(m["median"])
    return f"{sci(m['median'])}{sep}({sci(m['min'])}–{sci(m['max'])})"


def _seeds_spread(m: dict[str, Any], seeds: int) -> str:
    """A median (range) on two lines, and "k/N seeds" when only k of the N seeds define it."""
    text = _median_range(m, "\n")
    n = m.get("n", seeds)
    return text if n in (seeds, 0) else f"{text}\n{n}/{seeds} seeds"


def _seed_text(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def _budget_line(b: dict[str, Any]) -> str:
    opts = ",".join(f"{k}={v}" for k, v in (b.get("task_options") or {}).items())
    task = b["task"] + (f":{opts}" if opts else "")
    batch = "one fixed batch" if b.get("fixed_batch") else "fresh batches"
    return (
        f"budget, the same for every series: {task}, {b['steps']} {b['optimizer']} steps at lr "
        f"{b['lr']:g}, {batch} of {b['batch_size']}, hidden {b['hidden_size']}, "
        f"{_seed_text(b['seeds'])}; accuracy on {b['eval_sequences']} held-out sequences"
    )


def _t50_number(t: dict[str, Any]) -> Callable[[float | None], str]:
    """How a series' T50 figures print: 3 digits, and a bootstrap bound more than 10x past the
    grid (a resample whose fitted curve is almost flat) as "> 10x the longest length"."""
    grid = [int(v) for v in re.findall(r"at (\d+) in", t["statement"])] or [1]
    top, bottom = 10 * max(grid), min(grid) / 10

    def num(v: float | None) -> str:
        if v is None:
            return "—"
        return f"> {top:g}" if v > top else f"< {bottom:g}" if v < bottom else f"{v:.3g}"

    return num


def t50_line(label: str, t: dict[str, Any]) -> str:
    """One series' cliff as the command prints it (``stats.fit_t50``'s statuses)."""
    num = _t50_number(t)

    low, high = num(t["low"]), num(t["high"])
    span = f"{low} to {high}" if high.startswith(">") or low.startswith("<") else f"{low}-{high}"
    status = t["status"]
    if status == "found":
        head = f"T50 = {num(t['estimate'])} (95% interval {span})"
    elif status == "beyond grid":
        head = f"beyond the grid (T50 > {num(t['low'])})"
    elif status == "below grid":
        head = f"below the grid (T50 < {num(t['high'])})"
    else:
        head = "inconclusive at this budget" + (
            f" (T50 ~ {num(t['estimate'])}, interval {span})"
            if t["estimate"] is not None else "")  # fmt: skip
    return f"cliff of {label}: {head}; {t['statement']}"


def _budget(task: str | None, steps: int | None, optimizer: str | None, lr: float | None,
            base: Any, device_name: str, **more: Any) -> Any:  # fmt: skip
    """The base budget with what the flags set (None: the base's)."""
    return base.replace(task=task, steps=steps, optimizer=optimizer, lr=lr,
                        device=device(device_name), **more)  # fmt: skip


def duel(
    archs: str = typer.Option("rnn lstm", "--archs", help="Two architecture specs."),
    preset: str = typer.Option(
        "lesson",
        "--preset",
        help="'lesson': copy-bit T=30, batch 256, hidden 32, 300 Adam "
        "steps at lr 1e-2, one fixed batch.",
    ),  # fmt: skip
    length: int | None = typer.Option(None, "--length", help="Override the preset's T."),
    steps: int | None = typer.Option(None, "--steps", help="Override the preset's steps."),
    task: str | None = typer.Option(None, "--task", help=TASK_HELP),
    optimizer: str | None = typer.Option(None, "--optimizer", help=OPTIMIZER_HELP),
    lr: float | None = typer.Option(None, "--lr", help="Override the preset's learning rate."),
    seeds: int = seeds_option(10),
    workers: int = WORKERS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str | None = ADDRESS_OPT,
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device_name: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Two architectures head to head, each lesson claim beside what was measured.

    --preset lesson is the lesson's exact setup; --length, --steps, --task, --optimizer and --lr
    override it.
    """
    from bpttlab.experiments import LESSON_BUDGET, DuelConfig
    from bpttlab.experiments import duel as run_duel
    from bpttlab.store import Store

    specs = parse_list("--archs", archs, str, "two architecture specs, e.g. rnn lstm", False)
    if preset != "lesson":
        raise bad("--preset", preset, "the only preset is 'lesson'")
    with options({"length": "--length", "lengths": "--length"}):
        b = _budget(task, steps, optimizer, lr, LESSON_BUDGET, device_name)
        config = DuelConfig(archs=tuple(specs), seeds=tuple(range(seed, seed + seeds)),
                            length=30 if length is None else length, budget=b)  # fmt: skip
        with Store(db) as store:
            doc = run_duel(config, _runner(store, force, workers, device_name, executor,
                                           address)).to_dict()  # fmt: skip
    if as_json:
        return emit_json(doc)
    t = Table(title="duel: held-out accuracy (and on the training batch), seed by seed")
    for c in ("arch", "seed", "accuracy", "train batch", "||dL/dh0|| start", "||dL/dh0|| end"):
        t.add_column(c, justify="right")
    for r in doc["results"]:
        t.add_row(r["arch"], str(r["seed"]), sci(r["accuracy"]), sci(r.get("train_accuracy")),
                  sci(r["grad_h0_init"]), sci(r["grad_h0_final"]))  # fmt: skip
    out.print(t)
    out.print(_budget_line(doc["budget"]), markup=False)
    for arch in dict.fromkeys(r["arch"] for r in doc["results"]):  # in the order given
        s = doc["summary"][arch]
        rate = _interval(s["success_low"], s["success_high"])
        mean = _interval(s["accuracy_low"], s["accuracy_high"], 3)
        out.print(f"{arch}: {s['successes']}/{s['seeds']} seeds learn it (accuracy >= "
                  f"{s['threshold']:g}; 95% interval of the rate{rate}), mean accuracy "
                  f"{s['accuracy_mean']:.3f}{mean}", markup=False)  # fmt: skip
    for c in doc["claims"]:
        out.print(f"- the lesson: {c['claim']}\n  measured: {c['measured']}\n  -> {c['verdict']}",
                  markup=False)  # fmt: skip
    if doc.get("claims_note"):
        out.print(doc["claims_note"], markup=False)


def cliff(
    archs: str = typer.Option("rnn lstm", "--archs", help="Architecture specs. " + ARCH_HELP),
    lengths: str = typer.Option("5 20 50", "--lengths", help="Sequence lengths T (the grid)."),
    seeds: int = seeds_option(10),
    steps: str = typer.Option(
        "500", "--steps", help="Optimiser steps per run; several: an axis (500 2000)."
    ),
    task: str = typer.Option(
        "copy-bit", "--task", help="Task spec; several: an axis. " + TASK_HELP
    ),
    optimizer: str = typer.Option(
        "adam", "--optimizer", help=f"{OPTIMIZER_HELP}; several: an axis (adam sgd)."
    ),
    refine: bool = typer.Option(False, "--refine", help="Bisect between grid points."),
    margin: float = typer.Option(
        0.5, "--margin", help="A seed learns: accuracy >= chance + margin * (1 - chance)."
    ),
    hidden: int = typer.Option(32, "--hidden", help="Hidden size H."),
    batch: int = typer.Option(256, "--batch", help="Batch size."),
    lr: float = typer.Option(1e-2, "--lr", help="Learning rate."),
    fixed_batch: bool = typer.Option(
        True, "--fixed-batch/--fresh-batches", help="One fixed batch (the lesson) or fresh samples."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of accuracy against length."),
    workers: int = WORKERS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str | None = ADDRESS_OPT,
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device_name: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Find each architecture's cliff: success against length, the same budget for all.

    The cliff is T50, the length at which the probability that a seed learns the task crosses
    1/2 (a logistic fit against log T, with a bootstrap interval), named only where the
    intervals decide it. Default: the lesson's exercise grid over 10 seeds.
    """
    from bpttlab.experiments import Budget, CliffConfig
    from bpttlab.experiments import cliff as run_cliff
    from bpttlab.store import Store

    if plot is not None and plot.is_dir():
        raise bad("--plot", str(plot), "give a file path for the PNG, e.g. cliff.png")
    specs = parse_list("--archs", archs, str, "architecture specs, e.g. rnn lstm", False)
    step_list = positive_ints("--steps", steps)
    tasks = parse_list("--task", task, str, "task specs, e.g. copy-bit", False)
    opts = parse_list("--optimizer", optimizer, str, OPTIMIZER_HELP)
    with options({"optimizer": "--optimizer", "length": "--lengths"}):
        b = Budget(task=tasks[0], steps=step_list[0], batch_size=batch, hidden_size=hidden,
                   optimizer=opts[0], lr=lr, fixed_batch=fixed_batch,
                   device=device(device_name))  # fmt: skip
        config = CliffConfig(
            archs=tuple(specs), lengths=tuple(positive_ints("--lengths", lengths)),
            seeds=tuple(range(seed, seed + seeds)), refine=refine, margin=margin, budget=b,
            optimizers=tuple(opts) if len(opts) > 1 else (),
            steps=tuple(step_list) if len(step_list) > 1 else (),
            tasks=tuple(tasks) if len(tasks) > 1 else (),
        )  # fmt: skip
        with Store(db) as store:
            result = run_cliff(config, _runner(store, force, workers, device_name, executor,
                                               address))  # fmt: skip
    doc = result.to_dict()
    if plot:
        from bpttlab.views.plots import plot_cliff

        plot_cliff(doc, plot)
    if as_json:
        return emit_json(doc)
    t = Table(title=f"cliff: held-out accuracy and seeds that learn it, {seeds} seeds per cell")
    for c in ("series", "T", "accuracy mean [95%]", "learned [95%]", "||dL/dh0|| end (range)"):
        t.add_column(c, justify="right")
    for r in doc["rows"]:
        t.add_row(
            r["series"], str(r["length"]) + ("" if r.get("grid", True) else "*"),
            f"{r['accuracy_mean']:.3f}{_interval(r['accuracy_low'], r['accuracy_high'], 3)}",
            f"{r['successes']}/{r['seeds']}{_interval(r['success_low'], r['success_high'])}",
            _median_range(r["grad_h0_final"]),
        )  # fmt: skip
    out.print(t)
    out.print(_budget_line(doc["budget"]), markup=False)
    for label, t50 in doc["t50"].items():
        out.print(t50_line(label, t50), markup=False)


def decay_vs_length(
    lengths: str = typer.Option("10 20 30 40 50 60 70 80 90 100", "--lengths", help="T values."),
    radii: str = typer.Option("0.95 1.05", "--radii", help="Spectral radii W_hh is scaled to."),
    seeds: int = seeds_option(5),
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

    A tanh RNN whose W_hh is scaled to each spectral radius in --radii (default 0.95, 1.05),
    one random W_hh per seed: medians over seeds with their range.
    """
    from bpttlab.experiments import DecayConfig
    from bpttlab.experiments import decay_vs_length as run
    from bpttlab.store import Store

    if plot is not None and plot.is_dir():
        raise bad("--plot", str(plot), "give a file path for the PNG, e.g. decay.png")
    rs = parse_list("--radii", radii, float, "a list of positive numbers, e.g. 0.95 1.05")
    with options({"batch_size": "--batch"}):
        config = DecayConfig(lengths=tuple(positive_ints("--lengths", lengths)),
                             radii=tuple(rs), seeds=tuple(range(seed, seed + seeds)),
                             hidden_size=hidden, batch_size=batch, noise=noise)  # fmt: skip
        with Store(db) as store:
            doc = run(config, store=store, force=force).to_dict()
    if plot:
        from bpttlab.views.plots import plot_decay_vs_length

        plot_decay_vs_length(doc, plot)
    if as_json:
        return emit_json(doc)
    t = Table(title=f"||dL/dh_0|| / ||dL/dh_T||: median over {seeds} random W_hh (range)")
    for c in ("ρ", "T", "measured", "(ρ<f'>)^T", "exp(λ₁ T)", "<f'>"):
        t.add_column(c, justify="right")
    for r in doc["rows"]:

        def cell(key: str, r: dict[str, Any] = r) -> str:
            return _median_range({"median": r[key], "min": r[f"{key}_min"],
                                  "max": r[f"{key}_max"]})  # fmt: skip

        t.add_row(f"{r['radius']:g}", str(r["length"]), cell("ratio"), cell("naive"),
                  cell("lyapunov"), f"{r['mean_derivative']:.3f}")  # fmt: skip
    out.print(t)


def clipping(
    steps: int = typer.Option(100, "--steps", help="SGD steps per run."),
    seeds: int = seeds_option(5),
    lr: float = typer.Option(0.1, "--lr", help="Learning rate."),
    hidden: int = typer.Option(16, "--hidden", help="Hidden size H."),
    batch: int = typer.Option(32, "--batch", help="Batch size."),
    norm_threshold: float = typer.Option(
        1.0, "--norm-threshold", help="Largest norm (global, or per parameter)."
    ),
    value_threshold: float = typer.Option(0.1, "--value-threshold", help="Largest |entry|."),
    workers: int = WORKERS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str | None = ADDRESS_OPT,
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device_name: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Clipping fixes exploding gradients, not vanishing ones: measured.

    An exploding and a vanishing RNN, each trained without clipping and with each rule:
    the global norm (PyTorch's clip_grad_norm_, Keras's global_clipnorm), each parameter's own
    norm (Keras's clipnorm) and the value (Keras's clipvalue).
    """
    from bpttlab.experiments import ClippingConfig, clipping_demo
    from bpttlab.store import Store

    with options({"batch_size": "--batch"}):
        config = ClippingConfig(steps=steps, seeds=tuple(range(seed, seed + seeds)),
                                hidden_size=hidden, batch_size=batch, lr=lr,
                                norm_threshold=norm_threshold, value_threshold=value_threshold,
                                device=device(device_name))  # fmt: skip
        with Store(db) as store:
            doc = clipping_demo(config, _runner(store, force, workers, device_name, executor,
                                                address)).to_dict()  # fmt: skip
    if as_json:
        return emit_json(doc)
    t = Table(title=f"gradient clipping against exploding and vanishing gradients, {seeds} seeds",
              caption="ratio: ||dL/dh_0|| / ||dL/dh_T|| on the first training batch, median "
              "(range) over the seeds where it is defined (k/N: the others fit that batch "
              "exactly, ||dL/dh_T|| = 0)",
              pad_edge=False)  # fmt: skip
    for c in ("case", "clip", "diverged", "ratio at start", "ratio at end", "accuracy [95%]"):
        t.add_column(c, justify="right")
    for r in doc["rows"]:
        interval = _interval(r["accuracy_low"], r["accuracy_high"], 3).strip()
        acc = "—" if r["accuracy_mean"] is None else f"{r['accuracy_mean']:.3f}\n{interval}"
        t.add_row(r["case"], r["clip"], f"{r['diverged']}/{r['seeds']}",
                  _seeds_spread(r["grad_h0_ratio_init"], r["seeds"]),
                  _seeds_spread(r["grad_h0_ratio"], r["seeds"]), acc)  # fmt: skip
    out.print(t)


def tbptt(
    windows: str = typer.Option("4 8 16", "--windows", help="Truncation windows k."),
    lengths: str = typer.Option("4 8 12 16 24 32", "--lengths", help="Dependency lengths T."),
    arch: str = typer.Option("rnn", "--arch", help=ARCH_HELP),
    task: str = typer.Option("latch", "--task", help=TASK_HELP),
    steps: int = typer.Option(300, "--steps", help="Optimiser steps per run."),
    seeds: int = seeds_option(6),
    workers: int = WORKERS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str | None = ADDRESS_OPT,
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device_name: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Truncated BPTT: the window k against the longest dependency learned."""
    from bpttlab.experiments import TBPTT_BUDGET, TbpttConfig, tbptt_sweep
    from bpttlab.store import Store

    with options({"tbptt": "--windows", "length": "--lengths"}):
        b = TBPTT_BUDGET.replace(task=task, steps=steps, device=device(device_name))
        config = TbpttConfig(arch=arch, windows=tuple(positive_ints("--windows", windows)),
                             lengths=tuple(positive_ints("--lengths", lengths)),
                             seeds=tuple(range(seed, seed + seeds)), budget=b)  # fmt: skip
        with Store(db) as store:
            doc = tbptt_sweep(config, _runner(store, force, workers, device_name, executor,
                                              address)).to_dict()  # fmt: skip
    if as_json:
        return emit_json(doc)
    t = Table(title=f"truncated BPTT: {arch} on {task}, {seeds} seeds per cell")
    for c in ("window k", "T50 [95%]", "status", "seeds that learn it, by T"):
        t.add_column(c, justify="right")
    for k, t50 in sorted(doc["t50"].items(), key=lambda kv: int(kv[0])):
        num = _t50_number(t50)
        t.add_row(k, f"{num(t50['estimate'])} [{num(t50['low'])}, {num(t50['high'])}]",
                  t50["status"],
                  t50["statement"].removeprefix("succeeds "))  # fmt: skip
    out.print(t)
    out.print(_budget_line(doc["budget"]), markup=False)


COMMANDS = {"duel": duel, "cliff": cliff, "decay-vs-length": decay_vs_length,
            "clipping": clipping, "tbptt": tbptt}  # fmt: skip
