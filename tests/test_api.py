"""The public API in bpttlab.__all__: every name is the object its module defines, including
the functions named like their modules (diagnose, train), whatever is imported first."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import bpttlab
import bpttlab.diagnose  # noqa: F401  (a submodule import must not shadow the function)
import bpttlab.train  # noqa: F401


@pytest.mark.parametrize("name", bpttlab.__all__)
def test_every_public_name_is_a_defined_object(name):
    obj = getattr(bpttlab, name)
    assert not isinstance(obj, type(sys))  # a function or class, never a module
    assert getattr(obj, "__module__", "bpttlab").startswith("bpttlab") or name in ("ARCHS", "TASKS")


def test_submodule_first_then_package_still_gives_the_functions():
    code = (
        "import bpttlab.diagnose, bpttlab.train, bpttlab\n"
        "print(callable(bpttlab.diagnose), callable(bpttlab.train))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_top_level_diagnose_runs():
    torch.manual_seed(0)
    model = bpttlab.build("rnn", 1, 8, 2)
    d = bpttlab.diagnose(model, torch.randn(4, 12, 1), lambda out: out[0][:, -1].sum())
    assert isinstance(d, bpttlab.Diagnosis) and d.T == 12
