"""``bpttlab tour`` and ``bpttlab report``: the whole lab at small settings, and its report.

The tour computes the analytic core (decay, budgets, spectra, Jacobian walks, Lyapunov
exponents), profiles the architecture zoo, runs the lesson's duel under Adam and SGD, a small
cliff, the clipping demo and two training runs with ``profile_every``, and writes PNG figures,
``summary.md``, ``summary.json`` and ``report.html`` (:mod:`bpttlab.views.report`). Every
training run and result goes into the store, so a second tour reads them back. What it runs is
a :class:`TourConfig`, stated in the summary; the defaults fit in 5 minutes on 2 cores.

The report's claims table comes from ``experiments.claims``: the full audit when the store
already holds every training run it needs (read back, nothing trained), else the quick audit
(the claims that need no training beyond the clipping demo); see :func:`audit_claims`.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bpttlab import dynamics, theory
from bpttlab._util import ConfigError, check_choice, check_int, dumps
from bpttlab.store import DEFAULT_DB, Store
from bpttlab.views import plots
from bpttlab.views.summary import tour_markdown

if TYPE_CHECKING:
    from bpttlab.experiments import CliffConfig, ClippingConfig, DuelConfig, Runner
    from bpttlab.experiments.claims import ClaimsResult

__all__ = ["CLAIM_SCOPES", "ZOO", "TourConfig", "analytic", "audit_claims", "make_report",
           "run_tour"]  # fmt: skip

TOUR_GAINS = (0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)
SPECTRUM_GAINS = (0.5, 0.9, 1.1, 1.5)
ZOO = ("rnn", "rnn:activation=relu", "rnn:activation=sigmoid", "irnn", "lstm",
       "lstm:forget_bias=one", "gru", "skip-rnn", "attention-rnn", "orthogonal-rnn",
       "lru")  # fmt: skip
CLAIM_SCOPES = ("auto", "full", "quick", "none")
MAX_WORKERS = 1024
Echo = Callable[[str], Any]


def _duel() -> DuelConfig:
    from bpttlab.experiments import DuelConfig

    return DuelConfig(seeds=tuple(range(5)))


def _cliff() -> CliffConfig:
    from bpttlab.experiments import CliffConfig

    return CliffConfig(seeds=tuple(range(4)))


def _clipping() -> ClippingConfig:
    from bpttlab.experiments import ClippingConfig

    return ClippingConfig()


@dataclass(frozen=True)
class TourConfig:
    """What the tour runs. Defaults: the lesson's duel (T = 30, 300 steps) over 5 seeds under
    Adam and under SGD, the lesson's exercise grid (T = 5, 20, 50) over 4 seeds, the clipping
    demo as ``bpttlab clipping`` runs it, the zoo's float64 profiles at T = 100 and an rnn and
    an lstm trained on the duel's setup with a profile every ``profile_every`` steps."""

    seed: int = 0
    duel: DuelConfig = field(default_factory=_duel)
    cliff: CliffConfig = field(default_factory=_cliff)
    clipping: ClippingConfig = field(default_factory=_clipping)
    zoo: tuple[str, ...] = ZOO
    profile_length: int = 100
    trained: tuple[str, ...] = ("rnn", "lstm")
    profile_every: int = 5
    lyapunov_hidden: int = 256
    lyapunov_length: int = 1500
    claims: str = "auto"
    workers: int = 2

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0, 2**32 - 1)
        for name in ("profile_length", "profile_every", "lyapunov_hidden"):
            check_int(name, getattr(self, name))
        check_int("lyapunov_length", self.lyapunov_length, 2)
        check_int("workers", self.workers, 1, MAX_WORKERS)
        check_choice("claims", self.claims, CLAIM_SCOPES)


