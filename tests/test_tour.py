"""The tour at tiny settings end to end (files, runs, a second tour that trains nothing), the
report command on an empty store, the claims policy of the report, and the ``.figure()`` /
``_repr_html_`` of profiles, diagnoses and experiment results (plotly: the report extra)."""

from __future__ import annotations

import functools
import html
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from bpttlab import tour
from bpttlab._util import ConfigError
from bpttlab.cli import main
from bpttlab.environment import fingerprint
from bpttlab.experiments import (
    RUN_KIND,
    Budget,
    CliffConfig,
    ClippingConfig,
    DecayConfig,
    DuelConfig,
    Runner,
    TbpttConfig,
    cliff,
    clipping_demo,
    decay_vs_length,
    duel,
    tbptt_sweep,
)
from bpttlab.experiments import claims as claims_module
from bpttlab.experiments.claims import LESSONS, ClaimsConfig, ClaimsResult
from bpttlab.store import Store
from bpttlab.tour import TourConfig

pytest.importorskip("plotly", reason="the report needs the report extra (plotly)")

TINY = Budget(steps=6, hidden_size=8, batch_size=16)
PNGS = {"decay.png", "budget.png", "walk_lesson.png", "walk_trajectory.png", "lyapunov.png"}


def tiny_config(**changes: Any) -> TourConfig:
    """Every part of the tour, each at a size that trains in well under a second."""
    fields: dict[str, Any] = {
        "duel": DuelConfig(seeds=(0,), budget=TINY),
        "cliff": CliffConfig(lengths=(5, 10), seeds=(0, 1), budget=TINY),
        "clipping": ClippingConfig(steps=5, seeds=(0,)),
        "zoo": ("rnn", "lstm"), "profile_length": 20, "profile_every": 2,
        "lyapunov_hidden": 16, "lyapunov_length": 60, "claims": "none", "workers": 1,
    }  # fmt: skip
    return TourConfig(**{**fields, **changes})


def section(html: str, sid: str) -> str:
    found = re.search(rf'<section id="{sid}".*?</section>', html, re.S)
    assert found, sid
    return found.group(0)


def test_tour_runs_the_lab_and_a_second_tour_reads_it_back(tmp_path, train_calls):
    db, lines = tmp_path / "runs.db", []
    summary = tour.run_tour(tmp_path / "tour", echo=lines.append, db=db, config=tiny_config())
    files = {p.name for p in (tmp_path / "tour").iterdir()}
    assert PNGS | {"summary.md", "summary.json", "report.html"} <= files
    # duel 2 archs x 2 optimizers, cliff 2 archs x 2 lengths x 2 seeds, clipping 2 cases x 4
    # rules, training 2 archs: every run trained once
    assert len(train_calls) == 4 + 8 + 8 + 2
    assert summary["decay"]["vanishing"]["rows"][0]["magnitude"] == pytest.approx(0.45**10)
    assert summary["walk"]["lesson"]["first"]["frobenius"] == pytest.approx(8.0)
    with Store(db) as store:
        config = TINY.run("rnn", 30, 0, profile_every=2)
        record = store.finished(RUN_KIND, config, fingerprint())
        assert record is not None and record.result == summary["lab"]["training"]["rnn"]
        assert sorted(store.profiles(record)) == [0, 2, 4, 6]  # every 2 steps, and after
        assert all(len(n) == 31 for n in store.profiles(record).values())
        stored = len(store.runs())
    md = (tmp_path / "tour" / "summary.md").read_text()
    assert "Ran 1 seed (0) per optimizer" in md and "`bpttlab duel` runs 10" in md
    assert "## 11. The report" in md
    for step in ("analytic core", "profiles", "duel rnn vs lstm", "sgd", "cliff", "clipping",
                 "training rnn, lstm"):  # fmt: skip
        assert any(step in line for line in lines), step
    report = summary["report"]
    assert report["claims"] == "none" and not report["sections"]["claims"]
    assert all(filled for sid, filled in report["sections"].items() if sid != "claims")
    assert report["bytes"] == (tmp_path / "tour" / "report.html").stat().st_size

    train_calls.clear()
    again = tour.run_tour(tmp_path / "tour", echo=lines.append, db=db, config=tiny_config())
    assert train_calls == []  # everything read back from the store
    with Store(db) as store:
        assert len(store.runs()) == stored
    assert again["lab"] == summary["lab"]


