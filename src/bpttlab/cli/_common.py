"""What every command shares: options, parsing, errors and printing. Imports no torch.

Conventions (DESIGN.md): every command takes ``--json`` (one JSON document on stdout, nothing
else there) and ``--seed``; tables go to stdout, progress bars to stderr; bad input exits 2 with
one line naming the option, the value and what is allowed. List-valued options take their
values space-separated (``--lengths 10 20 50``) or comma-separated (``--lengths 10,20,50``).

The library checks every value and raises ``ConfigError(field, value, allowed)``; the command
line names the option the user typed for that field (``FIELD_OPTIONS``, or a command's own map
given to :func:`options`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table as _RichTable

from bpttlab._util import ConfigError, dumps, sci

__all__ = [
    "ARCH_HELP",
    "DB_OPT",
    "DEVICE_OPT",
    "FORCE_OPT",
    "JSON_OPT",
    "LIST_OPTIONS",
    "SEED_OPT",
    "TASK_HELP",
    "Table",
    "WORKERS_OPT",
    "bad",
    "check_positive",
    "writable_folder",
    "device",
    "emit_json",
    "err",
    "join_list_options",
    "options",
    "out",
    "parse_list",
    "positive_ints",
    "sci",
    "seeds_option",
    "usage_error",
]

out = Console(highlight=False, soft_wrap=True)


class Table(_RichTable):
    """A rich table that never cuts a number short: a cell too wide for a narrow terminal wraps
    onto the next line (``overflow="fold"``) instead of ending in "…"."""

    def add_column(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(*args, **kwargs)


err = Console(stderr=True, highlight=False)

# Options whose value is a list: argv tokens after them are joined until the next option.
LIST_OPTIONS = ("--lengths", "--x", "--gains", "--activations", "--archs", "--radii", "--windows",
                "--optimizer", "--steps", "--task")  # fmt: skip
MAX_SEED = 2**32 - 1

JSON_OPT = typer.Option(False, "--json", help="Print one JSON document on stdout, nothing else.")
SEED_OPT = typer.Option(
    0, "--seed", min=0, max=MAX_SEED, help="Random seed (same seed => identical numbers)."
)
DB_OPT = typer.Option(
    Path("runs/bpttlab.db"), "--db", help="SQLite store for runs (resumable, cached)."
)
FORCE_OPT = typer.Option(False, "--force", help="Recompute even if the store has this run.")
DEVICE_OPT = typer.Option("cpu", "--device", help="cpu or cuda.")
MAX_WORKERS, MAX_SEEDS = 256, 1000
WORKERS_OPT = typer.Option(
    2, "--workers", min=1, max=MAX_WORKERS, help="Runs in parallel (1 = in this process)."
)


def seeds_option(n: int) -> Any:
    """``--seeds N``: seeds --seed .. --seed + N - 1 (at most MAX_SEEDS)."""
    return typer.Option(
        n, "--seeds", min=1, max=MAX_SEEDS, help="How many seeds: --seed .. --seed + N - 1."
    )


TASK_HELP = (
    "Task with options: copy-bit, latch, adding, copy-memory, digits, agreement; e.g. "
    "copy-bit:noise=0.5, adding:variant=modern, digits:permuted=true."
)
ARCH_HELP = "Architecture with options, e.g. rnn, lstm:forget_bias=one, rnn:activation=relu."

# library field -> the option that sets it (a command may map a field otherwise)
FIELD_OPTIONS = {
    "arch": "--arch", "archs": "--archs", "task": "--task", "tasks": "--task",
    "length": "--length", "lengths": "--lengths", "hidden_size": "--hidden",
    "batch_size": "--batch", "steps": "--steps", "lr": "--lr", "optimizer": "--optimizer",
    "optimizers": "--optimizer", "clip": "--clip", "clip_threshold": "--clip-threshold",
    "tbptt": "--tbptt", "eval_every": "--eval-every", "profile_every": "--profile-every",
    "train_steps": "--train-steps", "seed": "--seed", "seeds": "--seeds", "device": "--device",
    "margin": "--margin", "db": "--db", "weights": "--weights", "key": "--key",
    "workers": "--workers", "executor": "--executor", "address": "--address",
    "windows": "--windows", "radii": "--radii", "noise": "--noise", "dtype": "--dtype",
    "activation": "--activation", "activations": "--activations", "x": "--x",
    "threshold": "--threshold", "hidden": "--hidden", "gain": "--gain", "init": "--init",
    "eigenvalue": "--eigenvalue", "derivative": "--derivative", "k": "--k",
    "warmup": "--warmup", "every": "--every", "mode": "--mode", "inputs": "--inputs",
    "h0": "--h0", "norm_threshold": "--norm-threshold", "value_threshold": "--value-threshold",
    "model": "--model", "batch": "--batch", "out": "--out", "lesson": "--lesson",
}  # fmt: skip


def usage_error(option: str, message: str) -> typer.BadParameter:
    """A usage error (exit 2) whose one line names ``option``."""
    return typer.BadParameter(message, param_hint=f"'{option}'")


def bad(option: str, value: object, allowed: str) -> typer.BadParameter:
    return usage_error(option, f"{value!r} is not allowed: {allowed}")


def writable_folder(option: str, folder: Path) -> None:
    """Create ``folder`` (and its parents) for an output option, or refuse it by name."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise bad(
            option, str(folder), f"a folder that can be created here ({e.strerror})"
        ) from None


