"""The public API: every name in bpttlab.__all__ is the object its module defines, re-exported
lazily; modules are named after concepts, so no function shadows a module."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch

import bpttlab


@pytest.mark.parametrize("name", bpttlab.__all__)
def test_every_public_name_is_the_object_its_module_defines(name):
    obj = getattr(bpttlab, name)
    module = importlib.import_module(f"bpttlab.{bpttlab._EXPORTS[name]}")
    assert obj is getattr(module, name)
    assert not isinstance(obj, type(sys))  # a function, class or constant, never a module


def test_all_lists_every_export_and_nothing_else():
    assert sorted(bpttlab.__all__) == sorted(bpttlab._EXPORTS)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bpttlab.nope  # noqa: B018


def test_importing_submodules_first_still_gives_the_functions():
    code = (
        "import bpttlab.diagnosis, bpttlab.training, bpttlab\n"
        "print(callable(bpttlab.diagnose), callable(bpttlab.train),"
        " bpttlab.training.TrainConfig.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "TrainConfig"]


@pytest.mark.parametrize("module", ["bpttlab", "bpttlab.store", "bpttlab.stats", "bpttlab.theory",
                                    "bpttlab.dynamics", "bpttlab.cli"])  # fmt: skip
def test_light_modules_load_no_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_top_level_diagnose_runs():
    torch.manual_seed(0)
    model = bpttlab.build("rnn", 1, 8, 2)
    d = bpttlab.diagnose(model, torch.randn(4, 12, 1), lambda out: out[0][:, -1].sum())
    assert isinstance(d, bpttlab.Diagnosis) and d.T == 12


def test_the_version_is_the_one_the_package_is_built_with():
    import tomllib
    from pathlib import Path

    import bpttlab

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert bpttlab.__version__ == tomllib.loads(pyproject.read_text())["project"]["version"]