# ---------------------------------------------------------------- the analytic core
def analytic(seed: int = 0, lyapunov_hidden: int = 256, lyapunov_length: int = 1500) -> dict:
    """Spectra of gaussian W_hh (H = 64) at :data:`SPECTRUM_GAINS`, the lesson's Jacobian walk
    (gains 0.9 and 1.1), a walk along a noise-driven tanh trajectory (H = 64, T = 100) and the
    Lyapunov sweep over :data:`TOUR_GAINS` (warmup a third of the length, 4 exponents)."""
    spectra = [{"gain": g, **theory.spectrum(theory.make_matrix("gaussian", 64, g, seed))
                .to_dict()} for g in SPECTRUM_GAINS]  # fmt: skip
    W = theory.make_matrix("gaussian", 64, 0.9, seed)
    traj = dynamics.simulate(W, 100, "tanh", "noise", 1.0, h0="random", seed=seed)
    walks = {"lesson": dynamics.lesson_preset()["walk"].to_dict(),
             "lesson_gain_1.1": dynamics.lesson_preset(gain=1.1)["walk"].to_dict(),
             "trajectory": dynamics.jacobian_walk(traj).to_dict()}  # fmt: skip
    sweep, warmup = [], lyapunov_length // 3
    for g in TOUR_GAINS:
        W = theory.make_matrix("gaussian", lyapunov_hidden, g, seed)
        traj = dynamics.simulate(W, lyapunov_length, "tanh", "zeros", h0="random", seed=seed)
        sweep.append({**dynamics.lyapunov_exponents(traj, k=4, warmup=warmup).to_dict(), "gain": g})
    setup = {"hidden": lyapunov_hidden, "length": lyapunov_length, "warmup": warmup}
    return {"seed": seed, "spectra": spectra, "walks": walks, "lyapunov": sweep,
            "lyapunov_setup": setup}  # fmt: skip


def _analytic_summary(folder: Path, data: dict) -> dict[str, Any]:
    """The closed forms the summary quotes, and the PNG figures of the analytic core."""
    walks = data["walks"]
    plots.plot_walk(walks["lesson"], folder / "walk_lesson.png", "lesson preset: zero trajectory")
    plots.plot_walk(walks["trajectory"], folder / "walk_trajectory.png",
                    "tanh RNN driven by noise (H=64, gain 0.9)")  # fmt: skip
    plots.plot_lyapunov(data["lyapunov"], folder / "lyapunov.png")
    dense = list(range(1, 1001, 5))  # far enough to cross float32 and float64 underflow
    plots.plot_decay(
        [theory.decay(0.9, 0.5, dense).to_dict(), theory.decay(0.99, 0.9, dense).to_dict()],
        folder / "decay.png",
    )
    grid = np.linspace(-5, 5, 401)
    plots.plot_budget(
        grid,
        {a: theory.activation_derivative(a, grid) for a in ("tanh", "sigmoid", "relu")},
        folder / "budget.png",
    )
    lesson = walks["lesson"]["steps"]
    return {
        "decay": {"vanishing": theory.decay(0.9, 0.5, [10, 20, 50, 100]).to_dict(),
                  "exploding": theory.decay(1.1, 1.0, [10, 20, 50]).to_dict()},
        "budget": theory.budget(),
        "spectrum": {str(s["gain"]): {**s, "eigenvalues": s["eigenvalues"][:8]}
                     for s in data["spectra"]},
        "walk": {"lesson": {"first": lesson[0], "last": lesson[-1]},
                 "lesson_gain_1.1_last": walks["lesson_gain_1.1"]["steps"][-1],
                 "trajectory_last": walks["trajectory"]["steps"][-1],
                 "trajectory_mean_derivative": walks["trajectory"]["mean_derivative"]},
        "lyapunov": data["lyapunov"],
        "lyapunov_setup": data["lyapunov_setup"],
    }  # fmt: skip


# ---------------------------------------------------------------- the lab
def _seeds(seeds: Sequence[int]) -> str:
    return f"{len(seeds)} seed{'s' * (len(seeds) != 1)}"


