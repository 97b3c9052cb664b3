"""Every command under bad input: exit 2, one stderr line naming an option, nothing on stdout
under --json, never a traceback, and never an allocation that should have been refused.

A property-based test (hypothesis) draws a command, one of its options and a bad value for it
(from the table below, or random text for options that take a name or a spec), and runs the
command in this process under an address-space limit: an oversized allocation would fail the
test instead of the machine.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpttlab.cli import app, main

COMMAND = typer.main.get_command(app)
COMMANDS = dict(COMMAND.commands)  # type: ignore[attr-defined]

# what each command needs to run at all (its required options), at tiny sizes
REQUIRED = {
    "decay": ["-l", "0.9", "-d", "0.5"],
    "diagnose": ["--model", "examples/my_model.py:factory"],
}
NOT_A_FILE = "/no/such/place/file"
HUGE = "1000000000000"
INTS = ["0", "-1", "abc", "1.5", "nan", "", HUGE]
FLOATS = ["nan", "inf", "-inf", "abc", ""]
BAD: dict[str, list[str]] = {
    # sizes and counts: >= 1, finite, and small enough to fit in memory
    **{
        o: INTS
        for o in (
            "--hidden",
            "--length",
            "--batch",
            "--batch-size",
            "--input-size",
            "--output-size",
            "--steps",
            "--every",
            "--top",
            "--k",
            "--seeds",
            "--workers",
            "--train-steps",
            "--tbptt",
            "--eval-every",
            "--profile-every",
            "--layers",
        )
    },  # fmt: skip
    "--warmup": ["-1", "abc", HUGE],
    "--seed": ["-1", "abc", "4294967296", "1e3"],
    # numbers with ranges
    **{
        o: FLOATS for o in ("--gain", "--eigenvalue", "-l", "--derivative", "-d", "--input-scale")
    },  # fmt: skip
    "--threshold": [*FLOATS, "0", "1", "2", "-1e-6"],
    "--margin": [*FLOATS, "0", "1", "1.5"],
    "--lr": [*FLOATS, "0", "-0.1"],
    "--noise": [*FLOATS, "-1"],
    "--clip-threshold": [*FLOATS, "0", "-1"],
    "--norm-threshold": [*FLOATS, "0"],
    "--value-threshold": [*FLOATS, "-0.5"],
    # lists
    "--lengths": ["0", "-5", "a b", "", "3 x", HUGE],
    "--x": ["abc", "", "1 nan"],
    "--gains": ["a", "", "nan"],
    "--radii": ["-1", "0", "a", "nan"],
    "--windows": ["0", "-2", "a", ""],
    "--activations": ["foo", "softmax", "dropout", "", "_private"],
    # names and specs
    "--arch": [
        "transformer",
        "lstm:forget_bias=7",
        "rnn:gain=nan",
        "rnn:num_layers=0",
        "lru:max_phase=inf",
        ":",
        "rnn:gain",
        "rnn:gain=1,gain=2",
        "irnn:gain=inf",
    ],
    "--archs": ["transformer", "rnn lstm:forget=1", "rnn:gain=nan", ""],
    "--task": [
        "sorting",
        "copy-bit:noise=-1",
        "copy-bit:noise=nan",
        "adding:variant=x",
        "latch:n_classes=1",
        "digits:permuted=maybe",
        "",
    ],
    "--optimizer": ["lbfgs", "", "adam lbfgs"],
    "--clip": ["bogus", ""],
    "--dtype": ["float16", "int8"],
    "--device": ["tpu", "cuda:9", ""],
    "--executor": ["dask", ""],
    "--init": ["he", ""],
    "--activation": ["swish", ""],
    "--inputs": ["ones"],
    "--h0": ["ones"],
    "--mode": ["half"],
    "--preset": ["book"],
    "--lesson": ["L9", "l1"],
    "--claims": ["some", "all", ""],
    # files
    "--weights": [NOT_A_FILE + ".npy", "examples", "README.md", NOT_A_FILE + ".pt"],
    "--key": ["weight_hh_l0"],  # without --weights
    "--model": [
        NOT_A_FILE + ".py:factory",
        "examples/my_model.py",
        "examples/my_model.py:nope",
        "README.md:factory",
        NOT_A_FILE + ".pt",
        "README.pt",
    ],
    "--batch:diagnose": [NOT_A_FILE + ".py:make", "examples/my_model.py:nope"],
    "--db": ["examples", "README.md"],
    "--plot": ["examples", "examples/"],
    "--out": ["README.md", "examples"],
    "--address": ["auto"],  # only with --executor ray
}
# options that take any text (a name or a spec): also fed random text
FREE_TEXT = {"--arch", "--archs", "--task", "--optimizer", "--clip", "--dtype", "--device",
             "--executor", "--lesson", "--preset", "--activations", "--claims"}  # fmt: skip
FLAGS_WITHOUT_VALUES = {"--json", "--force", "--refine", "--fixed-batch", "--fresh-batches",
                        "--quick", "--markdown", "--help", "--version"}  # fmt: skip


def _options(command: str) -> list[str]:
    names = []
    for p in COMMANDS[command].params:
        for opt in p.opts:
            if opt.startswith("-") and opt not in FLAGS_WITHOUT_VALUES and not p.is_flag:
                names.append(opt)
    return names


def _bad_values(command: str, option: str) -> list[str]:
    if option == "--batch" and command == "diagnose":
        return BAD["--batch:diagnose"]
    if option == "--address":  # only a mistake without --executor ray
        return BAD["--address"]
    if command == "decay" and option == "--lengths":  # exact in log space for any length
        return [v for v in BAD[option] if v != HUGE]
    if option in ("--top", "--every", "--tbptt", "--eval-every", "--profile-every"):
        return [v for v in BAD[option] if v != HUGE]  # larger than T: all rows, full BPTT
    if option == "--train-steps":  # 0: profile untrained
        return [v for v in BAD[option] if v != "0"]
    return BAD.get(option, [])


CASES = [(c, o, v) for c in COMMANDS for o in _options(c) for v in _bad_values(c, o)]
# commands whose options some value can't be bad for (e.g. --out of tour makes a folder)
SKIP = {("tour", "--out"), ("tour", "--out")}
CASES = [case for case in CASES if case[:2] not in SKIP]


@contextlib.contextmanager
def address_space(limit_gb: float) -> Iterator[None]:
    """Cap this process's further allocations at ``limit_gb`` GB above what it uses now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    cap = used + int(limit_gb * 1e9)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else
                                            min(cap, hard), hard))  # fmt: skip
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _run(capsys: pytest.CaptureFixture[str], tmp: Path, command: str, option: str, value: str):
    args = [command, *REQUIRED.get(command, [])]
    if "--db" in _options(command) and option != "--db":
        args += ["--db", str(tmp / "bad.db")]
    args += [option, value, "--json"]
    capsys.readouterr()
    with address_space(4.0):
        code = main(args)
    out, err = capsys.readouterr()
    return args, code, out, err


