"""`bpttlab profile` and `bpttlab diagnose` end to end, against the library computed directly."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bpttlab.cli import main
from bpttlab.models import build
from bpttlab.probe import gradient_profile
from bpttlab.tasks import get_task

from .test_cli import run_error, run_json

EXAMPLE = "examples/my_model.py:factory"


def _profile(capsys, tmp_path, *args):
    return run_json(capsys, "profile", "--db", str(tmp_path / "db.sqlite"), *args)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru", "irnn", "lru", "rnn:activation=sigmoid"])
def test_profile_json_has_t_plus_1_norms_and_a_diagnosis(capsys, tmp_path, arch):
    doc = _profile(capsys, tmp_path, "--arch", arch, "--length", "20", "--hidden", "8")
    assert doc["arch"] == arch and doc["length"] == 20
    assert len(doc["norms"]) == 21
    assert doc["diagnosis"]["verdict"] in ("vanishing", "exploding", "healthy")
    assert {"decay_rate", "horizon"} <= set(doc["diagnosis"])


def test_profile_equals_the_library_computed_directly(capsys, tmp_path):
    doc = _profile(
        capsys,
        tmp_path,
        "--arch",
        "lstm",
        "--length",
        "30",
        "--hidden",
        "8",
        "--batch",
        "16",
        "--seed",
        "3",
        "--dtype",
        "float64",
    )
    task = get_task("copy-bit", 30)
    torch.manual_seed(3)
    model = build("lstm", task.input_size, 8, task.output_size).double()
    batch = task.sample(16, torch.Generator().manual_seed(4), split="test")
    prof = gradient_profile(model, batch.x.double(), lambda o: task.loss(o[0], batch))
    np.testing.assert_allclose(doc["norms"], prof.norms, rtol=1e-12)
    # the last entry is the direct gradient at the readout: dL/dh_T through the linear head
    y, hs = model(batch.x.double())
    hs.retain_grad()
    F.cross_entropy(y[:, -1], batch.target).backward()
    assert doc["norms"][-1] == pytest.approx(hs.grad[:, -1].norm().item(), rel=1e-10)


def test_profile_is_cached_and_force_recomputes(capsys, tmp_path, monkeypatch):
    args = ("--arch", "gru", "--length", "10", "--hidden", "4")
    first = _profile(capsys, tmp_path, *args)
    import bpttlab.experiments as ex

    def boom(config):
        raise AssertionError("recomputed although the store has this run")

    monkeypatch.setattr(ex, "profile_run", boom)
    assert _profile(capsys, tmp_path, *args) == first
    assert main(["profile", "--db", str(tmp_path / "db.sqlite"), *args, "--force"]) == 1
    assert "recomputed although" in capsys.readouterr().err  # --force did call it


def test_profile_trains_and_plots(capsys, tmp_path):
    doc = _profile(
        capsys,
        tmp_path,
        "--arch",
        "lstm",
        "--length",
        "5",
        "--hidden",
        "8",
        "--train-steps",
        "30",
        "--plot",
        str(tmp_path / "p.png"),
    )
    assert doc["trained"]["steps"] == 30 and 0 <= doc["trained"]["accuracy"] <= 1
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_profile_table(capsys, tmp_path):
    assert (
        main(
            [
                "profile",
                "--db",
                str(tmp_path / "d.db"),
                "--length",
                "20",
                "--hidden",
                "4",
                "--every",
                "5",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "verdict:" in text and "||dL/dh_t||" in text


@pytest.mark.parametrize(
    "args,named",
    [
        (["--arch", "transformer"], "arch"),
        (["--arch", "lstm:forget=1"], "forget"),
        (["--task", "sorting"], "--task"),
        (["--length", "0"], "--length"),
        (["--layers", "2", "--arch", "lru"], "num_layers"),
        (["--dtype", "float16"], "--dtype"),
        (["--device", "tpu"], "--device"),
        (["--train-steps", "-1"], "--train-steps"),
    ],
)
def test_profile_bad_input(capsys, tmp_path, args, named):
    assert named in run_error(capsys, "profile", "--db", str(tmp_path / "d.db"), *args)


def test_diagnose_example_model(capsys):
    doc = run_json(capsys, "diagnose", "--model", EXAMPLE, "--length", "40")
    assert len(doc["norms"]) == 41 and doc["method"] == "cell-hook"
    assert doc["diagnosis"]["verdict"] in ("vanishing", "exploding", "healthy")
    assert main(["diagnose", "--model", EXAMPLE]) == 0
    assert "verdict:" in capsys.readouterr().out


def test_diagnose_torchscript_and_batch_file(capsys, tmp_path):
    torch.manual_seed(0)
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; users still have files
        warnings.simplefilter("ignore", DeprecationWarning)
        rnn = torch.jit.script(torch.nn.GRU(3, 5, batch_first=True))
        rnn.save(str(tmp_path / "gru.pt"))
    (tmp_path / "batch.py").write_text(
        "import torch\n\ndef make():\n    return torch.randn(4, 12, 3, generator="
        "torch.Generator().manual_seed(1))\n"
    )
    doc = run_json(
        capsys,
        "diagnose",
        "--model",
        str(tmp_path / "gru.pt"),
        "--batch",
        f"{tmp_path / 'batch.py'}:make",
    )
    assert len(doc["norms"]) == 13
    plain = torch.nn.GRU(3, 5, batch_first=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plain.load_state_dict(torch.jit.load(str(tmp_path / "gru.pt")).state_dict())
    x = torch.randn(4, 12, 3, generator=torch.Generator().manual_seed(1))
    ref = gradient_profile(plain, x, lambda o: o[0][:, -1].sum())
    np.testing.assert_allclose(doc["norms"], ref.norms, rtol=1e-5)


@pytest.mark.parametrize(
    "ref,named",
    [
        ("examples/my_model.py", "--model"),
        ("examples/nope.py:factory", "--model"),
        ("examples/my_model.py:nothing", "--model"),
        ("missing.pt", "--model"),
    ],
)
def test_diagnose_bad_model_refs(capsys, ref, named):
    assert named in run_error(capsys, "diagnose", "--model", ref)


def test_json_is_one_document(capsys, tmp_path):
    capsys.readouterr()
    main(["profile", "--db", str(tmp_path / "d.db"), "--length", "5", "--hidden", "4", "--json"])
    json.loads(capsys.readouterr().out)


def test_diagnose_refuses_torchscript_of_a_non_rnn(capsys, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "lin.pt"))
    line = run_error(capsys, "diagnose", "--model", str(tmp_path / "lin.pt"))
    assert "--model" in line and "nn.RNN, nn.LSTM or nn.GRU" in line


def _train(capsys, tmp_path, *args):
    return run_json(capsys, "train", "--db", str(tmp_path / "db.sqlite"), *args)


def test_train_json_shape_and_equals_the_library(capsys, tmp_path):
    from bpttlab.training import TrainConfig, train

    doc = _train(
        capsys,
        tmp_path,
        "--arch",
        "rnn",
        "--length",
        "8",
        "--hidden",
        "8",
        "--steps",
        "25",
        "--batch",
        "16",
        "--seed",
        "2",
    )
    assert {"accuracy", "loss", "diverged", "diverged_at_step", "grad_h0"} <= set(doc)
    assert len(doc["grad_h0"]) == 25 and doc["diverged"] is False  # one per step
    task = get_task("copy-bit", 8)
    torch.manual_seed(2)
    model = build("rnn", task.input_size, 8, task.output_size)
    ref = train(model, task, TrainConfig(steps=25, batch_size=16, lr=1e-2, seed=2)).to_dict()
    assert doc["grad_h0"] == ref["grad_h0"] and doc["accuracy"] == ref["accuracy"]


def test_train_divergence_is_reported_not_raised(capsys, tmp_path):
    # ReLU RNN, W_hh = 1.5 I, noisy inputs: the first gradient norm is ~2e3 and SGD at lr 100
    # blows the weights up, so step 1 is NaN (same setting as tests/test_train.py)
    arch = "rnn:activation=relu,init=identity,gain=1.5"
    doc = _train(capsys, tmp_path, "--arch", arch, "--task", "copy-bit:noise=0.5",
                 "--optimizer", "sgd", "--lr", "100", "--length", "20", "--hidden", "16",
                 "--steps", "20", "--batch", "16")  # fmt: skip
    assert doc["diverged"] is True and isinstance(doc["diverged_at_step"], int)


def test_train_is_cached(capsys, tmp_path, monkeypatch):
    args = ("--length", "5", "--hidden", "4", "--steps", "5")
    first = _train(capsys, tmp_path, *args)
    import bpttlab.experiments as ex

    monkeypatch.setattr(ex, "train_run", lambda c: (_ for _ in ()).throw(AssertionError("rerun")))
    assert _train(capsys, tmp_path, *args) == first


@pytest.mark.parametrize(
    "args,named",
    [
        (["--clip", "bogus"], "--clip"),
        (["--steps", "0"], "--steps"),
        (["--batch", "-3"], "--batch"),
        (["--optimizer", "lbfgs"], "--optimizer"),
        (["--tbptt", "0"], "--tbptt"),
        (["--clip-threshold", "-1"], "--clip-threshold"),
        (["--arch", "rnn:activation=swish"], "activation"),
        (["--task", "copy"], "--task"),
        (["--task", "copy-bit:noise=loud"], "noise"),
        (["--task", "digits", "--length", "20"], "--length"),
    ],
)
def test_train_bad_input(capsys, tmp_path, args, named):
    assert named in run_error(capsys, "train", "--db", str(tmp_path / "d.db"), *args)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_diagnose_time_first_rnn_reads_time_on_dim_0(capsys, tmp_path, kind):
    # PyTorch's default layout is (T, B, I): the default batch and readout must follow it
    torch.manual_seed(0)
    rnn = getattr(torch.nn, kind)(1, 8)  # batch_first=False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(rnn).save(str(tmp_path / "m.pt"))
    doc = run_json(capsys, "diagnose", "--model", str(tmp_path / "m.pt"), "--length", "30",
                   "--batch-size", "7")  # fmt: skip
    assert doc["length"] == 30 and len(doc["norms"]) == 31
    gen = torch.Generator().manual_seed(0)  # the default batch, built independently
    target = torch.randint(0, 2, (7,), generator=gen)
    x = 0.1 * torch.randn(7, 30, 1, generator=gen)
    x[:, 0, :] = (2.0 * target - 1.0)[:, None]
    ref = gradient_profile(rnn, x.transpose(0, 1), lambda o: o[0][-1].sum())
    np.testing.assert_allclose(doc["norms"], ref.norms, rtol=1e-5)


@pytest.mark.parametrize("task,length,T", [("agreement", 10, 12), ("copy-memory", 5, 25)])
def test_profile_T_is_the_sequence_length(capsys, tmp_path, task, length, T):
    doc = _profile(capsys, tmp_path, "--task", task, "--length", str(length), "--hidden", "4")
    assert doc["length"] == length and doc["T"] == T and len(doc["norms"]) == T + 1
    assert doc["diagnosis"]["T"] == T
    main(["profile", "--db", str(tmp_path / "db.sqlite"), "--task", task, "--length",
          str(length), "--hidden", "4", "--every", str(T)])  # fmt: skip
    text = capsys.readouterr().out
    assert f"T={T}" in text and f"│ {T} │          0 │" in text  # steps back 0 is t = T


def test_db_that_is_a_folder_exits_2(capsys, tmp_path):
    line = run_error(capsys, "profile", "--db", str(tmp_path), "--length", "3")
    assert "'--db'" in line and "is a folder" in line


def test_diagnose_model_file_imports_a_module_beside_it(capsys, tmp_path):
    # as `python model.py` would: the file's own folder is on the import path
    (tmp_path / "bpttlab_sibling_parts.py").write_text(
        "import torch.nn.functional as F\n"
        "from torch import nn\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, i, o):\n"
        "        super().__init__()\n"
        "        self.rnn = nn.GRU(i, 6, batch_first=True)\n"
        "        self.out = nn.Linear(6, o)\n\n"
        "    def forward(self, x):\n"
        "        return self.out(self.rnn(x)[0][:, -1])\n\n\n"
        "def loss(y, target):\n"
        "    return F.cross_entropy(y, target)\n"
    )
    (tmp_path / "model.py").write_text(
        "from bpttlab_sibling_parts import Net, loss\n\n\n"
        "def factory(i, o):\n"
        "    net = Net(i, o)\n"
        "    return {'model': net, 'loss': loss, 'probe': {'rnn': net.rnn}}\n"
    )
    doc = run_json(capsys, "diagnose", "--model", f"{tmp_path / 'model.py'}:factory")
    assert doc["diagnosis"]["verdict"] in ("vanishing", "healthy", "exploding")