def _lab(runner: Runner, config: TourConfig, echo: Echo) -> dict[str, Any]:
    """Profiles of the zoo, the duel under Adam and SGD, the cliff, clipping and the training
    runs with profiles: everything into the store, the summary's figures out."""
    from bpttlab.environment import fingerprint
    from bpttlab.experiments import (
        PROFILE_KIND,
        ProfileConfig,
        Setting,
        cliff,
        clipping_demo,
        duel,
        profile_run,
    )
    from bpttlab.store import cached

    assert runner.store is not None
    echo(f"tour: gradient profiles of {len(config.zoo)} architectures (T = "
         f"{config.profile_length}, float64)")  # fmt: skip
    profiles, env = {}, fingerprint()
    for arch in config.zoo:
        pc = ProfileConfig(**Setting.specs(arch, "copy-bit"), length=config.profile_length,
                           dtype="float64")  # fmt: skip
        p = cached(runner.store, PROFILE_KIND, pc, functools.partial(profile_run, pc), env=env)
        profiles[arch] = {**p["diagnosis"], "method": p["method"]}
    duels = {}
    sgd = replace(config.duel, budget=config.duel.budget.replace(optimizer="sgd"))
    for c in (config.duel, sgd):
        b = c.budget
        echo(f"tour: duel {' vs '.join(c.archs)} at T = {c.length}, {b.steps} {b.optimizer} steps, "
             f"{_seeds(c.seeds)} (bpttlab duel runs 10)")  # fmt: skip
        duels[b.optimizer] = duel(c, runner).to_dict()
    g = config.cliff
    echo(f"tour: cliff of {', '.join(g.archs)} at T = {', '.join(map(str, g.lengths))}, "
         f"{_seeds(g.seeds)} (bpttlab cliff runs 10)")  # fmt: skip
    grid = cliff(g, runner).to_dict()
    echo(f"tour: clipping demo, {_seeds(config.clipping.seeds)}")
    clip = clipping_demo(config.clipping, runner).to_dict()
    b, n = config.duel.budget, config.duel.length
    echo(f"tour: training {', '.join(config.trained)} at T = {n} with a profile every "
         f"{config.profile_every} steps")  # fmt: skip
    runs = runner([b.run(a, n, config.seed, profile_every=config.profile_every)
                   for a in config.trained])  # fmt: skip
    budget = (
        f"{b.task}, {b.steps} steps at lr {b.lr:g}, batch {b.batch_size}, hidden {b.hidden_size}"
    )
    ran = {"profile_length": config.profile_length, "cliff_seeds": list(g.seeds),
           "cliff_lengths": list(g.lengths), "clipping_seeds": list(config.clipping.seeds),
           "profile_every": config.profile_every,
           "duel": {"archs": list(config.duel.archs), "length": n, "budget": budget,
                    "seeds": list(config.duel.seeds)}}  # fmt: skip
    return {"ran": ran, "profiles": profiles, "duel": duels,
            "cliff": {"t50": grid["t50"], "cliffs": grid["cliffs"]}, "clipping": clip["rows"],
            "training": dict(zip(config.trained, runs, strict=True))}  # fmt: skip


# ---------------------------------------------------------------- claims and the report
class _NotStored(Exception):
    """A training run the full audit needs is not in the store."""


def _stored_only(store: Store) -> Runner:
    """A runner that reads runs back from ``store`` and trains nothing (else ``_NotStored``)."""
    from bpttlab.environment import fingerprint
    from bpttlab.experiments import RUN_KIND, Runner

    class StoredOnly(Runner):
        def __call__(self, configs: Sequence[Any]) -> list[dict[str, Any]]:
            env = fingerprint()
            if any(store.finished(RUN_KIND, c, env) is None for c in configs):
                raise _NotStored
            return super().__call__(configs)

    return StoredOnly(store=store, workers=1)


