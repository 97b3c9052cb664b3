"""Slow, independent reference implementations: for tests and benchmarks, never the product path.

- :mod:`bpttlab.testing.unrolled`: step-by-step twins of every probed recurrence, with
  ``retain_grad()`` on every state (the fused probes are checked against them in float64).
- :mod:`bpttlab.testing.lesson`: the lessons' own code, as printed (their NumPy loop, their
  PyTorch training loop), so that bpttlab's faster paths can be timed and checked against it.
"""

from bpttlab.testing.lesson import lesson_loop, lesson_train
from bpttlab.testing.unrolled import (
    Reference,
    assert_steps_close,
    rtol_for,
    unrolled_model,
    unrolled_rnn,
)

__all__ = [
    "Reference",
    "assert_steps_close",
    "lesson_loop",
    "lesson_train",
    "rtol_for",
    "unrolled_model",
    "unrolled_rnn",
]
