"""The experiment commands end to end, on tiny settings: JSON shapes, equality with the library,
the store answering repeated runs, and one-line errors."""

from __future__ import annotations

import io

import pytest

from bpttlab.experiments import Budget, CliffConfig, _runs, cliff
from bpttlab.store import Store

from .test_cli import run_error, run_json


def _db(tmp_path) -> list[str]:
    return ["--db", str(tmp_path / "db.sqlite")]


def test_cliff_json_shape_and_equals_the_library(capsys, tmp_path):
    args = ["cliff", *_db(tmp_path), "--archs", "rnn", "lstm:forget_bias=one", "--lengths", "3",
            "6", "--seeds", "2", "--steps", "15", "--hidden", "8", "--batch", "16",
            "--workers", "1", "--plot", str(tmp_path / "c.png")]  # fmt: skip
    doc = run_json(capsys, *args)
    assert {"rows", "cliffs", "t50", "budget"} <= set(doc)
    assert set(doc["cliffs"]) == set(doc["t50"]) == {"rnn", "lstm:forget_bias=one"}
    row = doc["rows"][0]
    assert {"arch", "length", "accuracy_mean", "accuracy_min", "accuracy_max", "success_rate",
            "success_low", "success_high", "accuracy_low", "accuracy_high"} <= set(row)  # fmt: skip
    assert set(doc["t50"]["rnn"]) >= {"estimate", "low", "high", "status"}
    assert doc["budget"]["steps"] == 15 and doc["budget"]["seeds"] == [0, 1]
    assert (tmp_path / "c.png").stat().st_size > 1000
    config = CliffConfig(archs=("rnn", "lstm:forget_bias=one"), lengths=(3, 6), seeds=(0, 1),
                         budget=Budget(steps=15, hidden_size=8, batch_size=16))  # fmt: skip
    with Store(tmp_path / "other.db") as store:
        ref = cliff(config, store=store, workers=1).to_dict()
    assert doc["rows"] == ref["rows"] and doc["t50"] == ref["t50"]


def test_cliff_second_call_reads_the_store(capsys, tmp_path, monkeypatch):
    args = ["cliff", *_db(tmp_path), "--archs", "rnn", "--lengths", "4", "--seeds", "1",
            "--steps", "5", "--hidden", "4", "--batch", "8", "--workers", "1"]  # fmt: skip
    first = run_json(capsys, *args)
    monkeypatch.setattr(_runs, "train_run", lambda *a, **k: pytest.fail("retrained"))
    assert run_json(capsys, *args) == first


def test_duel_json_has_results_and_claims(capsys, tmp_path):
    doc = run_json(capsys, "duel", *_db(tmp_path), "--length", "4", "--steps", "10",
                   "--seeds", "1", "--workers", "1")  # fmt: skip
    assert [r["arch"] for r in doc["results"]] == ["rnn", "lstm"]
    for r in doc["results"]:
        assert {"arch", "seed", "accuracy", "grad_h0_init", "grad_h0_final"} <= set(r)
    # claims are checked only on the lesson's setup; overridden, none are judged
    assert doc["claims"] == [] and "lesson's setup" in doc["claims_note"]
    assert set(doc["summary"]) == {"rnn", "lstm"}


def test_duel_takes_the_optimizer_and_lr(capsys, tmp_path):
    doc = run_json(capsys, "duel", *_db(tmp_path), "--length", "4", "--steps", "3", "--seeds",
                   "1", "--workers", "1", "--optimizer", "sgd", "--lr", "0.5")  # fmt: skip
    assert (doc["budget"]["optimizer"], doc["budget"]["lr"]) == ("sgd", 0.5)


def test_decay_vs_length_json(capsys, tmp_path):
    doc = run_json(
        capsys,
        "decay-vs-length",
        *_db(tmp_path),
        "--lengths",
        "5",
        "10",
        "--radii",
        "0.9",
        "--hidden",
        "8",
        "--plot",
        str(tmp_path / "d.png"),
    )
    assert [(r["radius"], r["length"]) for r in doc["rows"]] == [(0.9, 5), (0.9, 10)]
    assert all(0 < r["ratio_min"] <= r["ratio"] <= r["ratio_max"] for r in doc["rows"])
    assert all(r["seeds"] == 5 for r in doc["rows"])
    assert (tmp_path / "d.png").exists()