def audit_claims(
    store: Store, scope: str = "auto", workers: int = 2, progress: bool = False
) -> tuple[ClaimsResult | None, str]:
    """The claims audit for the report, and which one it is ("full", "quick" or "none").

    ``auto``: the full audit if the store holds every training run it needs (tried lesson by
    lesson, L1 first: its duel is the first claim that needs training runs, so a store without
    them is found out before anything trains), else the quick audit, which trains only the
    clipping demo's 40 small runs when they are not stored. ``full`` trains what is missing.
    """
    from bpttlab.experiments import Runner
    from bpttlab.experiments.claims import LESSONS, ClaimsConfig, ClaimsResult, claims

    check_choice("claims", scope, CLAIM_SCOPES)
    if scope == "none":
        return None, "none"
    runner = Runner(store=store, workers=workers, progress=progress)
    if scope == "full":
        return claims(ClaimsConfig(), runner), "full"
    if scope == "auto":
        try:
            rows = {
                lesson: claims(ClaimsConfig(lessons=(lesson,)), _stored_only(store)).claims
                for lesson in ("L1", "L0", "L3")
            }
            return ClaimsResult([r for lesson in LESSONS for r in rows[lesson]]), "full"
        except _NotStored:
            pass
    return claims(ClaimsConfig(quick=True), runner), "quick"


def make_report(
    db: str | Path = DEFAULT_DB,
    out: str | Path = "report.html",
    *,
    seed: int = 0,
    claims: str = "auto",
    workers: int = 2,
    analytic_data: dict | None = None,
    echo: Echo = lambda _: None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the report of store ``db`` to ``out``: :func:`audit_claims` with ``claims``, the
    analytic core (``analytic_data``, or :func:`analytic` at ``seed``) and what the store holds.
    Returns ``{"path", "bytes", "claims", "sections": {id: filled?}}``."""
    from bpttlab.views.report import render_report

    check_choice("claims", claims, CLAIM_SCOPES)
    check_int("workers", workers, 1, MAX_WORKERS)
    path = Path(out)
    if path.suffix.lower() not in (".html", ".htm") or path.is_dir():
        raise ConfigError("out", str(out), "give the path of an .html file to write")
    with Store(db) as store:
        echo(f"report: claims audit ({claims})")
        audit, scope = audit_claims(store, claims, workers, progress)
        if analytic_data is None:
            echo("report: analytic core")
            analytic_data = analytic(seed)
        echo("report: reading the store")
        page = render_report(store, analytic_data, audit.to_dict() if audit else None, scope)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page.html, encoding="utf-8")
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "claims": scope,
        "claims_count": len(audit.claims) if audit else 0,
        "sections": page.filled,
    }


def run_tour(
    folder: str | Path = "runs/tour", seed: int = 0, echo: Echo = print,
    db: str | Path = DEFAULT_DB, config: TourConfig | None = None,
) -> dict:  # fmt: skip
    """Run the tour (``config``, default :class:`TourConfig` with ``seed``) with the store
    ``db``; write the PNGs, ``summary.md``, ``summary.json`` and ``report.html`` into
    ``folder``; return the summary."""
    from bpttlab.experiments import Runner

    config = config or TourConfig(seed=seed)
    with Store(db) as store:  # a bad --db fails here, before any work
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        echo("tour: analytic core (decay, budgets, spectra, walks, Lyapunov)")
        data = analytic(config.seed, config.lyapunov_hidden, config.lyapunov_length)
        summary: dict[str, Any] = {"seed": config.seed, **_analytic_summary(folder, data)}
        runner = Runner(store=store, workers=config.workers, progress=True)
        summary["lab"] = _lab(runner, config, echo)
    summary["report"] = None
    if importlib.util.find_spec("plotly") is not None:  # the report extra
        summary["report"] = make_report(db, folder / "report.html", claims=config.claims,
                                        workers=config.workers, analytic_data=data, echo=echo,
                                        progress=True)  # fmt: skip
    (folder / "summary.md").write_text(tour_markdown(summary, str(db)), encoding="utf-8")
    files = sorted(p.name for p in folder.iterdir() if p.suffix in (".png", ".md", ".html"))
    summary["files"] = [*files, "summary.json"]
    (folder / "summary.json").write_text(dumps(summary, indent=2), encoding="utf-8")
    return summary