def test_tour_command_prints_where_the_report_is(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tour, "TourConfig", lambda **kw: tiny_config(seed=kw["seed"]))
    out, db = tmp_path / "tour", str(tmp_path / "runs.db")
    capsys.readouterr()
    assert main(["tour", "--out", str(out), "--db", db, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # exactly one JSON document
    assert Path(doc["report"]["path"]) == out / "report.html"
    assert doc["decay"]["vanishing"]["rows"][0]["magnitude"] == pytest.approx(0.45**10)
    assert main(["tour", "--out", str(out), "--db", db]) == 0
    printed = capsys.readouterr()
    where = (out / "report.html").resolve()
    assert f"report: {where} (" in printed.out and "open it in a browser" in printed.out
    assert "tour: duel" in printed.err  # progress on stderr


def test_report_of_an_empty_store_names_the_commands_that_fill_it(tmp_path, monkeypatch, capsys):
    small = functools.partial(tour.analytic, lyapunov_hidden=16, lyapunov_length=60)
    monkeypatch.setattr(tour, "analytic", small)
    out = tmp_path / "r.html"
    args = ["report", "--db", str(tmp_path / "empty.db"), "--out", str(out), "--claims", "none"]
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bytes"] == out.stat().st_size and doc["claims"] == "none"
    assert not (tmp_path / "empty.db").exists()  # a store that is not there is not created
    analytic = {"decay", "saturation", "spectrum", "walks"}
    assert {sid for sid, filled in doc["sections"].items() if filled} == analytic
    html = out.read_text()
    fills = {
        "profiles": "bpttlab profile",
        "training": "bpttlab train",
        "duel": "bpttlab duel",
        "cliff": "bpttlab cliff",
        "clipping": "bpttlab clipping",
        "claims": "bpttlab claims",
    }
    for sid, command in fills.items():
        body = section(html, sid)
        assert 'class="empty"' in body and command in body, sid
    from plotly.offline import get_plotlyjs

    assert html.count(get_plotlyjs()[:300]) == 1  # plotly.js inlined exactly once
    assert "<script src" not in html and 'rel="stylesheet"' not in html
    assert re.findall(r"<link [^>]*>", html) == ['<link rel="icon" href="data:,">']


def test_report_refuses_bad_input_before_any_work(tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("keep me")
    folder = tmp_path / "folder.html"
    folder.mkdir()
    db = ["--db", str(tmp_path / "x.db")]
    for args, option in ((["--out", str(notes)], "--out"), (["--out", str(folder)], "--out"),
                         (["--claims", "some"], "--claims"), (["--workers", "0"], "--workers"),
                         (["--workers", "1000000000000"], "--workers")):  # fmt: skip
        capsys.readouterr()
        assert main(["report", *db, *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and option in err[0], (args, err)
    assert notes.read_text() == "keep me"
    with pytest.raises(ConfigError, match="workers"):
        tiny_config(workers=0)


def test_the_report_uses_the_full_audit_only_when_the_store_holds_its_runs(
    tmp_path, monkeypatch, train_calls
):
    calls: list[tuple[tuple[str, ...], bool, str]] = []

    def fake_claims(config: ClaimsConfig, runner: Runner) -> ClaimsResult:
        calls.append((config.lessons, config.quick, type(runner).__name__))
        if not config.quick:  # the full audit needs training runs
            runner([TINY.run("rnn", 5, 0)])
        return ClaimsResult([{"id": f"{lesson}.1"} for lesson in config.lessons])

    monkeypatch.setattr(claims_module, "claims", fake_claims)
    with Store(tmp_path / "runs.db") as store:
        result, scope = tour.audit_claims(store, "auto", workers=1)
        assert scope == "quick" and train_calls == []  # found out before anything trained
        assert [c[:2] for c in calls] == [(("L1",), False), (LESSONS, True)]
        Runner(store=store, workers=1)([TINY.run("rnn", 5, 0)])
        calls.clear()
        result, scope = tour.audit_claims(store, "auto", workers=1)
        assert scope == "full" and len(train_calls) == 1
        assert [c[0] for c in calls] == [("L1",), ("L0",), ("L3",)]
        assert result is not None and [r["id"] for r in result.claims] == ["L0.1", "L1.1", "L3.1"]
        assert tour.audit_claims(store, "none") == (None, "none")
        calls.clear()
        assert tour.audit_claims(store, "full", workers=1)[1] == "full"
        assert calls == [(LESSONS, False, "Runner")]


def _ys(fig: Any, name: str) -> list[Any]:
    (trace,) = [t for t in fig.data if t.name == name]
    return list(trace.y)


def test_results_draw_their_own_numbers(tmp_path):
    import bpttlab

    torch.manual_seed(0)
    rnn = torch.nn.RNN(1, 4, batch_first=True).double()
    x = torch.randn(3, 12, 1, dtype=torch.float64)
    prof = bpttlab.gradient_profile(rnn, x, lambda out: out[0][:, -1].sum())
    fig = prof.figure()
    assert fig.data[0].y == pytest.approx(list(prof.norms), rel=1e-12)
    assert "<div" in prof._repr_html_()
    diag = bpttlab.diagnose_profile(prof, rnn)
    fitted = diag.figure().data[0]
    assert fitted.y[0] == 1.0
    assert fitted.y[-1] == pytest.approx(math.exp(diag.rate_per_step * diag.T), rel=1e-9)
    assert html.escape(diag.advice[0].text) in diag._repr_html_()

    store = Store(tmp_path / "runs.db")
    run = Runner(store=store, workers=1)
    d = duel(DuelConfig(seeds=(0, 1), budget=TINY), run)
    assert _ys(d.figure(), "rnn: seeds") == [r["accuracy"] for r in d.results if r["arch"] == "rnn"]
    c = cliff(CliffConfig(lengths=(5, 10), seeds=(0, 1), budget=TINY), run)
    rows = sorted((r for r in c.rows if r["series"] == "lstm"), key=lambda r: r["length"])
    lstm = [t for t in c.figure().data if t.name == "lstm" and t.showlegend is not False]
    assert list(lstm[0].y) == [r["success_rate"] for r in rows]
    clip = clipping_demo(ClippingConfig(steps=5, seeds=(0,)), run)
    before = [t for t in clip.figure().data if t.name == "before training"][0]
    assert list(before.y) == [r["grad_h0_ratio_init"]["median"] for r in clip.rows[:4]]
    dec = decay_vs_length(DecayConfig(lengths=(5, 10), radii=(0.9,), seeds=(0,), hidden_size=8,
                                      batch_size=4, lyapunov_samples=1))  # fmt: skip
    assert _ys(dec.figure(), "measured, ρ=0.9") == [r["ratio"] for r in dec.rows]
    latch = Budget(task="latch", steps=6, hidden_size=8, batch_size=16, fixed_batch=False)
    tb = tbptt_sweep(TbpttConfig(windows=(2, 4), lengths=(4, 6), seeds=(0,), budget=latch), run)
    assert {t.name for t in tb.figure().data} >= {"k=2", "k=4"}
    audit = ClaimsResult([{"id": "L0.1", "claim": "c", "measured": "m", "verdict": "holds"}])
    assert list(audit.figure().data[0].cells.values[3]) == ["holds"]
    for result in (d, c, clip, dec, tb, audit):
        assert "<div" in result._repr_html_()
    store.close()