def _check(args: list[str], code: int, out: str, err: str, command: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (args, code, err)
    assert out == "", (args, out)  # under --json: nothing on stdout
    assert len(lines) == 1 and lines[0].startswith("bpttlab: error:"), (args, err)
    assert "Traceback" not in err, (args, err)
    # typer's validator (pydantic) wording never reaches the user: the value and the rule do
    assert "Input should be" not in lines[0] and "Value error," not in lines[0], lines[0]
    named = [o for o in _options(command) + ["--help"] if f"'{o}'" in lines[0] or o in lines[0]]
    assert named, (args, lines[0])  # the line names one of the command's options


def test_every_option_of_every_command_has_help_text():
    for name, command in COMMANDS.items():
        assert command.help, name
        for p in command.params:
            assert p.help and p.help.strip(), (name, p.opts)


def test_every_command_and_option_has_bad_values_to_try():
    missing = [(c, o) for c in COMMANDS for o in _options(c) if not _bad_values(c, o)
               and (c, o) not in SKIP]  # fmt: skip
    # options every value of which is acceptable (free file paths, names)
    allowed_free = {"--out", "--batch", "--key", "--address", "--plot", "--db"}
    assert [m for m in missing if m[1] not in allowed_free] == []
    assert len(CASES) > 400


@pytest.mark.parametrize(("command", "option", "value"), CASES,
                         ids=[f"{c} {o} {v!r}" for c, o, v in CASES])  # fmt: skip
def test_bad_value_exits_2_naming_the_option(capsys, tmp_path, monkeypatch, command, option, value):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # examples/, README.md
    args, code, out, err = _run(capsys, tmp_path, command, option, value)
    _check(args, code, out, err, command)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_text_for_names_and_specs_is_refused(capsys, tmp_path, monkeypatch, data):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    pairs = [(c, o) for c in COMMANDS for o in _options(c) if o in FREE_TEXT]
    command, option = data.draw(st.sampled_from(pairs))
    alphabet = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
    text = data.draw(st.text(alphabet, min_size=1, max_size=30).filter(
        lambda s: s.strip() and not s.strip().startswith("-")))  # fmt: skip
    valid = {
        "rnn",
        "lstm",
        "gru",
        "irnn",
        "lru",
        "copy-bit",
        "latch",
        "adding",
        "digits",
        "adam",
        "sgd",
        "rmsprop",
        "none",
        "norm",
        "value",
        "float32",
        "float64",
        "cpu",
        "local",
        "ray",
        "L0",
        "L1",
        "L3",
        "lesson",
        "tanh",
        "relu",
        "sigmoid",
        "gelu",
    }
    if any(w in valid for w in text.replace(",", " ").split()):
        return  # an accidentally valid value is not a bad input
    args, code, out, err = _run(capsys, tmp_path, command, option, text)
    _check(args, code, out, err, command)


def test_contradictions_name_both_options(capsys, tmp_path):
    np = pytest.importorskip("numpy")
    np.save(tmp_path / "w.npy", np.eye(4))
    w = str(tmp_path / "w.npy")
    for args, names in [
        (["walk", "--preset", "lesson", "--weights", w], ("--weights", "--preset")),
        (["spectrum", "--key", "weight_hh_l0"], ("--key", "--weights")),
        (["lyapunov", "--gains", "1", "2", "--weights", w], ("--gains", "--weights")),
        (["profile", "--arch", "lstm:num_layers=2", "--layers", "3", "--db",
          str(tmp_path / "d.db")], ("--layers", "--arch")),
        (["cliff", "--address", "auto", "--db", str(tmp_path / "d.db")], ("--address",
                                                                          "--executor")),
    ]:  # fmt: skip
        capsys.readouterr()
        assert main(args) == 2, args
        line = capsys.readouterr().err.strip()
        assert all(n in line for n in names), (args, line)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["walk", "--every", "0"], "Invalid value for '--every': '0' is not allowed: must be >= 1"),
        (["duel", "--seeds=0"], "Invalid value for '--seeds': '0' is not allowed: must be >= 1"),
        (["walk", "--mode", "foo"], "Invalid value for '--mode': 'foo' is not one of 'full'"),
        (["decay", "-l", "abc"], "Invalid value for '--eigenvalue' / '-l': 'abc' is not allowed: "
                                 "must be a valid number"),
        ([], "a command is missing; 'bpttlab --help' lists them"),
    ],
)  # fmt: skip
def test_validator_errors_show_the_value_and_the_rule(capsys, args, expected):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err


def test_output_folders_and_stores_that_cannot_be_are_refused_by_name(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["tour", "--out", str(blocker / "tour")]) == 2
    assert "Invalid value for '--out'" in capsys.readouterr().err
    assert main(["report", "--out", str(blocker / "r.html")]) == 2
    assert "Invalid value for '--out'" in capsys.readouterr().err
