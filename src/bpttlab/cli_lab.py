"""``bpttlab`` commands on real PyTorch models: profile, diagnose (and the training experiments).

Registered on the one typer app of :mod:`bpttlab.cli`; the same conventions hold (``--json``,
``--seed``, ``--device``, ``--db``, one-line errors with exit code 2).
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from rich.markup import escape
from rich.table import Table
from torch import nn

from ._json import jsonable
from .cli import JSON_OPT, SEED_OPT, _bad, _check_positive, app, emit_json, err, out
from .store import DEFAULT_DB, Store, cached

DB_OPT = typer.Option(DEFAULT_DB, "--db", help="SQLite store for runs (resumable, cached).")
FORCE_OPT = typer.Option(False, "--force", help="Recompute even if the store has this run.")
DEVICE_OPT = typer.Option("cpu", "--device", help="cpu or cuda.")
TASK_HELP = (
    "Task with options: copy-bit, latch, adding, copy-memory, digits, agreement; e.g. "
    "copy-bit:noise=0.5, adding:variant=modern, digits:permuted=true."
)
ARCH_HELP = "Architecture with options, e.g. rnn, lstm:forget_bias=one, rnn:activation=relu."


def _device(device: str) -> str:
    if device not in ("cpu", "cuda"):
        raise _bad("--device", device, "one of: cpu, cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise _bad("--device", device, "no CUDA device is available here; use cpu")
    return device


# TrainConfig field -> the CLI option that sets it
TRAIN_OPTIONS = {
    "batch_size": "--batch",
    "clip_threshold": "--clip-threshold",
    "eval_every": "--eval-every",
    "profile_every": "--profile-every",
}


@contextmanager
def _options_named(fields: dict[str, str]):
    """Re-raise a config's ``field=value`` ValueError as a usage error naming the CLI option."""
    try:
        yield
    except ValueError as e:
        field, sep, rest = str(e).partition("=")
        if not sep or not field.isidentifier():
            raise
        raise typer.BadParameter(
            f"{rest.partition(' ')[0]} {rest.partition(' ')[2]}",
            param_hint=f"'{fields.get(field, '--' + field)}'",
        ) from None


def _task(spec: str, length: int):
    """A task from a spec such as ``copy-bit:noise=0.5`` (see ``tasks.parse_task``)."""
    from .tasks import get_task, parse_task

    name, options = parse_task(spec)
    return get_task(name, length, **options)


def _model_and_task(config: dict[str, Any], seed: int):
    """The model (initialised under ``torch.manual_seed(seed)``) and task a run config names:
    keys arch (a spec), task (a spec), length, hidden, layers."""
    from .models import build, parse_arch

    name, options = parse_arch(config["arch"])
    if config["layers"] != 1:
        options["num_layers"] = config["layers"]
    task = _task(config["task"], config["length"])
    torch.manual_seed(seed)
    model = build(name, task.input_size, config["hidden"], task.output_size, **options)
    return model, task


def _diagnosis_dict(diagnosis) -> dict[str, Any]:
    d = diagnosis.to_dict()
    d["decay_rate"] = d["rate_per_step"]  # natural log per step back, the name for it
    return d


# ---------------------------------------------------------------------------------------------
# profile
# ---------------------------------------------------------------------------------------------


