"""Small helpers shared by every module: validation, JSON, number formatting, time, progress.

One validation path: every check raises :class:`ConfigError`, a ``ValueError`` that keeps the
field's name, the bad value and what is allowed, so that the command line can name the option
the user typed (``--steps``) where the library names its argument (``steps``).

Nothing here imports torch (the store and the command line's start-up depend on that).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np

__all__ = [
    "ConfigError",
    "available_memory",
    "check_memory",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "dumps",
    "is_int",
    "jsonable",
    "now",
    "progress",
    "sci",
]


class ConfigError(ValueError):
    """A bad value for one named field.

    Attributes:
        field: the argument or config field, e.g. ``"steps"``.
        value: the value given.
        allowed: what is allowed, e.g. ``"must be an int >= 1"``.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is not allowed: {allowed}")


def is_int(value: Any) -> bool:
    """An integer that is not a bool (numpy integers count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(field: str, value: Any, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (either end may be None), else ConfigError."""
    ok = is_int(value)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum is not None and maximum is not None:
            what = f"must be an int in [{minimum}, {maximum}]"
        elif minimum is not None:
            what = f"must be an int >= {minimum}"
        else:
            what = f"must be an int <= {maximum}" if maximum is not None else "must be an int"
        raise ConfigError(field, value, what)
    return int(value)


def check_float(
    field: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float within the bounds given (open or closed), else ConfigError."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if number else math.nan
    ok = math.isfinite(v)
    ok = ok and (low is None or (v > low if low_open else v >= low))
    ok = ok and (high is None or (v < high if high_open else v <= high))
    if not ok:
        if low is not None and high is not None:
            where = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            where = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            where = f" {'<' if high_open else '<='} {high:g}"
        else:
            where = ""
        raise ConfigError(field, value, "must be a finite number" + where)
    return v


def check_choice(field: str, value: Any, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else ConfigError listing them."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(field, value, f"choose one of {', '.join(allowed)}")
    return value


def check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(field, value, "must be True or False")
    return bool(value)


# ---------------------------------------------------------------- memory
def available_memory() -> int | None:
    """Bytes this process may still allocate: the system's available memory, or the address
    space limit (``ulimit -v``) if that is lower; None where neither can be read."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(max(0, soft - _resident()))
    except (ImportError, ValueError, OSError):
        pass
    return min(found) if found else None


def _resident() -> int:
    """Bytes of address space this process already uses (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            import os

            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def check_memory(field: str, value: Any, needed: float, what: str) -> None:
    """Refuse, naming ``field``, work that needs more memory than this process can get: the
    estimate comes before any allocation, so an oversized request fails at once, not after
    minutes and gigabytes."""
    free = available_memory()
    if free is not None and needed > 0.8 * free:
        raise ConfigError(field, value, f"{what} needs about {_size(needed)} of memory; "
                          f"{_size(free)} is available here")  # fmt: skip


# ---------------------------------------------------------------- JSON
def jsonable(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts: numpy to Python,
    non-finite floats to None (JSON has no inf or NaN), objects with ``to_dict`` to dicts."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def dumps(obj: Any, **kw: Any) -> str:
    """Strict JSON text of :func:`jsonable` ``(obj)``."""
    return json.dumps(jsonable(obj), allow_nan=False, **kw)


# ---------------------------------------------------------------- printing, time, progress
def sci(value: float | None, digits: int = 3) -> str:
    """``1.23e-05``-style short figure; "—" for None (no value, or not finite in JSON)."""
    return "—" if value is None else f"{value:.{digits}g}"


def now() -> str:
    """UTC time, ISO 8601 to the millisecond: when a stored run started or finished."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def progress(label: str, enabled: bool = True, *fields: str) -> Any:
    """A rich progress bar on stderr (stdout stays clean for ``--json``), shown only when
    ``enabled`` and stderr is a terminal. ``fields`` are extra ``task.fields`` shown after it."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(f"{f} {{task.fields[{f}]}}") for f in fields]
    return Progress(*columns, TimeRemainingColumn(), console=console, transient=True,
                    disable=not enabled or not console.is_terminal)  # fmt: skip
