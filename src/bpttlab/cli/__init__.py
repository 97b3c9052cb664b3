"""The ``bpttlab`` command line (typer + rich): the app, built in one direction.

Each command module (``theory``, ``lab``, ``experiments``, ``audit``, ``tour``) imports only
``_common`` and lists its commands in ``COMMANDS``; this module registers them all on ``app``, so
``bpttlab.cli.app`` is complete whatever is imported first. Commands import the library (and
torch) inside their bodies, so ``bpttlab --help`` starts without torch.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import typer

from bpttlab import __version__
from bpttlab._util import ConfigError
from bpttlab.cli import audit, experiments, lab, theory, tour
from bpttlab.cli._common import join_list_options, option_of
from bpttlab.sweep import RunFailed

__all__ = ["Interrupted", "app", "main"]


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"bpttlab {__version__}\n")
        raise typer.Exit()


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="bpttlab: gradient flow through time in recurrent networks (vanishing/exploding).",
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """bpttlab: gradient flow through time in recurrent networks (vanishing/exploding)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM inside a command, carried past typer (which would swallow it)."""


def _guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as interrupt:
            raise Interrupted(str(interrupt) or "interrupted; finished runs are kept") from None

    return run


for _module in (theory, lab, experiments, audit, tour):
    for _name, _command in _module.COMMANDS.items():
        app.command(_name)(_guarded(_command))


def _error(message: str) -> None:
    """One line on stderr, never wrapped (rich would wrap at the terminal's width)."""
    sys.stderr.write("bpttlab: error: " + " ".join(message.split()) + "\n")


_TERMINATED: list[int] = []


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends a command as Ctrl-C does: sweeps stop their workers and keep their runs."""
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


# typer validates option values with pydantic, whose messages name neither the value nor, for a
# choice, anything but its own wording: rewritten here to "VALUE is not allowed: must be ...".
_PYDANTIC = (
    (re.compile(r"Input should be greater than or equal to (\S+)"), "must be >= {0}"),
    (re.compile(r"Input should be greater than (\S+)"), "must be > {0}"),
    (re.compile(r"Input should be less than or equal to (\S+)"), "must be <= {0}"),
    (re.compile(r"Input should be less than (\S+)"), "must be < {0}"),
    (re.compile(r"Input should be a valid (number|integer)\b.*"), "must be a valid {0}"),
    (re.compile(r"Value error, (.*?)\.?"), "{0}"),
)


def _raw_value(args: Sequence[str], opts: Sequence[str]) -> str | None:
    """What the user typed for an option (``--opt VALUE`` or ``--opt=VALUE``), or None."""
    for i, a in enumerate(args):
        for o in opts:
            if a == o and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(o + "="):
                return a[len(o) + 1 :]
    return None


def _usage_message(e: typer.TyperException, args: Sequence[str]) -> str:
    """A usage error's one line, with pydantic's wording replaced by the value and the rule."""
    message = e.format_message()
    param, text = getattr(e, "param", None), getattr(e, "message", "")
    if param is None or not isinstance(text, str):
        return message
    for pattern, rule in _PYDANTIC:
        m = pattern.fullmatch(text.strip())
        if m:
            value = _raw_value(args, list(param.opts))
            shown = (
                ""
                if value is None or text.startswith("Value error")
                else f"{value!r} is not allowed: "
            )
            name = " / ".join(f"'{o}'" for o in sorted(param.opts, key=len, reverse=True))
            return f"Invalid value for {name}: {shown}{rule.format(*m.groups())}"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: one-line errors, exit 2 for usage errors, never a traceback."""
    args = join_list_options(list(sys.argv[1:] if argv is None else argv))
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        rv = app(args=args, prog_name="bpttlab", standalone_mode=False)
    except (KeyboardInterrupt, Interrupted) as interrupt:
        _error(str(interrupt) or "interrupted; finished runs are kept in the store")
        return 143 if _TERMINATED else 130
    except typer.Abort:
        _error("interrupted; finished runs are kept in the store")
        return 130
    except typer.Exit as done:
        return done.exit_code
    except typer.TyperException as e:  # usage errors: bad option, bad value, missing argument
        ctx = getattr(e, "ctx", None)
        if ctx is not None and ctx.parent is None and not args:  # plain `bpttlab`
            _error("a command is missing; 'bpttlab --help' lists them, e.g. 'bpttlab tour'")
            return 2
        hint = f" (see 'bpttlab {ctx.info_name} --help')" if ctx and ctx.parent else ""
        _error(f"{_usage_message(e, args)}{hint}")
        return getattr(e, "exit_code", 2)
    except ConfigError as e:  # a value the library refused, outside any command's own map
        _error(f"Invalid value for '{option_of(e.field)}': {e.value!r} is not allowed: "
               f"{e.allowed}")  # fmt: skip
        return 2
    except (ValueError, OSError) as e:  # bad input found by the library itself (or the disk)
        if os.environ.get("BPTTLAB_DEBUG"):
            raise
        _error(str(e))
        return 2
    except RunFailed as e:  # runs that raised: stored as failed, retried by the next call
        _error(str(e))
        return 1
    except MemoryError:
        _error("out of memory: give smaller sizes (--hidden, --length, --batch)")
        return 1
    except Exception as e:  # a bug of ours: one line, the traceback only when asked for
        if os.environ.get("BPTTLAB_DEBUG"):
            raise
        _error(f"internal error: {type(e).__name__}: {e} (BPTTLAB_DEBUG=1 shows the traceback; "
               "please report it)")  # fmt: skip
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return rv if isinstance(rv, int) else 0
