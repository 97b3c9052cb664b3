"""Hostile files for `bpttlab diagnose` and weight-reading commands: models that raise, exit,
print, return the wrong thing, have the wrong sizes or NaN weights, and batches of the wrong
shape or dtype. Each is one line naming --model or --batch, exit 2. The two that once corrupted
the heap run in a subprocess, so that a crash would show as the child's signal, not kill pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from bpttlab.cli import main

HEADER = "import sys\nimport torch\nfrom torch import nn\n"


def diagnose_in_a_child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpttlab", "diagnose", *args, "--json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture
def diagnose(capsys):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = main(["diagnose", *args, "--json"])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr)  # not -6/-11: no crash
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def model_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "m.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return f"{path}:factory"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("raise RuntimeError('broken at import')\n", ["--model", "RuntimeError: broken"]),
        ("sys.exit(3)\n", ["--model", "sys.exit(3)"]),
        ("def factory(i, o):\n    raise KeyError('x')\n", ["--model", "KeyError"]),
        ("def factory(i, o):\n    return 42\n", ["--model", "int, not a torch.nn.Module"]),
        ("def factory():\n    return nn.RNN(1, 4)\n", ["--model", "TypeError"]),
        ("factory = 3\n", ["--model", "not a function"]),
        ("def factory(i, o):\n    return {'loss': None}\n", ["--model", "'model' entry"]),
        ("def factory(i, o):\n    return nn.Linear(2, 2)\n", ["--model", "cannot tell which"]),
        ("def factory(i, o):\n    m = nn.RNN(1, 4)\n    m.weight_hh_l0.data[0, 0] = float('nan')"
         "\n    return m\n", ["--model", "NaN or inf", "weight_hh_l0"]),
        ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
         "        self.rnn = nn.GRU(1, 4, batch_first=True)\n    def forward(self, x):\n"
         "        raise ValueError('inside forward')\n"
         "def factory(i, o):\n    return M()\n", ["--model", "ValueError: inside forward"]),
    ],
)  # fmt: skip
def test_bad_model_files_are_one_line_naming_the_model(tmp_path, diagnose, body, words):
    line = one_error_line(diagnose("--model", model_file(tmp_path, body)))
    assert all(w in line for w in words), line


def test_a_model_that_prints_keeps_stdout_one_json_document(tmp_path, diagnose):
    ref = model_file(
        tmp_path,
        "print('hello from import')\ndef factory(i, o):\n"
        "    print('hello from factory')\n    return nn.RNN(i, 4, batch_first=True)\n",
    )
    res = diagnose("--model", ref)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)  # fails on any extra text
    assert len(doc["norms"]) == 51 and "hello from import" in res.stderr


@pytest.mark.parametrize(
    ("make", "words"),
    [
        ("def make():\n    return 'x'\n", ["--batch", "str, not a tensor"]),
        ("def make():\n    return torch.zeros(4, 10, 1).long()\n", ["--batch", "int64"]),
        ("def make():\n    return torch.zeros(4, 10, 1, 1)\n", ["--batch", "shape"]),
        ("def make():\n    return torch.full((4, 10, 1), float('nan'))\n", ["--batch", "NaN"]),
        ("def make():\n    return torch.zeros(4, 10, 3)\n", ["--batch", "input.size(-1)"]),
        ("def make():\n    raise OSError('no data')\n", ["--batch", "OSError: no data"]),
    ],
)  # fmt: skip
def test_bad_batches_are_one_line_naming_the_batch(tmp_path, diagnose, make, words):
    model = model_file(tmp_path, "def factory(i, o):\n    return nn.LSTM(1, 4, batch_first=True)\n")
    (tmp_path / "b.py").write_text(HEADER + make)
    line = one_error_line(diagnose("--model", model, "--batch", f"{tmp_path / 'b.py'}:make"))
    assert all(w in line for w in words), line


def test_a_torchscript_lstm_of_the_wrong_input_size_is_refused_not_a_crash(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(torch.nn.LSTM(5, 8)).save(str(tmp_path / "lstm.pt"))
    (tmp_path / "b.py").write_text(HEADER + "def make():\n    return torch.zeros(10, 4, 3)\n")
    line = one_error_line(diagnose_in_a_child("--model", str(tmp_path / "lstm.pt"), "--batch",
                                              str(tmp_path / "b.py") + ":make"))  # fmt: skip
    assert "--batch" in line and "input.size(-1) must be equal to input_size" in line


def test_a_torchscript_with_nan_weights_is_refused_before_any_eigendecomposition(tmp_path):
    rnn = torch.nn.RNN(1, 8)
    with torch.no_grad():
        rnn.weight_hh_l0.fill_(float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(rnn).save(str(tmp_path / "nan.pt"))
    line = one_error_line(diagnose_in_a_child("--model", str(tmp_path / "nan.pt")))
    assert "--model" in line and "NaN or inf" in line
