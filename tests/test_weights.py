"""weights.load_matrix: a user's W_hh from .npy and .pt files, and every bad file refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bpttlab.weights import load_matrix


def test_load_matrix_npy_and_pt(tmp_path):
    w = np.random.default_rng(0).standard_normal((5, 5))
    np.save(tmp_path / "w.npy", w)
    np.testing.assert_array_equal(load_matrix(tmp_path / "w.npy"), w)
    rnn = torch.nn.RNN(3, 5)
    torch.save(rnn.state_dict(), tmp_path / "sd.pt")
    np.testing.assert_allclose(
        load_matrix(tmp_path / "sd.pt"), rnn.weight_hh_l0.detach().double().numpy()
    )
    torch.save(torch.eye(4), tmp_path / "t.pt")
    np.testing.assert_array_equal(load_matrix(tmp_path / "t.pt"), np.eye(4))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: np.save(p / "w.npy", np.ones((3, 4))), "square"),
        (lambda p: np.save(p / "w.npy", np.full((3, 3), np.nan)), "NaN"),
        (lambda p: np.save(p / "w.npy", np.ones(3)), "square"),
        (lambda p: None, "no such file"),
    ],
)
def test_load_matrix_rejects_bad_files(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(ValueError, match=match):
        load_matrix(tmp_path / "w.npy")


def test_load_matrix_ambiguous_state_dict(tmp_path):
    torch.save(torch.nn.RNN(2, 3, num_layers=2).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="--key"):
        load_matrix(tmp_path / "sd.pt")
    w = load_matrix(tmp_path / "sd.pt", key="weight_hh_l1")
    assert w.shape == (3, 3)
    with pytest.raises(ValueError, match=r"key='nosuch'.*has no entry 'nosuch'; its entries: "
                                         r"weight_ih_l0, weight_hh_l0"):  # fmt: skip
        load_matrix(tmp_path / "sd.pt", key="nosuch")


def test_key_without_a_state_dict_is_refused(tmp_path):
    np.save(tmp_path / "w.npy", np.eye(3))
    with pytest.raises(ValueError, match="key=.*drop --key"):
        load_matrix(tmp_path / "w.npy", key="weight_hh_l0")
    torch.save(torch.eye(3), tmp_path / "t.pt")
    with pytest.raises(ValueError, match="key=.*drop --key"):
        load_matrix(tmp_path / "t.pt", key="weight_hh_l0")


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"weight_hh": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights=.*cannot be read as .pt"):
        load_matrix(tmp_path / "evil.pt")


@pytest.mark.parametrize(
    ("module", "gates"), [(torch.nn.GRU, "a GRU's"), (torch.nn.LSTM, "an LSTM's")]
)
def test_stacked_gate_matrices_are_named_as_such(tmp_path, module, gates):
    torch.save(module(4, 4).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match=f"looks like {gates} weight_hh"):
        load_matrix(tmp_path / "sd.pt")
