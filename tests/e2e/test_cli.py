"""The CLI end to end: every command's --json parses, bad input exits 2 with one named line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bpttlab import dynamics, theory
from bpttlab.cli import join_list_options, main


def run_json(capsys, *args):
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out)  # exactly one document: json.loads fails on anything extra


def run_error(capsys, *args) -> str:
    capsys.readouterr()
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpttlab: error:"), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_decay_json(capsys):
    doc = run_json(
        capsys,
        "decay",
        "--eigenvalue",
        "0.9",
        "--derivative",
        "0.5",
        "--lengths",
        "10",
        "20",
        "1000000",
    )
    assert doc["eigenvalue"] == 0.9 and doc["derivative"] == 0.5
    assert [r["length"] for r in doc["rows"]] == [10, 20, 1000000]
    assert doc["rows"][0]["magnitude"] == pytest.approx(0.45**10)
    assert doc["rows"][2]["magnitude"] == 0.0
    assert doc["rows"][2]["log10_magnitude"] == pytest.approx(-346787.486, rel=1e-9)
    assert doc["float32_underflow_at"] == theory.underflow_length(0.45, "float32")


def test_decay_exploding_json_has_no_infinity(capsys):
    doc = run_json(capsys, "decay", "-l", "1.1", "-d", "1", "--lengths", "10,8000")
    assert doc["rows"][1]["magnitude"] is None  # overflow: JSON has no inf
    assert doc["rows"][1]["log10_magnitude"] == pytest.approx(8000 * np.log10(1.1))


def test_budget_json(capsys):
    doc = run_json(capsys, "budget", "--x", "-1", "0", "1", "--activations", "tanh", "gelu")
    assert [r["x"] for r in doc["rows"]] == [-1, 0, 1]
    assert doc["rows"][2]["tanh"] == pytest.approx(1 - np.tanh(1) ** 2)
    assert doc["steps_to_threshold"]["tanh"] == [16, None, 16]


def test_spectrum_json_generated_and_file(capsys, tmp_path):
    doc = run_json(capsys, "spectrum", "--init", "orthogonal", "--gain", "0.5", "--hidden", "16")
    assert doc["spectral_radius"] == pytest.approx(0.5)
    assert doc["spectral_norm"] == pytest.approx(0.5)
    assert doc["fate"] == "vanishing"
    assert doc["horizon"] == theory.steps_to_threshold(0.5)
    w = theory.make_matrix("gaussian", 8, 1.5, seed=3)
    np.save(tmp_path / "w.npy", w)
    doc = run_json(capsys, "spectrum", "--weights", str(tmp_path / "w.npy"))
    assert doc["spectral_radius"] == pytest.approx(np.abs(np.linalg.eigvals(w)).max())
    assert doc["fate"] == "exploding" and doc["horizon"] is None
    assert len(doc["eigenvalues"]) == 8


def test_walk_json_and_plot(capsys, tmp_path):
    doc = run_json(
        capsys,
        "walk",
        "--hidden",
        "8",
        "--length",
        "30",
        "--every",
        "10",
        "--plot",
        str(tmp_path / "w.png"),
    )
    assert [s["t"] for s in doc["steps"]] == [30, 20, 10, 0]
    assert {"log10_frobenius", "log10_spectral", "log10_vjp"} <= set(doc["steps"][0])
    assert (tmp_path / "w.png").stat().st_size > 1000
    vjp = run_json(
        capsys,
        "walk",
        "--hidden",
        "8",
        "--length",
        "100000",
        "--mode",
        "vjp",
        "--every",
        "50000",
        "--inputs",
        "zeros",
        "--h0",
        "zeros",
        "--gain",
        "0.5",
        "--init",
        "orthogonal",
        "--activation",
        "identity",
    )
    assert vjp["steps"][-1]["log10_vjp"] == pytest.approx(100000 * np.log10(0.5), rel=1e-9)
    assert "vjp" not in vjp["steps"][-1]  # no plain value where it underflows


def test_walk_lesson_preset_prints_the_truth(capsys):
    doc = run_json(capsys, "walk", "--preset", "lesson")
    ref = dynamics.lesson_preset()["walk"]
    assert doc["steps"][0]["frobenius"] == pytest.approx(8.0)
    assert doc["steps"][-1]["log10_frobenius"] == pytest.approx(ref.log10_frobenius[-1])
    assert "sqrt(H) = 8" in doc["note"] and "order" in doc["note"]
    assert main(["walk", "--preset", "lesson", "--every", "25"]) == 0
    assert "not 1" in capsys.readouterr().out


def test_lyapunov_json_single_and_sweep(capsys, tmp_path):
    doc = run_json(
        capsys,
        "lyapunov",
        "--gain",
        "0.5",
        "--hidden",
        "16",
        "--length",
        "300",
        "--warmup",
        "100",
        "--k",
        "2",
    )
    assert {"exponents", "log_spectral_radius", "naive_rate", "horizon"} <= set(doc)
    assert len(doc["exponents"]) == 2
    sweep = run_json(
        capsys,
        "lyapunov",
        "--gains",
        "0.5",
        "1.5",
        "--hidden",
        "32",
        "--length",
        "400",
        "--warmup",
        "100",
        "--plot",
        str(tmp_path / "l.png"),
    )
    assert isinstance(sweep, list) and [r["gain"] for r in sweep] == [0.5, 1.5]
    assert sweep[0]["exponents"][0] < 0 < sweep[1]["exponents"][0]
    assert (tmp_path / "l.png").exists()


@pytest.mark.parametrize(
    "args,named",
    [
        (["decay", "-l", "0.9", "-d", "0.5", "--lengths", "0"], "--lengths"),
        (["decay", "-l", "0.9", "-d", "0.5", "--lengths", "10", "-5"], "--lengths"),
        (["decay", "-l", "0.9", "-d", "0.5", "--lengths", "ten"], "--lengths"),
        (["decay", "-l", "nan", "-d", "0.5"], "eigenvalue"),
        (["budget", "--activations", "tanh", "foo"], "--activations"),
        (["budget", "--threshold", "2"], "--threshold"),
        (["spectrum", "--init", "bogus"], "--init"),
        (["spectrum", "--hidden", "0"], "--hidden"),
        (["spectrum", "--weights", "/no/such/file.npy"], "weights"),
        (["walk", "--activation", "softsign"], "--activation"),
        (["walk", "--length", "0"], "--length"),
        (["walk", "--preset", "book"], "--preset"),
        (["walk", "--every", "0"], "--every"),
        (["lyapunov", "--hidden", "0"], "--hidden"),
        (["lyapunov", "--warmup", "5000"], "--warmup"),
        (["lyapunov", "--k", "999", "--hidden", "8"], "--k"),
        (["lyapunov", "--gains", "a", "b"], "--gains"),
    ],
)
def test_bad_input_exits_2_naming_the_argument(capsys, args, named):
    line = run_error(capsys, *args)
    assert named in line


@pytest.mark.parametrize(
    "content,named",
    [(np.ones((3, 4)), "square"), (np.full((3, 3), np.nan), "NaN"), (np.ones(0), "square")],
)
def test_bad_weight_files_exit_2(capsys, tmp_path, content, named):
    np.save(tmp_path / "w.npy", content)
    for cmd in ("spectrum", "walk", "lyapunov"):
        line = run_error(capsys, cmd, "--weights", str(tmp_path / "w.npy"))
        assert "weights" in line and named in line


def test_weights_pt_state_dict(capsys, tmp_path):
    torch.manual_seed(0)
    rnn = torch.nn.RNN(2, 6)
    torch.save(rnn.state_dict(), tmp_path / "rnn.pt")
    doc = run_json(capsys, "spectrum", "--weights", str(tmp_path / "rnn.pt"))
    ref = np.abs(np.linalg.eigvals(rnn.weight_hh_l0.detach().double().numpy())).max()
    assert doc["spectral_radius"] == pytest.approx(ref)


def test_list_option_convention():
    assert join_list_options(["decay", "--lengths", "1", "2", "3", "--json"]) == [
        "decay",
        "--lengths",
        "1 2 3",
        "--json",
    ]
    assert join_list_options(["budget", "--x", "-1", "0", "--threshold", "1e-3"]) == [
        "budget",
        "--x",
        "-1 0",
        "--threshold",
        "1e-3",
    ]


def test_console_script_entry_point(tmp_path):
    exe = [sys.executable, "-m", "bpttlab", "decay", "-l", "0.5", "-d", "1", "--lengths", "3"]
    res = subprocess.run([*exe, "--json"], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout)["rows"][0]["magnitude"] == 0.125
    bad = subprocess.run([*exe[:-2], "--lengths", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--lengths" in bad.stderr


def test_arch_specs_with_several_options_survive_the_list_convention(capsys, tmp_path):
    doc = run_json(capsys, "cliff", "--db", str(tmp_path / "d.db"), "--archs",
                   "rnn:activation=relu,init=identity", "lstm", "--lengths", "3", "--seeds", "1",
                   "--steps", "2", "--hidden", "4", "--batch", "4", "--workers", "1")  # fmt: skip
    assert set(doc["cliffs"]) == {"rnn:activation=relu,init=identity", "lstm"}


@pytest.mark.parametrize("name,why", [("softmax", "elementwise"), ("dropout", "deterministic")])
def test_budget_refuses_non_elementwise_or_random_functions(capsys, name, why):
    line = run_error(capsys, "budget", "--activations", name)
    assert "--activations" in line and why in line


def test_spectrum_fate_counts_the_activation(capsys):
    # W = 2 I: rho = 2, but sigmoid' <= 1/4 makes every step a contraction by 1/2
    doc = run_json(capsys, "spectrum", "--init", "identity", "--gain", "2", "--hidden", "3",
                   "--activation", "sigmoid")  # fmt: skip
    assert doc["fate"] == "vanishing" and doc["horizon"] == theory.steps_to_threshold(0.5)
    doc = run_json(capsys, "spectrum", "--init", "identity", "--gain", "2", "--hidden", "3")
    assert doc["fate"] == "exploding"


@pytest.mark.parametrize(
    "write,named",
    [
        (lambda p: (p / "w.pt").write_bytes(b"not a zip file at all"), "cannot be read"),
        (lambda p: torch.save(torch.eye(3, dtype=torch.complex64), p / "w.pt"), "real"),
        (lambda p: torch.save([1, 2], p / "w.pt"), "not a tensor"),
    ],
)
def test_unreadable_or_complex_weight_files_exit_2(capsys, tmp_path, write, named):
    write(tmp_path)
    line = run_error(capsys, "spectrum", "--weights", str(tmp_path / "w.pt"))
    assert "weights" in line and named in line


def test_decay_log10_survives_an_overflowing_factor(capsys):
    doc = run_json(capsys, "decay", "-l", "1e300", "-d", "1e300", "--lengths", "2")
    assert doc["rows"][0]["log10_magnitude"] == pytest.approx(1200.0)


def test_walk_rejects_non_finite_input_scale(capsys):
    assert "--input-scale" in run_error(capsys, "walk", "--input-scale", "nan")
    assert "--input-scale" in run_error(capsys, "lyapunov", "--input-scale", "inf")
