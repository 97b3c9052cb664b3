"""The lab's experiments: a frozen config in, a result with its uncertainty out.

    duel(DuelConfig())              two architectures head to head, seed by seed
    cliff(CliffConfig())            accuracy against length; each series' T50 with its interval
    tbptt_sweep(TbpttConfig())      the truncation window against the longest dependency learned
    decay_vs_length(DecayConfig())  measured ||dL/dh_0|| / ||dL/dh_T|| against its predictions
    clipping_demo(ClippingConfig()) clipping stops an explosion and does nothing for a vanishing

Every training run goes through the one pipeline of ``_runs`` (``train_run``), is stored under
kind "run" with its config, machine, per-step metrics and gradient profiles, and
``sweep.run_many`` skips the runs already stored. Each experiment also stores its result under
its own kind keyed by its config: the same call returns the stored result, an interrupted one
resumes from the runs it finished, and ``force=True`` recomputes both.
"""

from bpttlab.experiments._runs import (
    EVAL_BATCHES,
    PROFILE_KIND,
    RUN_KIND,
    Budget,
    ProfileConfig,
    ProfileResult,
    RunConfig,
    Runner,
    RunResult,
    Setting,
    profile_run,
    train_run,
)
from bpttlab.experiments.cliff import (
    CliffConfig,
    CliffResult,
    cliff,
    find_cliff,
    success_threshold,
)
from bpttlab.experiments.clipping import (
    CLIP_CASES,
    ClippingConfig,
    ClippingResult,
    clipping_demo,
)
from bpttlab.experiments.decay import DecayConfig, DecayResult, decay_vs_length
from bpttlab.experiments.duel import LESSON_BUDGET, DuelConfig, DuelResult, duel
from bpttlab.experiments.tbptt import TBPTT_BUDGET, TbpttConfig, TbpttResult, tbptt_sweep

__all__ = [
    "CLIP_CASES",
    "EVAL_BATCHES",
    "LESSON_BUDGET",
    "PROFILE_KIND",
    "RUN_KIND",
    "TBPTT_BUDGET",
    "Budget",
    "CliffConfig",
    "CliffResult",
    "ClippingConfig",
    "ClippingResult",
    "DecayConfig",
    "DecayResult",
    "DuelConfig",
    "DuelResult",
    "ProfileConfig",
    "ProfileResult",
    "RunConfig",
    "RunResult",
    "Runner",
    "Setting",
    "TbpttConfig",
    "TbpttResult",
    "cliff",
    "clipping_demo",
    "decay_vs_length",
    "duel",
    "find_cliff",
    "profile_run",
    "success_threshold",
    "tbptt_sweep",
    "train_run",
]