def test_clipping_json(capsys, tmp_path):
    doc = run_json(capsys, "clipping", *_db(tmp_path), "--steps", "10", "--workers", "1",
                   "--seeds", "2")  # fmt: skip
    by_case = {(r["case"], r["clip"]): r for r in doc["rows"]}
    clips = ("none", "norm", "variable-norm", "value")
    assert set(by_case) == {(c, k) for c in ("exploding", "vanishing") for k in clips}
    assert by_case[("exploding", "none")]["diverged"] == 2
    assert by_case[("exploding", "norm")]["diverged"] == 0


def test_tbptt_json(capsys, tmp_path):
    doc = run_json(capsys, "tbptt", *_db(tmp_path), "--windows", "2", "--lengths", "3", "5",
                   "--steps", "5", "--seeds", "1", "--workers", "1")  # fmt: skip
    assert set(doc["longest_learned"]) == set(doc["t50"]) == {"2"}
    assert {r["window"] for r in doc["rows"]} == {2}


@pytest.mark.parametrize(
    "args,named",
    [
        (["cliff", "--archs", "rnn", "transformer"], "--archs"),
        (["cliff", "--optimizer", "lbfgs"], "--optimizer"),
        (["cliff", "--steps", "0"], "--steps"),
        (["cliff", "--executor", "dask"], "--executor"),
        (["cliff", "--address", "auto"], "--address"),
        (["duel", "--optimizer", "lbfgs"], "--optimizer"),
        (["duel", "--lr", "-1"], "--lr"),
        (["cliff", "--lengths", "0"], "--lengths"),
        (["cliff", "--seeds", "0"], "--seeds"),
        (["cliff", "--workers", "0"], "--workers"),
        (["cliff", "--task", "sorting"], "--task"),
        (["cliff", "--task", "adding", "--lengths", "3", "10"], "--lengths"),
        (["cliff", "--task", "digits", "--lengths", "20"], "--lengths"),
        (["duel", "--preset", "book"], "--preset"),
        (["duel", "--device", "tpu"], "--device"),
        (["decay-vs-length", "--radii", "-1"], "--radii"),
        (["clipping", "--norm-threshold", "0"], "--norm-threshold"),
        (["tbptt", "--windows", "0"], "--windows"),
    ],
)
def test_experiment_bad_input(capsys, tmp_path, args, named):
    assert named in run_error(capsys, *args, *_db(tmp_path))


def test_t50_line_prints_a_runaway_bootstrap_bound_as_past_the_grid():
    from bpttlab.cli.experiments import t50_line

    t = {"status": "inconclusive", "estimate": 80.1, "low": 27.6, "high": 1.54e41,
         "statement": "succeeds at 4 in 6/6, at 32 in 4/6"}  # fmt: skip
    line = t50_line("k=8", t)
    assert line == ("cliff of k=8: inconclusive at this budget (T50 ~ 80.1, interval 27.6 to "
                    "> 320); succeeds at 4 in 6/6, at 32 in 4/6")  # fmt: skip
    found = dict(t, status="found", estimate=30.9, low=20.0, high=50.0)
    assert "T50 = 30.9 (95% interval 20-50)" in t50_line("lstm", found)
    below = dict(t, status="inconclusive", estimate=0.01, low=1e-9, high=3.0)
    assert "T50 ~ < 0.4, interval < 0.4 to 3" in t50_line("x", below)


def test_cli_tables_wrap_long_cells_and_never_cut_a_number():
    from rich.console import Console

    from bpttlab.cli._common import Table

    t = Table()
    t.add_column("ratio at end", justify="right")
    t.add_row("3.24e+05 (1.66e+05–8.89e+05)")
    console = Console(width=20, record=True, file=io.StringIO())
    console.print(t)
    text = console.export_text()
    assert "…" not in text
    assert "".join(ch for ch in text if ch not in "│ \n─┏┓┗┛┃━┡┩└┘").count("8.89e+05") == 1
