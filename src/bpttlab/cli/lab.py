"""Commands on real PyTorch models: profile, diagnose (a user's own model) and train."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from bpttlab.cli._common import (
    ARCH_HELP,
    DB_OPT,
    DEVICE_OPT,
    FORCE_OPT,
    JSON_OPT,
    SEED_OPT,
    TASK_HELP,
    Table,
    bad,
    device,
    emit_json,
    err,
    options,
    out,
    sci,
    usage_error,
)

__all__ = ["COMMANDS"]

MODEL_HELP = (
    "PATH.py:FACTORY (runs PATH.py: load only files you trust) or a TorchScript .pt of an "
    "nn.RNN/LSTM/GRU (a program too)."
)


def _with_layers(arch: str, layers: int | None) -> str:
    """``--layers N`` as the spec's num_layers; both given and different is a contradiction."""
    from bpttlab.models import ARCH_OPTIONS, parse_arch

    name, opts = parse_arch(arch)
    if layers is None:
        return arch
    if layers < 1:
        raise bad("--layers", layers, "must be an int >= 1")
    if "num_layers" not in ARCH_OPTIONS[name]:
        raise usage_error("--layers", f"{name} has one layer only (no num_layers option)")
    if opts.get("num_layers", layers) != layers:
        raise usage_error("--layers", f"--layers {layers} contradicts --arch {arch!r}: give one")
    if "num_layers" in opts or layers == 1:
        return arch
    return f"{arch}{',' if ':' in arch else ':'}num_layers={layers}"


def _print_diagnosis(d: dict[str, Any]) -> None:
    rate = d["decay_rate"]
    rate_txt = "—" if rate is None else f"{rate:+.4f} per step (x{math.exp(rate):.4g})"
    out.print(
        f"verdict: [bold]{d['verdict']}[/bold]   ||dL/dh_0|| / ||dL/dh_T|| = "
        f"{sci(d['ratio'])}   decay rate: {rate_txt}"
    )
    out.print(
        f"horizon: {d['horizon'] if d['horizon'] is not None else 'beyond T'} steps back "
        f"to 1e-3 of the readout's gradient; float32 underflow "
        f"{d['horizon_float32'] if d['horizon_float32'] is not None else 'not reached'}"
    )
    for a in d["advice"]:
        ev = ", ".join(
            f"{k}={sci(v) if isinstance(v, float) else v}" for k, v in a["evidence"].items()
        )
        out.print(f"  - {escape(a['text'])}  [dim]({escape(ev)})[/dim]")


