"""Every example runs as a user would run it, and prints what it promises: the verdict its
docstring announces, for every step it says it reports, with numbers that agree with the verdict
(a "vanishing" line whose ratio is not small would be a lie). The digits move with the CPU; the
verdicts and the structure must not."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
NUM = r"([-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?)"

# example -> (the extra it needs or None, the steps it reports or None, a regex per report line)
EXPECTED = {
    "keras_l3.py": (
        "keras",
        None,
        rf"L3 model at T=50: vanishing, \|\|dL/dh_0\|\| / \|\|dL/dh_T\|\| = {NUM}, "
        rf"{NUM} per step, horizon (\d+)",
    ),
    "monitor_lightning.py": (
        "lightning",
        [0, 10, 20, 30],
        rf"step +(\d+): vanishing, ratio {NUM}, horizon (\d+)",
    ),
    "monitor_loop.py": (
        None,
        [0, 20, 40],
        rf"step +(\d+): vanishing \|\|dL/dh_0\|\|/\|\|dL/dh_T\|\| = {NUM}, rate {NUM}/step, "
        rf"horizon (\d+)",
    ),
    "monitor_tensorboard.py": (
        "tensorboard",
        [0, 10, 20, 30, 40, 50],
        rf"step +(\d+): vanishing, ratio {NUM}, horizon (\d+)",
    ),
    "my_model.py": (None, None, rf"T=50: vanishing, {NUM} per step, horizon (\d+)"),
}


def run(path: Path, *args: str) -> str:
    res = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                         timeout=300, cwd=path.parent.parent)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    return res.stdout


def test_every_example_has_an_expectation():
    assert EXAMPLES
    assert sorted(p.name for p in EXAMPLES) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_prints_its_verdict(name, tmp_path):
    extra, steps, line = EXPECTED[name]
    if extra is not None and importlib.util.find_spec(extra) is None:
        pytest.skip(f"the {extra} extra is not installed")
    args = ("--logdir", str(tmp_path)) if name == "monitor_tensorboard.py" else ()
    out = run(ROOT / "examples" / name, *args)
    found = [m for m in (re.fullmatch(line, s.strip()) for s in out.splitlines()) if m]
    assert found, out
    if steps is not None:
        assert [int(m.group(1)) for m in found] == steps, out
    for m in found:
        groups = m.groups()[1:] if steps is not None else m.groups()
        ratio, horizon = float(groups[0]), int(groups[-1])
        # "vanishing" must mean it: the gradient at the first step is under 1e-3 of the last
        # (per step rate < 1 for my_model, whose first number is the per-step factor)
        assert (ratio < 1.0) if name == "my_model.py" else (ratio < 1e-3), out
        assert 0 < horizon < 50, out
        if name == "monitor_loop.py":
            assert float(groups[1]) < 0, out  # log-rate per step: negative when vanishing
    if name == "my_model.py":
        assert "Use a gated (lstm, gru), orthogonal-rnn or lru architecture" in out, out
    if name == "monitor_tensorboard.py":
        assert f"wrote 6 profiles to {tmp_path}" in out, out
        assert list(tmp_path.rglob("events.out.tfevents.*")), "no TensorBoard event file"
