"""Tasks: shapes, determinism, labels recoverable where stated, chance and baselines measured."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bpttlab.tasks import (
    AGREEMENT_VOCAB,
    TASKS,
    Batch,
    FixedBatch,
    Task,
    TaskConfig,
    get_task,
)

# One small instance of every task (and variant); lengths kept short so the file runs in seconds.
CASES = [
    ("copy-bit", 7, {}),
    ("copy-bit", 7, {"noise": 0.1}),
    ("latch", 6, {"n_classes": 4}),
    ("adding", 30, {}),
    ("adding", 30, {"variant": "modern"}),
    ("copy-memory", 5, {}),
    ("digits", 64, {}),
    ("digits", 64, {"permuted": True}),
    ("agreement", 9, {}),
]
IDS = [f"{n}-{L}-{'-'.join(map(str, kw.values()))}" for n, L, kw in CASES]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def logits_for(labels: torch.Tensor, n: int) -> torch.Tensor:
    """(...,) int64 -> (..., n) float32 logits that put all mass on ``labels``."""
    return 20.0 * torch.nn.functional.one_hot(labels, n).float()


def test_every_task_is_covered() -> None:
    assert {name for name, _, _ in CASES} == set(TASKS)


@pytest.mark.parametrize(("name", "length", "options"), CASES, ids=IDS)
def test_shapes_dtypes_and_label_ranges(name: str, length: int, options: dict) -> None:
    task = get_task(name, length, **options)
    batch = task.sample(16, gen())
    B, T, D = batch.x.shape
    assert (B, D) == (16, task.input_size)
    assert task.length <= T <= task.max_steps
    assert batch.x.dtype == torch.float32 and torch.isfinite(batch.x).all()
    assert task.kind in ("classification", "regression")
    if task.kind == "classification":
        assert batch.target.dtype == torch.int64
        assert 0 <= batch.target.min() and batch.target.max() < task.output_size
        assert batch.target.shape in ((B,), (B, T))
    else:
        assert task.output_size == 1 and batch.target.dtype == torch.float32
        assert batch.target.shape == (B,)
    assert 0 < task.chance < 1 and task.baseline_loss > 0


@pytest.mark.parametrize(("name", "length", "options"), CASES, ids=IDS)
def test_same_seed_same_batch_other_seed_other_batch(name: str, length: int, options: dict) -> None:
    task = get_task(name, length, **options)
    a, b, c = task.sample(8, gen(3)), task.sample(8, gen(3)), task.sample(8, gen(4))
    assert torch.equal(a.x, b.x) and torch.equal(a.target, b.target)
    assert not (a.x.shape == c.x.shape and torch.equal(a.x, c.x))


@pytest.mark.parametrize(("name", "length", "options"), CASES, ids=IDS)
def test_perfect_readout_scores_one_and_beats_baseline(
    name: str, length: int, options: dict
) -> None:
    """A readout that knows the answer at the steps the task reads is right everywhere."""
    task = get_task(name, length, **options)
    batch = task.sample(32, gen(1))
    B, T, _ = batch.x.shape
    if task.kind == "regression":
        y = batch.target[:, None, None].expand(B, T, 1).clone()
    elif batch.target.dim() == 2:  # copy-memory: an answer per step
        y = logits_for(batch.target, task.output_size)
    else:
        y = logits_for(batch.target, task.output_size)[:, None].expand(B, T, -1).clone()
    assert task.accuracy(y, batch) == 1.0
    assert task.loss(y, batch).item() < 1e-6 < task.baseline_loss


@pytest.mark.parametrize("name", ["copy-bit", "latch", "adding", "digits", "agreement"])
def test_only_the_last_step_is_read(name: str) -> None:
    """The right answer everywhere except the last step counts for nothing."""
    task = get_task(name, 64 if name == "digits" else 20)
    batch = task.sample(256, gen(2))
    B, T, _ = batch.x.shape
    if task.kind == "regression":
        y = batch.target[:, None, None].expand(B, T, 1).clone()
        y[:, -1] = 10.0
    else:
        y = logits_for(batch.target, task.output_size)[:, None].expand(B, T, -1).clone()
        y[:, -1] = logits_for(torch.zeros_like(batch.target), task.output_size)
    acc = task.accuracy(y, batch)
    assert acc == 0.0 if task.kind == "regression" else acc == (batch.target == 0).float().mean()


# ---------------------------------------------------------------- the label is where it is said


def test_copy_bit_target_is_the_first_input() -> None:
    batch = get_task("copy-bit", 12).sample(64, gen())
    assert torch.equal(batch.target, (batch.x[:, 0, 0] > 0).long())
    assert set(batch.x[:, 0, 0].tolist()) == {-1.0, 1.0}
    assert (batch.x[:, 1:] == 0).all()
    noisy = get_task("copy-bit", 12, noise=0.5).sample(64, gen())
    assert torch.equal(noisy.target, (noisy.x[:, 0, 0] > 0).long())
    assert 0.3 < noisy.x[:, 1:].std() < 0.7


def test_latch_class_is_the_one_hot_first_input() -> None:
    task = get_task("latch", 10, n_classes=5, noise=0.3)
    batch = task.sample(200, gen())
    assert torch.equal(batch.x[:, 0], torch.nn.functional.one_hot(batch.target, 5).float())
    assert set(batch.target.tolist()) == set(range(5))
    assert 0.2 < batch.x[:, 1:].std() < 0.4


def _marked(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (B, 2) and values (B, 2) of the pairs with marker 1."""
    markers = batch.x[..., 1]  # (B, T)
    assert ((markers == 1).sum(1) == 2).all()
    pos = torch.nonzero(markers == 1)[:, 1].view(-1, 2)  # (B, 2) sorted
    return pos, batch.x[..., 0].gather(1, pos)