def _print_profile_table(doc: dict[str, Any], every: int | None) -> None:
    norms, T = doc["norms"], doc["T"]
    k = every or max(1, T // 10)
    steps = sorted(set(range(T, -1, -k)) | {0})[::-1]
    t = Table(
        title=f"||dL/dh_t|| for {doc['arch']} on {doc['task']}, T={T} (method: {doc['method']})"
    )
    for c in ("t", "steps back", "||dL/dh_t||", "log10"):
        t.add_column(c, justify="right")
    for s in steps:
        n, lg = norms[s], doc["log10_norms"][s]
        t.add_row(
            str(s), str(T - s), "—" if n is None else f"{n:.3e}", "—" if lg is None else f"{lg:.2f}"
        )
    out.print(t)
    _print_diagnosis(doc["diagnosis"])
    if doc["float32_underflow_at"] is not None:
        out.print(
            f"float32 itself underflows to 0 at t <= {doc['float32_underflow_at']}; "
            "these norms are float64."
        )


def profile(
    arch: str = typer.Option("rnn", "--arch", help=ARCH_HELP),
    task: str = typer.Option("copy-bit", "--task", help=TASK_HELP),
    length: int = typer.Option(200, "--length", help="Sequence length T."),
    layers: int | None = typer.Option(
        None, "--layers", help="Stacked layers (the arch's num_layers; default 1)."
    ),
    hidden: int = typer.Option(32, "--hidden", help="Hidden size H."),
    batch: int = typer.Option(64, "--batch", help="Batch size for the profile (and training)."),
    train_steps: int = typer.Option(0, "--train-steps", help="Adam steps before profiling."),
    lr: float = typer.Option(1e-2, "--lr", help="Learning rate when training."),
    dtype: str = typer.Option("float32", "--dtype", help="Profile arithmetic: float32|float64."),
    every: int | None = typer.Option(None, "--every", min=1, help="Table rows every K steps."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of log10 ||dL/dh_t|| vs t."),
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device_name: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """||dL/dh_t|| for every time step of a model on a task, and its diagnosis."""
    from bpttlab.environment import fingerprint
    from bpttlab.experiments import PROFILE_KIND, ProfileConfig, Setting, profile_run
    from bpttlab.store import Store, cached

    if plot is not None and plot.is_dir():
        raise bad("--plot", str(plot), "give a file path for the PNG, e.g. profile.png")
    with options({"batch_size": "--batch"}):
        spec = _with_layers(arch, layers)
        config = ProfileConfig(**Setting.specs(spec, task), length=length, hidden_size=hidden,
                               batch_size=batch, train_steps=train_steps, lr=lr, seed=seed,
                               device=device(device_name), dtype=dtype)  # fmt: skip
        with Store(db) as store:
            result = cached(store, PROFILE_KIND, config, lambda: profile_run(config),
                            force=force, env=fingerprint())  # fmt: skip
    doc = {"arch": arch, "task": task, "length": length, **result, "config": config.to_dict()}
    if plot:
        from bpttlab.views.plots import plot_profile

        plot_profile([math.nan if v is None else v for v in doc["norms"]], plot,
                     title=f"{arch} on {task}, T={doc['T']}")  # fmt: skip
    if as_json:
        return emit_json(doc)
    _print_profile_table(doc, every)


def diagnose(
    model_ref: str = typer.Option(..., "--model", help=MODEL_HELP),
    batch_ref: str | None = typer.Option(
        None, "--batch", help="PATH.py:MAKE_BATCH -> x or (x, target); runs PATH.py."
    ),
    input_size: int = typer.Option(1, "--input-size", help="Features per step (default batch)."),
    output_size: int = typer.Option(2, "--output-size", help="Passed to the factory."),
    length: int = typer.Option(50, "--length", help="T of the default batch."),
    batch: int = typer.Option(32, "--batch-size", help="B of the default batch."),
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Diagnose a user's own model: its gradient profile, verdict and advice.

    FACTORY(input_size, output_size) returns a model, a (model, loss) pair, or a dict with
    'model', optional 'loss' (loss(output, target)) and 'probe' ({'cell': ...} or {'rnn': ...}).
    Without a loss, L = sum of the output at the last step. --model and --batch run the Python
    file they name: use only files you trust.
    """
    import torch

    from bpttlab.diagnosis import diagnose_profile
    from bpttlab.probe import gradient_profile
    from bpttlab.usermodel import default_batch, load_batch, load_model, run_user_code

    for opt, v in (("--input-size", input_size), ("--output-size", output_size),
                   ("--length", length), ("--batch-size", batch)):  # fmt: skip
        if v < 1:
            raise bad(opt, v, "must be an int >= 1")
    torch.manual_seed(seed)
    with options({"batch": "--batch", "batch_size": "--batch-size", "input_size": "--input-size"}):
        if not batch_ref:  # refuse an oversized default batch before running the user's code
            x, target = default_batch(input_size, length, batch, seed)
        user = load_model(model_ref, input_size, output_size)
        if batch_ref:
            x, target = load_batch(batch_ref)
        else:
            if user.input_size not in (None, input_size):  # a bare RNN says what it takes
                x, target = default_batch(int(user.input_size), length, batch, seed)
            if user.time_dim == 0:
                x = x.transpose(0, 1).contiguous()  # (T, B, I)
        if user.loss is not None and target is not None:
            loss, tgt = user.loss, target
            loss_fn = lambda o: loss(o, tgt)  # noqa: E731
        else:  # the readout at step T
            t_dim = user.time_dim
            loss_fn = lambda o: (o[0] if isinstance(o, tuple | list) else o).select(t_dim, -1).sum()  # noqa: E731
        where, what = ("batch", batch_ref) if batch_ref else ("model", model_ref)
        with run_user_code(where, what, f"the model on x of shape {tuple(x.shape)}"):
            prof = gradient_profile(user.model, x, loss_fn, **user.probe)
        d = diagnose_profile(prof, user.model, **user.probe).to_dict()
    d["decay_rate"] = d["rate_per_step"]
    doc = {"model": model_ref, "length": int(prof.T), "norms": prof.norms,
           "log10_norms": prof.log10_norms, "method": prof.method, "diagnosis": d}  # fmt: skip
    if as_json:
        return emit_json(doc)
    err.print(f"profiled {model_ref} on x of shape {tuple(x.shape)} ({prof.method})", markup=False)
    _print_diagnosis(d)


def train(
    arch: str = typer.Option("lstm", "--arch", help=ARCH_HELP),
    task: str = typer.Option("copy-bit", "--task", help=TASK_HELP),
    length: int = typer.Option(20, "--length", help="Sequence length T (dependency length)."),
    hidden: int = typer.Option(32, "--hidden", help="Hidden size H."),
    layers: int | None = typer.Option(
        None, "--layers", help="Stacked layers (the arch's num_layers; default 1)."
    ),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam, rmsprop or sgd."),
    lr: float = typer.Option(1e-2, "--lr", help="Learning rate."),
    steps: int = typer.Option(300, "--steps", help="Optimiser steps."),
    batch: int = typer.Option(64, "--batch", help="Batch size."),
    clip: str = typer.Option(
        "none", "--clip", help="Gradient clipping: none, norm, variable-norm or value."
    ),
    clip_threshold: float = typer.Option(1.0, "--clip-threshold", help="Clipping threshold."),
    tbptt: int | None = typer.Option(
        None, "--tbptt", help="Truncated BPTT window k (default: none, full BPTT)."
    ),
    fixed_batch: bool = typer.Option(False, "--fixed-batch", help="Train on one batch (lesson)."),
    eval_every: int | None = typer.Option(
        None, "--eval-every", help="Evaluate every N steps (default: only at the end)."
    ),
    profile_every: int | None = typer.Option(
        None, "--profile-every", help="Full ||dL/dh_t|| profile every N steps (default: none)."
    ),
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device_name: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Train one model on one task; report accuracy, loss, divergence and ||dL/dh_0|| per step."""
    from bpttlab.environment import fingerprint
    from bpttlab.experiments import RUN_KIND, RunConfig, Setting, train_run
    from bpttlab.store import Store
    from bpttlab.training import TrainConfig

    with options():
        tc = TrainConfig(optimizer=optimizer, lr=lr, steps=steps, batch_size=batch, clip=clip,
                         clip_threshold=clip_threshold, tbptt=tbptt, eval_every=eval_every,
                         profile_every=profile_every, seed=seed, device=device(device_name),
                         fixed_batch=fixed_batch)  # fmt: skip
        config = RunConfig(**Setting.specs(_with_layers(arch, layers), task), length=length,
                           hidden_size=hidden, train=tc)  # fmt: skip
        env = fingerprint()
        with Store(db) as store:
            record = store.finished(RUN_KIND, config, env) if not force else None
            if record is None:
                store.put_output(RUN_KIND, config, train_run(config), env=env)
                record = store.finished(RUN_KIND, config, env)
            assert record is not None
            series: dict[str, Any] = {  # per-step lists; evaluations as [step, value]
                k: [list(p) for p in vals] if k.startswith("eval_") else [v for _, v in vals]
                for k, vals in store.metrics(record).items()
            }
    res = {**record.result, **series, "arch": arch, "task": task, "length": length}
    if as_json:
        return emit_json(res)
    t = Table(
        title=f"{arch} on {task}, T={length}: {res['steps_run']} {optimizer} steps, "
        f"lr {lr:g}, batch {batch}, clip {clip}",
        show_header=False,
    )
    for k, v in (
        ("held-out accuracy", f"{sci(res['accuracy'])} (chance {res['chance']:.3g})"),
        ("held-out loss", f"{sci(res['loss'])} (memoryless baseline {res['baseline_loss']:.3g})"),
        ("diverged", "no" if not res["diverged"] else f"yes, at step {res['diverged_at_step']}"),
        ("||dL/dh_0|| first step", sci(res["grad_h0_init"])),
        ("||dL/dh_0|| last step", sci(res["grad_h0_final"])),
    ):
        t.add_row(k, v)
    out.print(t)


COMMANDS = {"profile": profile, "diagnose": diagnose, "train": train}