def run_profile(config: dict[str, Any]) -> dict[str, Any]:
    """Build (and optionally train) a model on a task, then take its gradient profile.

    ``config`` keys: arch, task, length, layers, hidden, batch, train_steps, lr, seed, device,
    dtype (the profile's arithmetic: float32 underflows to exact zeros near 1e-45, float64 not).
    Returns the JSON document ``bpttlab profile --json`` prints.
    """
    from .diagnose import diagnose_profile
    from .probe import gradient_profile
    from .train import TrainConfig, train

    model, task = _model_and_task(config, config["seed"])
    trained = None
    if config["train_steps"] > 0:
        tc = TrainConfig(
            steps=config["train_steps"],
            lr=config["lr"],
            batch_size=config["batch"],
            seed=config["seed"],
            device=config["device"],
        )
        res = train(model, task, tc, progress=True)
        trained = {
            "steps": res.steps_run,
            "accuracy": res.accuracy,
            "loss": res.loss,
            "diverged": res.diverged,
        }
    dtype = {"float32": torch.float32, "float64": torch.float64}[config["dtype"]]
    model = model.to(device=config["device"], dtype=dtype)
    gen = torch.Generator().manual_seed(config["seed"] + 1)
    batch = task.sample(config["batch"], gen, split="test").to(config["device"])
    x = batch.x.to(dtype)  # (B, T, I)
    prof = gradient_profile(model, x, lambda o: task.loss(o[0], batch))
    diag = diagnose_profile(prof, model)
    return jsonable(
        {
            "arch": config["arch"],
            "task": config["task"],
            "length": config["length"],
            # steps in the sequence: the task's length, except agreement (T + 2), copy-memory
            # (L + 20) and the original adding problem (T..T + T/10, drawn per batch)
            "T": prof.T,
            "norms": prof.norms,
            "log10_norms": prof.log10_norms,
            "float32_underflow_at": prof.float32_underflow_at,
            "method": prof.method,
            "loss": prof.loss,
            "trained": trained,
            "diagnosis": _diagnosis_dict(diag),
            "config": config,
        }
    )


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


def _print_diagnosis(d: dict[str, Any]) -> None:
    rate = d["decay_rate"]
    rate_txt = "—" if rate is None else f"{rate:+.4f} per step (x{math.exp(rate):.4g})"
    out.print(
        f"verdict: [bold]{d['verdict']}[/bold]   ||dL/dh_0|| / ||dL/dh_T|| = "
        f"{_sci(d['ratio'])}   decay rate: {rate_txt}"
    )
    out.print(
        f"horizon: {d['horizon'] if d['horizon'] is not None else 'beyond T'} steps back "
        f"to 1e-3 of the readout's gradient; float32 underflow "
        f"{d['horizon_float32'] if d['horizon_float32'] is not None else 'not reached'}"
    )
    for a in d["advice"]:
        ev = ", ".join(
            f"{k}={_sci(v) if isinstance(v, float) else v}" for k, v in a["evidence"].items()
        )
        out.print(f"  - {escape(a['text'])}  [dim]({escape(ev)})[/dim]")


def _sci(v: float | None) -> str:
    return "—" if v is None else f"{v:.3g}"


