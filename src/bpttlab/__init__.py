"""bpttlab: gradient flow through time in recurrent networks.

    import bpttlab
    profile = bpttlab.gradient_profile(model, x, loss_fn)   # ||dL/dh_t||, t = 0..T
    diagnosis = bpttlab.diagnose(model, x, loss_fn)          # verdict, decay rate, advice

Every public name is re-exported lazily (PEP 562): ``import bpttlab`` imports no submodule, and
``import bpttlab.store`` loads no torch. Modules are named after concepts (``diagnosis``,
``training``), so ``bpttlab.diagnose`` and ``bpttlab.train`` are always the functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("Diagnosis", "diagnose", "diagnose_profile"), "diagnosis"),
    **dict.fromkeys(("jacobian_walk", "lyapunov_exponents", "simulate"), "dynamics"),
    **dict.fromkeys(
        (
            "Budget",
            "ClippingConfig",
            "CliffConfig",
            "DecayConfig",
            "DuelConfig",
            "RunConfig",
            "TbpttConfig",
            "cliff",
            "clipping_demo",
            "decay_vs_length",
            "duel",
            "tbptt_sweep",
        ),
        "experiments",
    ),  # fmt: skip
    **dict.fromkeys(("ARCHS", "build", "parse_arch"), "models"),
    "GradientFlowMonitor": "monitor",
    **dict.fromkeys(("Profile", "gradient_profile"), "probe"),
    **dict.fromkeys(("T50", "bootstrap_mean", "fit_t50", "wilson"), "stats"),
    "Store": "store",
    "run_many": "sweep",
    **dict.fromkeys(("TASKS", "get_task"), "tasks"),
    **dict.fromkeys(
        ("activation_derivative", "budget", "decay", "make_matrix", "spectrum"), "theory"
    ),
    **dict.fromkeys(("TrainConfig", "TrainResult", "clip_gradients", "train"), "training"),
    "load_matrix": "weights",
}

__all__ = [
    "ARCHS",
    "Budget",
    "CliffConfig",
    "ClippingConfig",
    "DecayConfig",
    "Diagnosis",
    "DuelConfig",
    "GradientFlowMonitor",
    "Profile",
    "RunConfig",
    "Store",
    "T50",
    "TASKS",
    "TbpttConfig",
    "TrainConfig",
    "TrainResult",
    "activation_derivative",
    "bootstrap_mean",
    "budget",
    "build",
    "cliff",
    "clip_gradients",
    "clipping_demo",
    "decay",
    "decay_vs_length",
    "diagnose",
    "diagnose_profile",
    "duel",
    "fit_t50",
    "get_task",
    "gradient_profile",
    "jacobian_walk",
    "load_matrix",
    "lyapunov_exponents",
    "make_matrix",
    "parse_arch",
    "run_many",
    "simulate",
    "spectrum",
    "tbptt_sweep",
    "train",
    "wilson",
]  # the keys of _EXPORTS (tests/test_api.py checks)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bpttlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bpttlab.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from bpttlab.diagnosis import Diagnosis, diagnose, diagnose_profile
    from bpttlab.dynamics import jacobian_walk, lyapunov_exponents, simulate
    from bpttlab.experiments import (
        Budget,
        CliffConfig,
        ClippingConfig,
        DecayConfig,
        DuelConfig,
        RunConfig,
        TbpttConfig,
        cliff,
        clipping_demo,
        decay_vs_length,
        duel,
        tbptt_sweep,
    )
    from bpttlab.models import ARCHS, build, parse_arch
    from bpttlab.monitor import GradientFlowMonitor
    from bpttlab.probe import Profile, gradient_profile
    from bpttlab.stats import T50, bootstrap_mean, fit_t50, wilson
    from bpttlab.store import Store
    from bpttlab.sweep import run_many
    from bpttlab.tasks import TASKS, get_task
    from bpttlab.theory import activation_derivative, budget, decay, make_matrix, spectrum
    from bpttlab.training import TrainConfig, TrainResult, clip_gradients, train
    from bpttlab.weights import load_matrix