def option_of(field: str, fields: Mapping[str, str] | None = None) -> str:
    """The option that sets library field ``field`` (``--`` + the field otherwise)."""
    return (fields or {}).get(field) or FIELD_OPTIONS.get(field) or "--" + field.replace("_", "-")


@contextlib.contextmanager
def options(fields: Mapping[str, str] | None = None) -> Iterator[None]:
    """Re-raise the library's ``ConfigError`` as a usage error naming the command's option."""
    try:
        yield
    except ConfigError as error:
        raise bad(option_of(error.field, fields), error.value, error.allowed) from None


def parse_list(
    option: str, text: str, kind: Callable[[str], Any], allowed: str, split_commas: bool = True
) -> list[Any]:
    """Values separated by spaces or commas; by spaces only where a value may hold commas
    (architecture specs such as ``rnn:activation=relu,init=identity``)."""
    items = (text.replace(",", " ") if split_commas else text).split()
    if not items:
        raise bad(option, text, allowed)
    try:
        return [kind(s) for s in items]
    except ValueError:
        raise bad(option, text, allowed) from None


def positive_ints(option: str, text: str) -> list[int]:
    vals = parse_list(option, text, int, "a list of positive integers, e.g. 10 20 50")
    for v in vals:
        if v < 1:
            raise bad(option, v, "every value must be an int >= 1")
    return vals


def check_positive(option: str, value: int) -> int:
    if value < 1:
        raise bad(option, value, "must be an int >= 1")
    return value


def device(name: str) -> str:
    """``--device``: cpu, or cuda where a CUDA device is visible (torch imported only then)."""
    if name not in ("cpu", "cuda"):
        raise bad("--device", name, "choose one of cpu, cuda")
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise bad("--device", name, "no CUDA device is available here; use cpu")
    return name


def emit_json(data: Any) -> None:
    sys.stdout.write(dumps(data) + "\n")


def join_list_options(argv: Sequence[str]) -> list[str]:
    """``--lengths 10 20 50`` -> ``--lengths "10 20 50"``: one value, up to the next option."""

    def is_option(tok: str) -> bool:
        if not tok.startswith("-"):
            return False
        try:
            float(tok)
            return False  # a negative number is a value
        except ValueError:
            return True

    args, i = [], 0
    while i < len(argv):
        tok = argv[i]
        args.append(tok)
        i += 1
        if tok in LIST_OPTIONS:
            vals = []
            while i < len(argv) and not is_option(argv[i]):
                vals.append(argv[i])
                i += 1
            if vals:
                args.append(" ".join(vals))
    return args
