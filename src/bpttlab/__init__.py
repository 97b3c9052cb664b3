"""bpttlab: gradient flow through time in recurrent networks.

import bpttlab
profile = bpttlab.gradient_profile(model, x, loss_fn)   # ||dL/dh_t||, t = 0..T
diagnosis = bpttlab.diagnose(model, x, loss_fn)          # verdict, decay rate, advice

bpttlab.diagnose and bpttlab.train are the functions; the other names of those modules are
imported as ``from bpttlab.diagnose import diagnose_profile`` (``import bpttlab.diagnose as m``
binds the function).
"""

from __future__ import annotations

# Imported eagerly so that the functions named like their modules (diagnose, train) are what
# ``bpttlab.diagnose`` and ``bpttlab.train`` are: the import system binds a submodule to the
# package attribute only on its first import, which happens here, before these names.
from .diagnose import Diagnosis, diagnose, diagnose_profile
from .dynamics import jacobian_walk, lyapunov_exponents, simulate
from .experiments import cliff, clipping_demo, decay_vs_length, duel, tbptt_sweep
from .models import ARCHS, build, parse_arch
from .probe import Profile, gradient_profile
from .store import Store
from .sweep import run_many
from .tasks import TASKS, get_task
from .theory import activation_derivative, budget, decay, load_matrix, make_matrix, spectrum
from .train import TrainConfig, TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "ARCHS",
    "Diagnosis",
    "Profile",
    "Store",
    "TASKS",
    "TrainConfig",
    "TrainResult",
    "activation_derivative",
    "budget",
    "build",
    "clipping_demo",
    "cliff",
    "decay",
    "decay_vs_length",
    "diagnose",
    "diagnose_profile",
    "duel",
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
]
