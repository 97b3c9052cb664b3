"""What changes a run's numbers besides its config: the machine's fingerprint.

Training is chaotic, so the same config and seed give other digits under another torch, another
vector instruction set, or another MKL code path. ``fingerprint()`` names those, and the store
puts it in every run's key: a database shared between machines keeps their runs apart instead of
mixing them silently, and every stored run records the machine it came from.
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from typing import Any

__all__ = ["cpu_model", "fingerprint"]


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def fingerprint() -> dict[str, Any]:
    """Everything here that decides the last digits of a run: library versions, the CPU, the
    vector code torch dispatches to (``torch.backends.cpu.get_cpu_capability()``, which
    ``ATEN_CPU_CAPABILITY`` overrides) and MKL's instruction setting. Imports torch."""
    import numpy
    import torch

    return {
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS"),
        "bpttlab": _version("bpttlab"),
    }