@settings(max_examples=20, deadline=None)
@given(T=st.integers(4, 300), seed=st.integers(0, 2**31 - 1))
def test_adding_original_target_is_the_formula(T: int, seed: int) -> None:
    """Hochreiter & Schmidhuber 1997, exp. 4: target 0.5 + (X1 + X2)/4 from the marked values."""
    batch = get_task("adding", T).sample(16, gen(seed))
    steps = batch.x.shape[1]
    assert T <= steps <= T + T // 10
    pos, val = _marked(batch)
    torch.testing.assert_close(batch.target, 0.5 + val.sum(1) / 4, rtol=0, atol=1e-6)
    # X1 among the first 10 (or T) pairs; X2 among the first T//2 - 1 unmarked pairs, so at
    # most T//2 - 1. Positions are sorted, so either may come first.
    a, b = pos[:, 0], pos[:, 1]
    assert (((a < min(10, T)) & (b < T // 2)) | ((b < min(10, T)) & (a < T // 2))).all()
    markers = batch.x[..., 1]
    first_marked, last_marked = pos[:, 0] == 0, pos[:, 1] == steps - 1
    assert (markers[~first_marked, 0] == -1).all() and (markers[~last_marked, -1] == -1).all()
    assert (batch.x[first_marked, 0, 0] == 0).all()  # "we set X1 to zero"
    assert (batch.x[~first_marked, 0, 0] != 0).all()
    assert (batch.x[..., 0].abs() <= 1).all()
    assert ((markers != 0).sum(1) <= 4).all()


def test_adding_original_length_varies_per_batch_within_range() -> None:
    task, g = get_task("adding", 100), gen()
    lengths = {task.sample(2, g).x.shape[1] for _ in range(300)}
    assert lengths == set(range(100, 111))


@settings(max_examples=20, deadline=None)
@given(T=st.integers(4, 300), seed=st.integers(0, 2**31 - 1))
def test_adding_modern_target_is_the_sum_one_marker_per_half(T: int, seed: int) -> None:
    batch = get_task("adding", T, variant="modern").sample(16, gen(seed))
    assert batch.x.shape[1] == T
    pos, val = _marked(batch)
    torch.testing.assert_close(batch.target, val.sum(1), rtol=0, atol=1e-6)
    assert (pos[:, 0] < T // 2).all() and (pos[:, 1] >= T // 2).all()
    assert (batch.x[..., 0] >= 0).all() and (batch.x[..., 0] <= 1).all()


@pytest.mark.parametrize("L", [1, 10, 100])
def test_copy_memory_layout_and_target(L: int) -> None:
    """Arjovsky et al. 2016: 10 symbols, L blanks, marker 9, 9 blanks; target blanks then copy."""
    task = get_task("copy-memory", L)
    batch = task.sample(32, gen())
    tokens = batch.x.argmax(-1)  # (B, L + 20)
    assert batch.x.shape == (32, L + 20, 10) and (batch.x.sum(-1) == 1).all()
    assert ((tokens[:, :10] >= 1) & (tokens[:, :10] <= 8)).all()
    assert (tokens[:, 10 : L + 10] == 0).all() and (tokens[:, L + 10] == 9).all()
    assert (tokens[:, L + 11 :] == 0).all()
    assert (batch.target[:, : L + 10] == 0).all()
    assert torch.equal(batch.target[:, -10:], tokens[:, :10])


@pytest.mark.parametrize("L", [1, 50, 1000])
def test_copy_memory_baseline_formula_is_the_memoryless_loss(L: int) -> None:
    """Blanks, then uniform over the 8 symbols: cross-entropy 10 log(8) / (L + 20)."""
    task = get_task("copy-memory", L)
    batch = task.sample(4, gen())
    y = torch.full((4, L + 20, 9), -1e4)
    y[:, : L + 10, 0] = 0.0  # certain blank
    y[:, L + 10 :, 1:] = 0.0  # uniform over symbols 1..8
    assert task.baseline_loss == pytest.approx(10 * math.log(8) / (L + 20), rel=1e-12)
    assert task.loss(y, batch).item() == pytest.approx(task.baseline_loss, rel=1e-5)


def test_digits_pixels_are_the_scikit_learn_images() -> None:
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images, dtype=torch.float32)  # (1797, 8, 8)
    labels = torch.tensor(load_digits().target)
    batch = get_task("digits", 64).sample(50, gen())
    assert batch.index is not None
    torch.testing.assert_close(batch.x.view(50, 8, 8) * 16, images[batch.index], rtol=0, atol=0)
    assert torch.equal(batch.target, labels[batch.index])
    assert 0 <= batch.x.min() and batch.x.max() <= 1


def test_digits_splits_are_fixed_disjoint_and_cover_the_data() -> None:
    task = get_task("digits", 64)
    train, test = task.rows("train"), task.rows("test")
    assert (len(train), len(test)) == (1437, 360)
    assert torch.equal(torch.cat([train, test]).sort().values, torch.arange(1797))
    assert torch.equal(get_task("digits", 64, permuted=True).rows("test"), test)
    drawn = task.sample(500, gen(), split="test").index
    assert drawn is not None and torch.isin(drawn, test).all()
    full = task.full_batch("test")
    assert full.x.shape == (360, 64, 1) and torch.equal(full.index, test)


def test_digits_permutation_is_fixed_and_applied() -> None:
    plain, perm = get_task("digits", 64), get_task("digits", 64, permuted=True)
    p = perm.permutation
    assert p is not None and plain.permutation is None
    assert torch.equal(p.sort().values, torch.arange(64)) and not torch.equal(p, torch.arange(64))
    assert torch.equal(get_task("digits", 64, permuted=True).permutation, p)
    a, b = plain.sample(20, gen(5)), perm.sample(20, gen(5))
    assert torch.equal(a.index, b.index) and torch.equal(b.x, a.x[:, p])


def test_agreement_subject_carries_the_number_and_the_clause_does_not() -> None:
    task = get_task("agreement", 30)
    batch = task.sample(4000, gen())
    tokens = batch.x.argmax(-1)  # (B, T + 2)
    assert batch.x.shape == (4000, 32, len(AGREEMENT_VOCAB))
    assert torch.equal(batch.target, (tokens[:, 0] >= 5).long())  # tokens 5..9 are plural
    assert (tokens[:, 0] < 10).all() and (tokens[:, -1] == len(AGREEMENT_VOCAB) - 1).all()
    clause = tokens[:, 1:-1]
    is_noun = clause < 10
    assert 0.2 < is_noun.float().mean() < 0.3
    # A guesser that looks back to the nearest noun (an attractor half of the time) is at chance.
    last = torch.where(is_noun, torch.arange(30), -1).max(1).values  # (B,) -1: no noun
    nearest = clause.gather(1, last.clamp(min=0)[:, None])[:, 0]
    guess = torch.where(last >= 0, (nearest >= 5).long(), 0)
    assert abs((guess == batch.target).float().mean().item() - 0.5) < 0.03
    attractor = is_noun & ((clause >= 5).long() != batch.target[:, None])
    assert attractor.any(1).float().mean() > 0.95
    words = task.decode(batch.x[0]).split()
    assert len(words) == 32 and words[-1] == "[verb]"


# ------------------------------------------------------------- chance and baselines, measured


@pytest.mark.parametrize(
    ("name", "length", "options"),
    [c for c in CASES if c[0] not in ("copy-memory", "adding", "digits")],
)
def test_memoryless_guesser_scores_chance(name: str, length: int, options: dict) -> None:
    """A constant readout (uniform logits, argmax class 0) scores chance and the baseline."""
    task = get_task(name, length, **options)
    batch = task.sample(20_000, gen(7))
    y = torch.zeros(*batch.x.shape[:2], task.output_size)
    assert task.accuracy(y, batch) == pytest.approx(task.chance, abs=0.015)
    assert task.loss(y, batch).item() == pytest.approx(task.baseline_loss, rel=1e-5)


def test_copy_memory_constant_symbol_scores_one_in_eight() -> None:
    task = get_task("copy-memory", 20)
    batch = task.sample(4000, gen(7))
    y = torch.zeros(4000, 40, 9)
    y[..., 3] = 1.0
    assert task.accuracy(y, batch) == pytest.approx(task.chance, abs=0.01)


@pytest.mark.parametrize(("variant", "guess"), [("original", 0.5), ("modern", 1.0)])
@pytest.mark.parametrize("T", [6, 100])
def test_adding_constant_guess_scores_chance_and_baseline(
    variant: str, guess: float, T: int
) -> None:
    task = get_task("adding", T, variant=variant)
    batch = task.sample(40_000, gen(7))
    y = torch.full((*batch.x.shape[:2], 1), guess)
    assert task.accuracy(y, batch) == pytest.approx(task.chance, abs=0.006)
    assert task.loss(y, batch).item() == pytest.approx(task.baseline_loss, rel=0.03)
    if variant == "modern":
        assert task.baseline_loss == pytest.approx(0.1667, abs=1e-4)
        assert task.chance == pytest.approx(0.0784)


def test_digits_constant_guess_is_near_chance() -> None:
    task = get_task("digits", 64)
    batch = task.full_batch("test")
    for label in range(10):  # the test split is stratified: every constant guess scores 0.1
        y = logits_for(torch.full((360, 64), label), 10)
        assert task.accuracy(y, batch) == pytest.approx(0.1, abs=1e-12)
    assert task.baseline_loss == pytest.approx(math.log(10), abs=1e-3)
    assert task.baseline_loss <= math.log(10)


# ------------------------------------------------------------------- fixed batch and configs


def test_fixed_batch_returns_the_same_batch_every_call() -> None:
    task = get_task("copy-bit", 10, fixed_batch=True)
    assert isinstance(task, FixedBatch) and task.config.fixed_batch
    g = gen()
    a, b = task.sample(32, g), task.sample(32, g)
    assert a is b
    fresh = get_task("copy-bit", 10)
    assert torch.equal(a.x, fresh.sample(32, gen()).x)  # the first call's draw
    assert task.sample(8, g).x.shape[0] == 8  # another size: its own batch
    digits = FixedBatch(get_task("digits", 64))
    assert digits.full_batch("test").x.shape == (360, 64, 1)  # attributes pass through
    y = torch.zeros(32, 10, 2)
    assert task.loss(y, a).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize(("name", "length", "options"), CASES, ids=IDS)
def test_config_round_trips_with_defaults_filled(name: str, length: int, options: dict) -> None:
    task = get_task(name, length, **options)
    data = task.config.to_dict()
    assert data["name"] == name and data["length"] == length
    assert get_task(**data).config == task.config == TaskConfig.from_dict(data)
    fixed = get_task(name, length, fixed_batch=True, **options).config
    assert fixed.to_dict() == {**data, "fixed_batch": True}


def test_equal_options_give_equal_configs() -> None:
    assert get_task("copy-bit", 5, noise=0).config == get_task("copy-bit", 5).config
    assert get_task("latch", 5).config.to_dict() == {
        "name": "latch",
        "length": 5,
        "fixed_batch": False,
        "n_classes": 2,
        "noise": 0.2,
    }


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"name": "copy", "length": 5}, ["name='copy'", "copy-bit", "agreement"]),
        ({"name": "copy-bit", "length": 0}, ["length=0", ">= 1"]),
        ({"name": "copy-bit", "length": -3}, ["length=-3"]),
        ({"name": "copy-bit", "length": 2.5}, ["length=2.5"]),
        ({"name": "copy-bit", "length": True}, ["length=True"]),
        ({"name": "copy-bit", "length": "10"}, ["length='10'"]),
        ({"name": "adding", "length": 3}, ["length=3", ">= 4"]),
        ({"name": "digits", "length": 63}, ["length=63", "64"]),
        ({"name": "copy-bit", "length": 5, "noise": -1.0}, ["noise=-1.0", ">= 0"]),
        ({"name": "copy-bit", "length": 5, "noise": math.inf}, ["noise=inf"]),
        ({"name": "latch", "length": 5, "n_classes": 1}, ["n_classes=1", ">= 2"]),
        ({"name": "latch", "length": 5, "classes": 3}, ["classes=3", "n_classes, noise"]),
        ({"name": "adding", "length": 50, "variant": "new"}, ["variant='new'", "modern"]),
        ({"name": "digits", "length": 64, "permuted": 1}, ["permuted=1", "True or False"]),
        ({"name": "agreement", "length": 5, "noun_rate": 0.0}, ["noun_rate=0.0", "(0, 1]"]),
        ({"name": "copy-memory", "length": 5, "k": 3}, ["k=3", "allowed: none"]),
        ({"name": "copy-bit", "length": 5, "fixed_batch": 1}, ["fixed_batch=1"]),
    ],
)
def test_bad_arguments_raise_naming_argument_value_and_allowed(kwargs: dict, words: list) -> None:
    with pytest.raises(ValueError) as info:
        get_task(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_bad_sample_and_readout_arguments_raise() -> None:
    task: Task = get_task("copy-bit", 5)
    with pytest.raises(ValueError, match="batch_size=0"):
        task.sample(0, gen())
    with pytest.raises(ValueError, match="split='val'.*train, test"):
        task.sample(4, gen(), split="val")
    with pytest.raises(ValueError, match="generator=0"):
        task.sample(4, 0)  # type: ignore[arg-type]
    batch = task.sample(4, gen())
    with pytest.raises(ValueError, match=r"y has shape \(4, 5, 3\).*\(4, 5, 2\)"):
        task.loss(torch.zeros(4, 5, 3), batch)
    with pytest.raises(ValueError, match=r"y has shape \(4, 2\)"):
        task.accuracy(torch.zeros(4, 2), batch)


def test_parse_task_converts_by_the_option_type() -> None:
    from bpttlab.tasks import parse_task

    assert parse_task("copy-bit") == ("copy-bit", {})
    assert parse_task("copy-bit:noise=0.5") == ("copy-bit", {"noise": 0.5})
    assert parse_task("latch:n_classes=4,noise=0") == ("latch", {"n_classes": 4, "noise": 0.0})
    assert parse_task("digits:permuted=true") == ("digits", {"permuted": True})
    assert parse_task("adding:variant=modern") == ("adding", {"variant": "modern"})
    for bad, named in [
        ("sorting", "task"),
        ("copy-bit:volume=2", "noise"),
        ("latch:n_classes=two", "int"),
        ("digits:permuted=maybe", "bool"),
    ]:
        with pytest.raises(ValueError, match=named):
            parse_task(bad)