@app.command()
def profile(
    arch: str = typer.Option("rnn", "--arch", help=ARCH_HELP),
    task: str = typer.Option("copy-bit", "--task", help=TASK_HELP),
    length: int = typer.Option(200, "--length", help="Sequence length T."),
    layers: int = typer.Option(1, "--layers", help="Stacked layers (where the arch has them)."),
    hidden: int = typer.Option(32, "--hidden", help="Hidden size H."),
    batch: int = typer.Option(64, "--batch", help="Batch size for the profile (and training)."),
    train_steps: int = typer.Option(0, "--train-steps", help="Adam steps before profiling."),
    lr: float = typer.Option(1e-2, "--lr", help="Learning rate when training."),
    dtype: str = typer.Option("float32", "--dtype", help="Profile arithmetic: float32|float64."),
    every: int | None = typer.Option(None, "--every", help="Table rows every K steps."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of log10 ||dL/dh_t|| vs t."),
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """||dL/dh_t|| for every time step of a model on a task, and its diagnosis."""
    from .models import parse_arch

    parse_arch(arch)  # fail fast on a bad spec, before touching the store
    for opt, v in (
        ("--length", length),
        ("--layers", layers),
        ("--hidden", hidden),
        ("--batch", batch),
    ):
        _check_positive(opt, v)
    with _options_named({"task": "--task", "length": "--length"}):
        _task(task, length)
    if train_steps < 0:
        raise _bad("--train-steps", train_steps, "must be >= 0")
    if every is not None:
        _check_positive("--every", every)
    if dtype not in ("float32", "float64"):
        raise _bad("--dtype", dtype, "one of: float32, float64")
    config = {
        "dtype": dtype,
        "arch": arch,
        "task": task,
        "length": length,
        "layers": layers,
        "hidden": hidden,
        "batch": batch,
        "train_steps": train_steps,
        "lr": lr,
        "seed": seed,
        "device": _device(device),
    }
    with Store(db) as store:
        doc = cached(store, "profile", config, lambda: run_profile(config), force=force)
    if plot:
        from .plots import plot_profile

        plot_profile(
            np.array([np.nan if v is None else v for v in doc["norms"]]),
            plot,
            title=f"{arch} on {task}, T={doc['T']}",
        )
    if as_json:
        return emit_json(doc)
    _print_profile_table(doc, every)


# ---------------------------------------------------------------------------------------------
# diagnose: a user's own model
# ---------------------------------------------------------------------------------------------


def _load_object(ref: str, option: str):
    """``path.py:name`` -> the object ``name`` defined in that file."""
    path, _, name = ref.rpartition(":")
    if not path or not name:
        raise _bad(option, ref, "PATH.py:NAME, e.g. examples/my_model.py:factory")
    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        raise _bad(option, ref, f"{path} is not an existing .py file")
    spec = importlib.util.spec_from_file_location(f"_bpttlab_user_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise _bad(option, ref, f"{path} defines no {name!r}")
    return getattr(module, name)


def _auto_probe(model: nn.Module) -> dict[str, Any]:
    """Find the recurrent module to probe in a model the factory did not describe."""
    if isinstance(model, nn.RNNBase | torch.jit.ScriptModule):
        return {}
    rnns = [m for m in model.modules() if isinstance(m, nn.RNNBase)]
    cells = [m for m in model.modules() if isinstance(m, nn.RNNCellBase)]
    if len(rnns) == 1:
        return {"rnn": rnns[0]}
    if len(cells) == 1:
        return {"cell": cells[0]}
    raise ValueError(
        "--model: cannot tell which module carries h_t; return {'model': m, 'probe': "
        "{'cell': m.cell}} (or {'rnn': m.rnn}) from the factory"
    )


_FUSED = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


def _load_torchscript(path: str) -> nn.Module:
    """A TorchScript ``nn.RNN``/``nn.LSTM``/``nn.GRU`` as the eager module with the same weights:
    a script module cannot be patched, and the probe must reach the fused kernel's inputs."""
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; such files still exist
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            scripted = torch.jit.load(path, map_location="cpu")
        except RuntimeError as e:
            raise _bad(
                "--model",
                path,
                f"not a TorchScript file (torch.jit.load: {str(e).splitlines()[0]})",
            ) from None
    kind = getattr(scripted, "original_name", "")
    if kind not in _FUSED:
        raise _bad(
            "--model",
            path,
            "a TorchScript file must hold an nn.RNN, nn.LSTM or nn.GRU "
            f"(this one holds {kind or 'something else'}); for your own model, pass "
            "PATH.py:FACTORY",
        )
    kw = {
        k: getattr(scripted, k)
        for k in (
            "input_size",
            "hidden_size",
            "num_layers",
            "bias",
            "batch_first",
            "bidirectional",
            "dropout",
        )
    }
    if kind == "LSTM":
        kw["proj_size"] = scripted.proj_size
    if kind == "RNN":
        kw["nonlinearity"] = "relu" if scripted.mode == "RNN_RELU" else "tanh"
    eager = _FUSED[kind](**kw)
    eager.load_state_dict(scripted.state_dict())
    return eager


def _default_batch(input_size: int, length: int, batch: int, seed: int):
    """A remember-the-first-input batch: x (B, T, I) noise with the class sign at step 0."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 2, (batch,), generator=gen)  # (B,)
    x = 0.1 * torch.randn(batch, length, input_size, generator=gen)  # (B, T, I)
    x[:, 0, :] = (2.0 * target - 1.0)[:, None]
    return x, target


def _first(output):
    return output[0] if isinstance(output, tuple | list) else output


@app.command()
def diagnose(
    model_ref: str = typer.Option(..., "--model", help="PATH.py:FACTORY, or a TorchScript .pt"),
    batch_ref: str | None = typer.Option(
        None, "--batch", help="PATH.py:MAKE_BATCH -> x or (x, target)."
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
    Without a loss, L = sum of the output at the last step.
    """
    from .diagnose import diagnose_profile
    from .probe import gradient_profile

    for opt, v in (
        ("--input-size", input_size),
        ("--output-size", output_size),
        ("--length", length),
        ("--batch-size", batch),
    ):
        _check_positive(opt, v)
    torch.manual_seed(seed)
    loss, probe = None, None
    if model_ref.endswith(".pt"):
        if not Path(model_ref).is_file():
            raise _bad("--model", model_ref, "no such TorchScript file")
        model = _load_torchscript(model_ref)
    else:
        try:
            made = _load_object(model_ref, "--model")(input_size, output_size)
        except TypeError as e:
            raise _bad(
                "--model",
                model_ref,
                f"FACTORY(input_size, output_size) must accept two arguments ({e})",
            ) from None
        if isinstance(made, dict):
            model, loss, probe = made["model"], made.get("loss"), made.get("probe")
        elif isinstance(made, tuple):
            model, loss = made
        else:
            model = made
    if not isinstance(model, nn.Module):
        raise _bad(
            "--model",
            model_ref,
            f"the factory returned a {type(model).__name__}, not a torch.nn.Module",
        )
    probe = _auto_probe(model) if probe is None else probe
    # where time runs: dim 1 (batch_first, bpttlab's and most user models') or dim 0, the
    # default of a bare nn.RNN/LSTM/GRU
    rnn = probe.get("rnn", model if isinstance(model, nn.RNNBase) else None)
    time_dim = 0 if rnn is not None and not rnn.batch_first else 1
    if batch_ref:
        try:
            made_batch = _load_object(batch_ref, "--batch")()
        except TypeError as e:
            raise _bad("--batch", batch_ref, f"MAKE_BATCH() must take no arguments ({e})") from None
        x, target = made_batch if isinstance(made_batch, tuple) else (made_batch, None)
    else:
        x, target = _default_batch(input_size, length, batch, seed)  # (B, T, I)
        if time_dim == 0:
            x = x.transpose(0, 1).contiguous()  # (T, B, I)
    if loss is not None and target is not None:
        loss_fn = lambda o: loss(o, target)  # noqa: E731
    else:  # the readout at step T
        loss_fn = lambda o: _first(o).select(time_dim, -1).sum()  # noqa: E731
    prof = gradient_profile(model, x, loss_fn, **probe)
    d = _diagnosis_dict(diagnose_profile(prof, model, **probe))
    doc = {
        "model": model_ref,
        "length": int(prof.T),
        "norms": prof.norms,
        "log10_norms": prof.log10_norms,
        "method": prof.method,
        "diagnosis": d,
    }
    if as_json:
        return emit_json(doc)
    err.print(f"profiled {model_ref} on x of shape {tuple(x.shape)} ({prof.method})", markup=False)
    _print_diagnosis(d)


# ---------------------------------------------------------------------------------------------
# train: one run
# ---------------------------------------------------------------------------------------------


def run_train(config: dict[str, Any]):
    """Build the model and task of ``config``, train, and return a store ``RunOutput``.

    ``config`` keys: arch, task, length, hidden, layers, and ``train`` (a ``TrainConfig`` dict).
    The result is ``TrainResult.to_dict()`` plus the task's chance level; per-step series also go
    to the store's metrics table and the profiles to its profiles table.
    """
    from .store import RunOutput
    from .train import TrainConfig, train

    tc = TrainConfig.from_dict(config["train"])
    model, task = _model_and_task(config, tc.seed)
    result = train(model, task, tc, progress=True)
    res = result.to_dict()  # JSON-safe: NaN/Inf -> None
    res.update(
        arch=config["arch"],
        task_name=config["task"],
        length=config["length"],
        chance=task.chance,
        baseline_loss=task.baseline_loss,
    )
    # raw series (NaN kept: the store writes it as SQL NULL) for the metrics table
    metrics = {
        k: getattr(result, k) for k in ("train_loss", "grad_h0", "grad_norm", "clipped_grad_norm")
    }
    profiles = {p["step"]: p["norms"] for p in result.profiles}
    return RunOutput(jsonable(res), metrics=metrics, profiles=profiles, seed=tc.seed)


@app.command("train")
def train_cmd(
    arch: str = typer.Option("lstm", "--arch", help=ARCH_HELP),
    task: str = typer.Option("copy-bit", "--task", help=TASK_HELP),
    length: int = typer.Option(20, "--length", help="Sequence length T (dependency length)."),
    hidden: int = typer.Option(32, "--hidden", help="Hidden size H."),
    layers: int = typer.Option(1, "--layers", help="Stacked layers (where the arch has them)."),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam, rmsprop or sgd."),
    lr: float = typer.Option(1e-2, "--lr", help="Learning rate."),
    steps: int = typer.Option(300, "--steps", help="Optimiser steps."),
    batch: int = typer.Option(64, "--batch", help="Batch size."),
    clip: str = typer.Option("none", "--clip", help="Gradient clipping: none, norm or value."),
    clip_threshold: float = typer.Option(1.0, "--clip-threshold", help="Clipping threshold."),
    tbptt: int | None = typer.Option(None, "--tbptt", help="Truncated BPTT window k."),
    fixed_batch: bool = typer.Option(False, "--fixed-batch", help="Train on one batch (lesson)."),
    eval_every: int | None = typer.Option(None, "--eval-every", help="Evaluate every N steps."),
    profile_every: int | None = typer.Option(
        None, "--profile-every", help="Full ||dL/dh_t|| profile every N steps."
    ),
    db: Path = DB_OPT,
    force: bool = FORCE_OPT,
    device: str = DEVICE_OPT,
    as_json: bool = JSON_OPT,
    seed: int = SEED_OPT,
) -> None:
    """Train one model on one task; report accuracy, loss, divergence and ||dL/dh_0|| per step."""
    from .models import parse_arch
    from .train import TrainConfig

    parse_arch(arch)
    for opt, v in (("--length", length), ("--hidden", hidden), ("--layers", layers)):
        _check_positive(opt, v)
    with _options_named({"task": "--task", "length": "--length"}):
        _task(task, length)
    with _options_named(TRAIN_OPTIONS):
        tc = TrainConfig(
            optimizer=optimizer,
            lr=lr,
            steps=steps,
            batch_size=batch,
            clip=clip,
            clip_threshold=clip_threshold,
            tbptt=tbptt,
            eval_every=eval_every,
            profile_every=profile_every,
            seed=seed,
            device=_device(device),
            fixed_batch=fixed_batch,
        )
    config = {
        "arch": arch,
        "task": task,
        "length": length,
        "hidden": hidden,
        "layers": layers,
        "train": tc.to_dict(),
    }
    with Store(db) as store:
        res = cached(store, "train", config, lambda: run_train(config), force=force)
    if as_json:
        return emit_json(res)
    t = Table(
        title=f"{arch} on {task}, T={length}: {res['steps_run']} {optimizer} steps, "
        f"lr {lr:g}, batch {batch}, clip {clip}",
        show_header=False,
    )
    g = res["grad_h0"]
    for k, v in (
        ("held-out accuracy", f"{_sci(res['accuracy'])} (chance {res['chance']:.3g})"),
        ("held-out loss", f"{_sci(res['loss'])} (memoryless baseline {res['baseline_loss']:.3g})"),
        ("diverged", "no" if not res["diverged"] else f"yes, at step {res['diverged_at_step']}"),
        ("||dL/dh_0|| first step", _sci(g[0] if g else None)),
        ("||dL/dh_0|| last step", _sci(g[-1] if g else None)),
    ):
        t.add_row(k, v)
    out.print(t)
