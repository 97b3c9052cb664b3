"""Gradient flow through time inside a user's own training loop.

    mon = GradientFlowMonitor(model, every=10)        # or rnn=model.encoder, or cell=model.cell
    for step, (x, y) in enumerate(loader):
        with mon.step(step):                          # probes this step's forward and backward
            loss = loss_fn(model(x), y)
            loss.backward()
        opt.step(); opt.zero_grad()
    mon.records    # [{"step": 0, "t": [...], "norms": [...], "ratio": ..., "verdict": ...}, ...]

On a due step (``step % every == 0``) probes are attached before the user's forward and read
after the user's backward: the profile of the very step being trained, no second pass. An
nn.RNN/LSTM/GRU is read by replay (``probe.py``: its kernel runs untouched and the hidden-state
recursion ``dL/dh_{t-1} = dL/dout_{t-1} + J_t^T dL/dh_t`` is replayed afterwards from its
outputs' gradients); a cell by a zero probe added to each output (``h + 0 = h``). Either way the
loss and every parameter gradient are bitwise those of an unmonitored run. On the other steps
nothing is attached: no hook, no patch, no cost. Hooks and patches are removed when the step
ends, also when the user's code raises inside the ``with``.

Each record keeps ``||dL/dh_t||`` at up to ``max_points`` steps t (both ends always kept; ``t``
lists them) and, from the full profile, what ``diagnosis.diagnose_profile`` says: the ratio
``||dL/dh_0|| / ||dL/dh_T||``, the fitted rate per step, the horizon and the verdict. Records go
to ``records``, to any sinks (``sink.write(record)``: ``integrations.tensorboard``, or any
callable) and to a store: one run of kind "monitor" per monitor, rewritten as records come
(status "running", then "done" at :meth:`close`), with metrics and profiles per step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from bpttlab._util import ConfigError, check_int, now
from bpttlab.cells import CellStack
from bpttlab.diagnosis import diagnose_profile
from bpttlab.probe import METHODS, Probes, Profile, attach, find_recurrent
from bpttlab.store import Store

__all__ = ["MONITOR_KIND", "GradientFlowMonitor", "thin"]

MONITOR_KIND = "monitor"


def thin(T: int, max_points: int) -> np.ndarray:
    """Indices t in 0..T, at most ``max_points`` of them, evenly spread, 0 and T included."""
    if T + 1 <= max_points:
        return np.arange(T + 1)
    return np.unique(np.round(np.linspace(0, T, max_points)).astype(int))


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _check_part(
    model: nn.Module, field: str, part: Any, kinds: tuple[type, ...], what: str
) -> None:
    """``rnn=``/``cell=`` must be a module of ``model`` of the right kind: hooks on anything
    else would never fire."""
    if part is None:
        return
    if not isinstance(part, kinds):
        raise ConfigError(field, type(part).__name__, what)
    if not any(m is part for m in model.modules()):
        raise ConfigError(field, type(part).__name__, f"{what}; this one is not part of the model")


class GradientFlowMonitor:
    """``||dL/dh_t||`` over t and training steps, in the user's own loop.

    Arguments:
        model: the module the loop trains: a bpttlab model, an nn.RNN/LSTM/GRU, or any module
            holding exactly one nn.RNN/LSTM/GRU (or one RNN cell), found by
            ``probe.find_recurrent``; else name it with ``rnn=`` or ``cell=``.
        every: profile the steps whose number is a multiple of ``every``.
        rnn, cell: as in ``probe.gradient_profile``.
        store: a ``Store`` (or its path) to write the run to; None for none.
        sink: an object with ``write(record)`` (and optionally ``close()``), a callable taking a
            record, or a list of them.
        max_points: how many steps t a record keeps (>= 2).
        method: the probe's method; None: "replay" for an nn.RNN/LSTM/GRU (bitwise neutral),
            hooks for cells. "fused" and "unrolled" change the forward's rounding (not its
            values): the trained parameters then drift from an unmonitored run's in the last
            bits.
        name: the run's name in the store.
    """

    def __init__(
        self,
        model: nn.Module,
        every: int = 10,
        *,
        rnn: nn.Module | None = None,
        cell: nn.Module | Sequence[nn.Module] | None = None,
        store: Store | str | Path | None = None,
        sink: Any = None,
        max_points: int = 200,
        method: str | None = None,
        name: str = "monitor",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError("model", type(model).__name__, "must be a torch.nn.Module")
        self.every = check_int("every", every)
        self.max_points = check_int("max_points", max_points, 2)
        self.model = model
        if rnn is not None and cell is not None:
            raise ConfigError("cell", type(cell).__name__, "give rnn= or cell=, not both")
        _check_part(model, "rnn", rnn, (nn.RNNBase, CellStack),
                    "the model's own nn.RNN/LSTM/GRU module")  # fmt: skip
        cells = [cell] if isinstance(cell, nn.Module) or cell is None else cell
        if not isinstance(cells, Sequence):
            raise ConfigError("cell", type(cell).__name__, "a module of the model, or a list")
        for c in cells:
            _check_part(model, "cell", c, (nn.Module,), "the model's own recurrent cell module(s)")
        if store is not None and not isinstance(store, Store | str | Path):
            raise ConfigError(
                "store", type(store).__name__, "a Store or the path of an SQLite file"
            )
        self.where: dict[str, Any] = (
            {"rnn": rnn} if rnn is not None else {"cell": cell} if cell is not None
            else find_recurrent(model)
        )  # fmt: skip
        if method is None:
            probes_a_kernel = "cell" not in self.where and not _cell_model(model, self.where)
            method = "replay" if probes_a_kernel else "auto"
        if method not in METHODS:
            raise ConfigError("method", method, f"choose one of {', '.join(METHODS)} or None")
        self.method = method
        self.name = name
        self.records: list[dict[str, Any]] = []
        self._sinks = _sinks(sink)
        self._own_store = store is not None and not isinstance(store, Store)
        self.store = store if isinstance(store, Store) else Store(store) if store else None
        self.config = {"name": name, "model": type(model).__name__, "every": self.every,
                       "max_points": self.max_points, "method": method,
                       "started": now()}  # fmt: skip
        self._active: tuple[int, contextlib.ExitStack, Probes] | None = None
        self._closed = False

    # ------------------------------------------------------------ the step protocol
    def due(self, step: int) -> bool:
        """Whether step ``step`` is profiled."""
        return step % self.every == 0

    @contextlib.contextmanager
    def step(self, step: int) -> Iterator[None]:
        """Run one training step's forward and backward inside this ``with``. When the step is
        due, probes are attached on entry and read on exit; an exception inside the ``with``
        removes them and propagates unchanged."""
        started = self.start(step)
        try:
            yield
        except BaseException:
            self.cancel()
            raise
        if started:
            self.finish()

    def start(self, step: int) -> bool:
        """Attach probes if ``step`` is due (for callbacks: :meth:`finish` after the backward,
        :meth:`cancel` on failure). Returns whether it did."""
        check_int("step", step, 0)
        if self._closed:
            raise ValueError("this GradientFlowMonitor is closed")
        if self._active is not None:
            raise ValueError(f"step {self._active[0]} was started and never finished: call "
                             "finish() after its backward, or cancel()")  # fmt: skip
        if not self.due(step):
            return False
        stack = contextlib.ExitStack()
        probes = stack.enter_context(attach(self.model, method=self.method, **self.where))
        self._active = (step, stack, probes)
        return True

    def finish(self) -> dict[str, Any] | None:
        """Detach the probes and record the profile of the step started; None if none was."""
        if self._active is None:
            return None
        step, stack, probes = self._active
        self._active = None
        stack.close()  # hooks and patches off before anything else can fail
        if not probes.reached():
            raise ValueError(f"step {step}: no gradient reached the probes; run the forward and "
                             "loss.backward() inside `with monitor.step(step):`")  # fmt: skip
        return self.record(step, probes.profile())

    def cancel(self) -> None:
        """Detach the probes of a started step without recording it."""
        if self._active is not None:
            _, stack, _ = self._active
            self._active = None
            stack.close()

    # ------------------------------------------------------------ records
    def record(self, step: int, profile: Profile) -> dict[str, Any]:
        """Turn a profile into a record; keep it, store it and send it to the sinks."""
        d = diagnose_profile(profile)
        t = thin(profile.T, self.max_points)
        rec = {
            "step": int(step),
            "T": profile.T,
            "t": t.tolist(),
            "norms": [float(v) for v in profile.norms[t]],
            "ratio": d.ratio,
            "rate": d.rate_per_step,
            "horizon": d.horizon,
            "verdict": d.verdict,
            "method": profile.method,
        }
        self.records.append(rec)
        self._write_store("running")
        for sink in self._sinks:
            sink(rec)
        return rec

    def _write_store(self, status: str) -> None:
        if self.store is None:
            return
        meta = [{k: v for k, v in r.items() if k != "norms"} for r in self.records]
        metrics = {key: [(r["step"], _number(r[key])) for r in self.records]
                   for key in ("ratio", "rate", "horizon")}  # fmt: skip
        profiles = {r["step"]: r["norms"] for r in self.records}
        self.store.put(MONITOR_KIND, self.config, {"records": meta}, metrics=metrics,
                       profiles=profiles, status=status)  # fmt: skip

    def close(self) -> None:
        """Detach anything still attached, mark the stored run "done", close the sinks."""
        if self._closed:
            return
        self.cancel()
        self._closed = True
        self._write_store("done")
        for sink in self._sinks:
            closer = getattr(sink, "close", None)
            if callable(closer):
                closer()
        if self._own_store and self.store is not None:
            self.store.close()

    def __enter__(self) -> GradientFlowMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cell_model(model: nn.Module, where: dict[str, Any]) -> bool:
    """A bpttlab model whose core is a CellStack (probed by hooks), or rnn= a CellStack."""
    from bpttlab.cells import CellStack

    return isinstance(where.get("rnn", getattr(model, "core", None)), CellStack)


def _sinks(sink: Any) -> list[Callable[[dict[str, Any]], Any]]:
    """Callables that take a record; each keeps its ``close`` if it had one."""
    items = sink if isinstance(sink, list | tuple) else [] if sink is None else [sink]
    out: list[Callable[[dict[str, Any]], Any]] = []
    for item in items:
        write = getattr(item, "write", None)
        if callable(write):
            out.append(_Bound(write, getattr(item, "close", None)))
        elif callable(item):
            out.append(item)
        else:
            raise ConfigError("sink", type(item).__name__,
                              "must have a write(record) method or be callable")  # fmt: skip
    return out


class _Bound:
    """A sink's ``write`` with its ``close`` attached, so that close() reaches it."""

    def __init__(self, write: Callable[[dict[str, Any]], Any], close: Any) -> None:
        self.write, self.close = write, close

    def __call__(self, record: dict[str, Any]) -> None:
        self.write(record)
