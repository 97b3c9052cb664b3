"""Training: clipping bounds, divergence caught, determinism, truncation cuts the path, learning.

Small on purpose (H <= 16, T <= 20, B <= 32, a few steps): the whole file runs in seconds.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from bpttlab.models import RecurrentModel, build
from bpttlab.tasks import Batch, FixedBatch, Task, get_task
from bpttlab.training import (
    TrainConfig,
    TrainResult,
    _loss_and_backward,
    clip_gradients,
    train,
)

TOL = {"rtol": 1e-12, "atol": 1e-12}  # float64 comparisons


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run ~10x faster single-threaded on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def exploding() -> tuple[RecurrentModel, Task]:
    """ReLU RNN with W_hh = 1.5 I over 20 noisy steps: the gradient norm starts in the thousands."""
    torch.manual_seed(0)
    task = get_task("copy-bit", 20, noise=0.5)
    return build("rnn", 1, 16, 2, activation="relu", init="identity", gain=1.5), task


def model_for(arch: str, task: Task, hidden: int = 8, seed: int = 0, **kw) -> RecurrentModel:
    torch.manual_seed(seed)
    return build(arch, task.input_size, hidden, task.output_size, **kw)


@pytest.fixture
def optimizer_steps() -> Iterator[list[list[torch.Tensor]]]:
    """Every gradient the optimizer actually receives, copied in a global step pre-hook."""
    seen: list[list[torch.Tensor]] = []

    def hook(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        seen.append([g.detach().clone() for g in grads if g is not None])

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


# ---------------------------------------------------------------- config
BAD = [
    ("optimizer", "adamw", "adam, rmsprop, sgd"),
    ("lr", 0.0, "finite number > 0"),
    ("lr", math.nan, "finite number > 0"),
    ("lr", True, "finite number > 0"),
    ("steps", 0, r"int in \[1, 10000000\]"),
    ("steps", 1.5, r"int in \[1, 10000000\]"),
    ("batch_size", 0, r"int in \[1, 10000000\]"),
    ("clip", "l2", "none, norm, variable-norm, value"),
    ("clip_threshold", -1.0, "finite number > 0"),
    ("tbptt", 0, "int >= 1 or None"),
    ("eval_every", 0, "int >= 1 or None"),
    ("eval_batches", None, r"int in \[1, 10000000\]"),
    ("profile_every", -2, "int >= 1 or None"),
    ("seed", -1, r"\[0, 4294967295\]"),
    ("device", "tpu", "cpu, cuda"),
    ("steps", 10**12, r"int in \[1, 10000000\]"),  # a typo, refused before training
    ("fixed_batch", "yes", "True or False"),
]


@pytest.mark.parametrize(("name", "value", "allowed"), BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_config_rejects_bad_values_naming_field_value_and_allowed(name, value, allowed) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(f'{name}={value!r}')} .*{allowed}"):
        TrainConfig(**{name: value})


def test_config_round_trips_through_json() -> None:
    config = TrainConfig(optimizer="sgd", lr=1, clip="value", tbptt=3, eval_every=5, seed=7)
    assert config.lr == 1.0 and isinstance(config.lr, float)  # lr=1 and lr=1.0: one config
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown TrainConfig fields \\['momentum'\\]"):
        TrainConfig.from_dict({"momentum": 0.9})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_a_device_names_the_flag() -> None:
    task = get_task("copy-bit", 3)
    with pytest.raises(ValueError, match="--device cuda is not available"):
        train(model_for("rnn", task), task, TrainConfig(device="cuda", steps=1))


# ---------------------------------------------------------------- clipping
def test_clip_by_norm_bounds_what_the_optimizer_sees(optimizer_steps) -> None:
    model, task = exploding()
    threshold = 1.0
    config = TrainConfig(optimizer="sgd", lr=0.1, steps=15, batch_size=16, clip="norm")
    result = train(model, task, config)
    assert not result.diverged and len(optimizer_steps) == 15
    assert max(result.grad_norm) > 100 * threshold  # it does explode before clipping
    seen = [torch.stack([g.double().norm() for g in gs]).norm().item() for gs in optimizer_steps]
    for pre, post, measured in zip(result.grad_norm, result.clipped_grad_norm, seen, strict=True):
        assert measured <= threshold * (1 + 1e-6)
        assert post == pytest.approx(measured, rel=1e-12)
        if pre <= threshold:  # below the threshold clip_grad_norm_ leaves g alone
            assert post == pytest.approx(pre, rel=1e-6)


def test_clip_by_value_bounds_every_entry(optimizer_steps) -> None:
    model, task = exploding()
    config = TrainConfig(optimizer="sgd", lr=0.1, steps=10, batch_size=16, clip="value")
    result = train(model, task, config)
    assert len(optimizer_steps) == 10
    largest = [max(g.abs().max().item() for g in gs) for gs in optimizer_steps]
    assert max(largest) <= 1.0
    assert result.clipped_grad_max_abs == pytest.approx(largest, rel=1e-12)
    assert max(result.clipped_grad_max_abs) == 1.0  # some entries were clamped
    assert result.clipped_grad_norm[0] < result.grad_norm[0] / 10


def _grads(*values: list[float]) -> list[nn.Parameter]:
    params = [nn.Parameter(torch.zeros(len(v), dtype=torch.float64)) for v in values]
    for p, v in zip(params, values, strict=True):
        p.grad = torch.tensor(v, dtype=torch.float64)
    return params


def test_clip_gradients_by_each_rule_closed_form() -> None:
    # g = ([3, 4], [0, 12]): norms 5 and 12, total 13
    p = _grads([3.0, 4.0], [0.0, 12.0])
    clip_gradients(p, "norm", 1.3)  # one factor for all: 1.3 / 13 (torch adds 1e-6 to 13)
    for got, want in zip(p, ([0.3, 0.4], [0.0, 1.2]), strict=True):
        torch.testing.assert_close(
            got.grad, torch.tensor(want, dtype=torch.float64), rtol=1e-6, atol=0
        )
    p = _grads([3.0, 4.0], [0.0, 12.0])
    clip_gradients(p, "variable-norm", 6.0)  # each by its own norm: 5 < 6 stays, 12 -> 6
    torch.testing.assert_close(p[0].grad, torch.tensor([3.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(
        p[1].grad, torch.tensor([0.0, 6.0], dtype=torch.float64), rtol=1e-6, atol=0
    )
    p = _grads([3.0, -4.0], [0.5, 12.0])
    clip_gradients(p, "value", 2.0)
    assert p[0].grad.tolist() == [2.0, -2.0] and p[1].grad.tolist() == [0.5, 2.0]
    p = _grads([3.0, 4.0])
    clip_gradients(p, "none", 1.0)
    assert p[0].grad.tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="clip='l2' is not allowed"):
        clip_gradients(p, "l2", 1.0)
    with pytest.raises(ValueError, match="threshold=0.0 is not allowed"):
        clip_gradients(p, "norm", 0.0)


# ---------------------------------------------------------------- divergence
def test_exploding_run_with_huge_lr_diverges_without_raising() -> None:
    model, task = exploding()
    result = train(model, task, TrainConfig(optimizer="sgd", lr=100.0, steps=20, batch_size=16))
    k = result.diverged_at_step
    assert result.diverged and isinstance(k, int) and k < 20
    assert result.steps_run == k and len(result.train_loss) == len(result.grad_h0) == k + 1
    assert all(math.isfinite(v) for v in result.train_loss[:k] + result.grad_norm[:k])
    assert not (math.isfinite(result.train_loss[k]) and math.isfinite(result.grad_norm[k]))
    text = json.dumps(result.to_dict(), allow_nan=False)  # NaN/Inf become null
    assert json.loads(text)["diverged_at_step"] == k


def test_nan_weight_stops_at_step_zero_before_any_update() -> None:
    task = get_task("copy-bit", 5)
    model = model_for("lstm", task)
    with torch.no_grad():
        model.head.linear.bias[0] = math.nan
    before = copy.deepcopy(model.state_dict())
    result = train(model, task, TrainConfig(steps=5, eval_every=1))
    assert (result.diverged_at_step, result.steps_run) == (0, 0)
    assert math.isnan(result.loss) and math.isnan(result.accuracy)
    assert result.to_dict()["loss"] is None and result.to_dict()["accuracy"] is None
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], equal_nan=True, rtol=0, atol=0)


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("arch", ["lstm", "lru"])
def test_same_config_and_seed_give_bitwise_identical_runs(arch: str) -> None:
    task = get_task("latch", 8, n_classes=3)
    config = TrainConfig(lr=1e-2, steps=6, batch_size=8, clip="norm", eval_every=3, seed=3)
    runs = [(m := model_for(arch, task), train(m, task, config)) for _ in range(2)]
    (m1, r1), (m2, r2) = runs
    for key in ("train_loss", "grad_h0", "grad_norm", "clipped_grad_norm", "eval_history"):
        assert getattr(r1, key) == getattr(r2, key), key
    for (name, p1), p2 in zip(m1.named_parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2), name
    other = train(model_for(arch, task), task, TrainConfig(**{**config.to_dict(), "seed": 4}))
    assert other.train_loss != r1.train_loss  # the seed picks the batches


# ---------------------------------------------------------------- truncated BPTT
def test_tbptt_cuts_the_path_to_h0_and_leaves_the_forward_alone() -> None:
    task = get_task("copy-bit", 12)
    base = TrainConfig(lr=1e-2, steps=3, batch_size=8)
    full = train(model_for("lstm", task), task, base)
    cut = train(model_for("lstm", task), task, TrainConfig(**{**base.to_dict(), "tbptt": 4}))
    assert all(g > 0 for g in full.grad_h0)
    assert cut.grad_h0 == [0.0, 0.0, 0.0]  # exactly: no path from h_0 to the last step
    assert cut.train_loss[0] == pytest.approx(full.train_loss[0], rel=1e-6)  # same forward


def float64_case(arch: str, T: int) -> tuple[RecurrentModel, Task, Batch]:
    task = get_task("copy-bit", T, noise=0.3)
    model = model_for(arch, task).double()
    batch = task.sample(6, torch.Generator().manual_seed(1))
    return model, task, Batch(batch.x.double(), batch.target)


def grads_of(model: nn.Module) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def zero_state(model: RecurrentModel, B: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    h0 = torch.zeros(1, B, model.state_size, dtype=torch.float64, requires_grad=True)
    return (h0, torch.zeros_like(h0)) if model.name == "lstm" else h0


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru", "lru"])
@pytest.mark.parametrize("k", [9, 14])
def test_tbptt_window_covering_the_sequence_is_full_bptt(arch: str, k: int) -> None:
    model, task, batch = float64_case(arch, T=9)
    _loss_and_backward(model, task, batch, TrainConfig(), zero_state(model, 6))
    full = grads_of(model)
    _loss_and_backward(model, task, batch, TrainConfig(tbptt=k), zero_state(model, 6))
    torch.testing.assert_close(grads_of(model), full, **TOL)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru", "lru"])
def test_tbptt_equals_full_bptt_of_the_last_window_from_a_detached_state(arch: str) -> None:
    """Independent twin: for a last-step readout, truncation at k is full BPTT over the last
    chunk started from the (constant) state at its boundary."""
    T, k = 11, 4
    start = (T - 1) // k * k  # the last chunk is steps start..T-1
    model, task, batch = float64_case(arch, T)
    _loss_and_backward(model, task, batch, TrainConfig(tbptt=k), zero_state(model, 6))
    truncated = grads_of(model)
    with torch.no_grad():
        if isinstance(model.core, nn.RNNBase):
            _, h_start = model.core(batch.x[:, :start])  # state after `start` steps
        else:
            h_start = model.core(batch.x[:, :start])[:, -1].unsqueeze(0)  # (1, B, S)
    y, _ = model(batch.x[:, start:], h_start)  # (B, T - start, out)
    F.cross_entropy(y[:, -1], batch.target).backward()
    reference = grads_of(model)
    assert set(reference) <= set(truncated)
    for name, g in truncated.items():  # parameters the last chunk never touches get zero
        torch.testing.assert_close(g, reference.get(name, torch.zeros_like(g)), **TOL)


@pytest.mark.parametrize(("arch", "options"), [("skip-rnn", {}), ("gru", {"bidirectional": True})])
def test_tbptt_refuses_models_whose_state_cannot_be_carried(arch: str, options: dict) -> None:
    task = get_task("copy-bit", 6)
    with pytest.raises(ValueError, match=f"tbptt is not supported for model '{arch}'"):
        train(model_for(arch, task, **options), task, TrainConfig(tbptt=2, steps=1))


# ---------------------------------------------------------------- what is logged
@pytest.mark.parametrize("arch", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (2, True)])
def test_grad_h0_is_the_profiles_first_entry(arch: str, layers: int, bidirectional: bool) -> None:
    """Two routes to ||dL/dh_0|| of the top layer: h0.grad of the training backward, and the
    probe, for stacked and bidirectional models too."""
    task = get_task("copy-bit", 10, noise=0.3)
    model = model_for(arch, task, num_layers=layers, bidirectional=bidirectional).double()
    config = TrainConfig(lr=1e-2, steps=5, batch_size=8, profile_every=2)
    result = train(model, task, config)
    assert [p["step"] for p in result.profiles] == [0, 2, 4]
    for profile in result.profiles:
        assert len(profile["norms"]) == task.length + 1  # t = 0..T
        grad_h0 = result.grad_h0[profile["step"]]
        assert profile["norms"][0] == pytest.approx(grad_h0, rel=1e-10)


def test_result_serialises_with_every_field_and_eval_schedule() -> None:
    task = get_task("copy-bit", 5)
    result = train(model_for("gru", task), task, TrainConfig(steps=5, eval_every=2, batch_size=8))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert set(data) == {f for f in TrainResult.__dataclass_fields__}
    assert [e["step"] for e in data["eval_history"]] == [0, 2, 4, 5]  # step = updates done
    assert (data["accuracy"], data["loss"]) == (
        data["eval_history"][-1]["accuracy"],
        data["eval_history"][-1]["loss"],
    )
    per_step = ("train_loss", "grad_h0", "grad_norm", "clipped_grad_norm", "clipped_grad_max_abs")
    assert all(len(data[k]) == 5 for k in per_step)
    assert data["clipped_grad_norm"] == data["grad_norm"]  # clip="none"
    assert data["model"]["arch"] == "gru" and data["task"]["name"] == "copy-bit"
    assert TrainConfig.from_dict(data["config"]) == TrainConfig(steps=5, eval_every=2, batch_size=8)


# ---------------------------------------------------------------- data: held out, fixed
def recording(task: Task) -> list[tuple[str, Batch]]:
    calls: list[tuple[str, Batch]] = []
    sample = task.sample

    def record(batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        batch = sample(batch_size, generator, split)
        calls.append((split, batch))
        return batch

    task.sample = record  # type: ignore[method-assign]
    return calls


def test_evaluation_reads_the_digits_test_split() -> None:
    task = get_task("digits", 64)
    calls = recording(task)
    train(model_for("gru", task), task, TrainConfig(steps=3, batch_size=8, eval_batches=2))
    rows = {split: set(task.rows(split).tolist()) for split in ("train", "test")}
    assert [s for s, _ in calls] == ["train"] * 3 + ["test"] * 2
    for split, batch in calls:
        assert set(batch.index.tolist()) <= rows[split]


def test_eval_batches_are_held_out_and_the_same_at_every_evaluation() -> None:
    task = get_task("copy-bit", 5, noise=0.1)
    calls = recording(task)
    config = TrainConfig(steps=4, batch_size=8, eval_every=2, eval_batches=2)
    train(model_for("rnn", task), task, config)
    trained = [b.x for s, b in calls if s == "train"]
    evals = [b.x for s, b in calls if s == "test"]
    assert len(trained) == 4 and len(evals) == 3 * 2  # evaluations at steps 0, 2, 4
    assert all(not torch.equal(e, t) for e in evals for t in trained)
    assert all(torch.equal(evals[i], evals[i % 2]) for i in range(6))


def test_fixed_batch_draws_one_training_batch() -> None:
    task = get_task("copy-bit", 5, noise=0.1)
    calls = recording(task)
    config = TrainConfig(steps=5, batch_size=8, eval_batches=2, fixed_batch=True)
    result = train(model_for("rnn", task), task, config)
    # one training batch, drawn once and reused; evaluation draws eval_batches fresh ones
    assert [s for s, _ in calls] == ["train", "test", "test"]
    assert result.task["fixed_batch"] is True


# ---------------------------------------------------------------- it learns, quietly
def test_lstm_learns_copy_bit_quickly(capsys) -> None:
    task = get_task("copy-bit", 5)
    model = model_for("lstm", task, hidden=16)
    config = TrainConfig(lr=1e-2, steps=60, batch_size=32)
    result = train(model, task, config, progress=True)
    assert result.accuracy > 0.9 and result.loss < 0.2
    assert result.train_loss[-1] < result.train_loss[0] / 5
    assert result.wall_time_s < 10
    assert capsys.readouterr().err == ""  # stderr is not a terminal: no bar


def test_evaluation_of_a_fixed_batch_run_uses_fresh_batches() -> None:
    from bpttlab.training import evaluate

    task = get_task("latch", 6)  # noisy: every draw is a different sequence
    fixed = FixedBatch(task)
    config = TrainConfig(steps=1, batch_size=8, eval_batches=3)
    model = model_for("rnn", task)
    seen = []
    original = task.sample
    task.sample = lambda *a, **k: seen.append(a) or original(*a, **k)  # type: ignore[method-assign]
    fixed.sample(8, torch.Generator().manual_seed(0))  # the training batch, drawn once
    seen.clear()
    evaluate(model, fixed, config)
    assert len(seen) == 3  # three fresh held-out batches from the wrapped task
