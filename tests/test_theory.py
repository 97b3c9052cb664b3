"""theory.py against direct float64 loops, closed forms and autograd."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpttlab import theory


def _loop_power(factor: float, t: int) -> float:
    x = 1.0
    for _ in range(t):
        x *= factor
    return x


@pytest.mark.parametrize("lam,d", [(0.9, 0.5), (1.1, 1.0), (-0.7, 0.3), (1.0, 1.0)])
def test_decay_matches_direct_loop(lam, d):
    lengths = [1, 2, 10, 20, 50, 100]
    table = theory.decay(lam, d, lengths)
    for row in table.rows:
        ref = _loop_power(abs(lam * d), row.length)
        assert row.magnitude == pytest.approx(ref, rel=1e-12)
        assert row.log10_magnitude == pytest.approx(math.log10(ref), rel=1e-12, abs=1e-12)


def test_decay_lesson_numbers_are_the_true_ones():
    # REFERENCES.md: 0.45^T is 3.41e-04, 1.16e-07, 4.6e-18, 2.1e-35; 1.1^T is 2.59, 6.73, 117.
    rows = theory.decay(0.9, 0.5, [10, 20, 50, 100]).rows
    assert [f"{r.magnitude:.3g}" for r in rows] == ["0.000341", "1.16e-07", "4.58e-18", "2.1e-35"]
    grow = theory.decay(1.1, 1.0, [10, 20, 50]).rows
    assert [round(r.magnitude, 2) for r in grow] == [2.59, 6.73, 117.39]


def test_decay_any_length_has_finite_log10_and_true_zero():
    table = theory.decay(0.9, 0.5, [10**6])
    row = table.rows[0]
    assert row.log10_magnitude == pytest.approx(10**6 * math.log10(0.45), rel=1e-12)
    assert row.magnitude == 0.0
    assert table.regime == "vanishing"


@pytest.mark.parametrize("factor", [0.45, 0.9, 0.99, 0.5])
def test_underflow_lengths_are_exact(factor):
    table = theory.decay(factor, 1.0, [1])
    for dtype, np_t in (("float32", np.float32), ("float64", np.float64)):
        u = getattr(table, f"{dtype}_underflow_at")
        assert np_t(np.float64(factor) ** (u - 1)) > 0
        assert np_t(np.float64(factor) ** u) == 0
    # an independent running product in float32; for factors above 0.5 the product sticks at the
    # smallest subnormal (round-to-nearest), so only the others reach zero by repeated multiplying
    if factor <= 0.5:
        x, t = np.float32(1.0), 0
        while x > 0 and t < 10_000:
            x, t = np.float32(x * np.float32(factor)), t + 1
        assert abs(t - table.float32_underflow_at) <= 2
    assert table.float32_overflow_at is None and table.float64_overflow_at is None


def test_overflow_lengths_for_exploding_factor():
    table = theory.decay(1.1, 1.0, [10, 8000])
    assert table.regime == "exploding"
    assert table.rows[1].magnitude is None  # inf in float64
    assert math.isfinite(table.rows[1].log10_magnitude)
    for dtype, np_t in (("float32", np.float32), ("float64", np.float64)):
        o = getattr(table, f"{dtype}_overflow_at")
        with np.errstate(over="ignore"):
            assert np.isfinite(np_t(np.float64(1.1) ** (o - 1)))
            assert np.isinf(np_t(np.float64(1.1) ** o))


@pytest.mark.parametrize("bad", [[0], [-5], [1.5], [True], []])
def test_decay_rejects_bad_lengths(bad):
    with pytest.raises(ValueError, match="lengths"):
        theory.decay(0.9, 0.5, bad)


def test_decay_rejects_non_finite():
    with pytest.raises(ValueError, match="eigenvalue"):
        theory.decay(float("nan"), 0.5, [1])


def test_derivatives_match_closed_forms_and_reference_numbers():
    x = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    tanh = theory.activation_derivative("tanh", x)
    sig = theory.activation_derivative("sigmoid", x)
    np.testing.assert_allclose(tanh, 1 - np.tanh(x) ** 2, rtol=1e-12)  # 1 - tanh^2 cancels
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(sig, s * (1 - s), rtol=1e-14)
    # REFERENCES.md figures, to their printed digits
    np.testing.assert_allclose(tanh, [1, 0.420, 0.071, 0.0099, 1.8e-4], rtol=0.02)
    np.testing.assert_allclose(sig, [0.25, 0.197, 0.105, 0.045, 0.0066], rtol=0.02)
    np.testing.assert_array_equal(theory.activation_derivative("relu", [-1.0, 0.0, 2.0]), [0, 0, 1])


@pytest.mark.parametrize("name", ["gelu", "softplus", "linear", "_private"])
def test_activations_without_a_closed_form_are_refused_naming_the_module(name):
    with pytest.raises(ValueError, match="activation=.*bpttlab.activations"):
        theory.activation_derivative(name, [0.0])


def test_theory_imports_no_torch():
    code = "import sys, bpttlab.theory, bpttlab.dynamics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@settings(max_examples=200, deadline=None)
@given(d=st.floats(1e-6, 0.999999), thr=st.floats(1e-30, 0.5))
def test_steps_to_threshold_is_the_first_crossing(d, thr):
    n = theory.steps_to_threshold(d, thr)
    assert d**n < thr
    assert n == 1 or d ** (n - 1) >= thr


def test_steps_to_threshold_edges():
    assert theory.steps_to_threshold(1.0) is None
    assert theory.steps_to_threshold(2.0) is None
    assert theory.steps_to_threshold(0.0) == 1
    assert theory.steps_to_threshold(0.42, 1e-6) == 16  # 0.42^16 = 9.1e-7, 0.42^15 = 2.2e-6


def test_budget_shape():
    res = theory.budget()
    assert [r["x"] for r in res["rows"]] == [0, 1, 2, 3, 5]
    assert set(res["steps_to_threshold"]) == {"tanh", "sigmoid", "relu"}
    assert res["steps_to_threshold"]["tanh"][0] is None  # tanh'(0) = 1: never decays
    assert res["steps_to_threshold"]["sigmoid"][0] == 10  # 0.25^10 = 9.5e-7


@pytest.mark.parametrize("g", [0.5, 1.0, 1.3])
def test_spectrum_of_scaled_orthogonal_is_exact(g):
    s = theory.spectrum(theory.make_matrix("orthogonal", 32, g, seed=1))
    assert s.spectral_radius == pytest.approx(g, rel=1e-12)
    assert s.spectral_norm == pytest.approx(g, rel=1e-12)
    assert s.fate == {0.5: "vanishing", 1.0: "marginal", 1.3: "exploding"}[g]
    np.testing.assert_allclose(np.abs(s.eigenvalues), g, rtol=1e-10)


def test_spectrum_horizon_is_first_crossing_and_norm_bounds_radius():
    s = theory.spectrum(theory.make_matrix("gaussian", 64, 0.6, seed=0), threshold=1e-3)
    assert s.spectral_norm >= s.spectral_radius
    r, h = s.spectral_radius, s.horizon
    assert r**h < 1e-3 <= r ** (h - 1)
    assert s.fate == "vanishing"
    sig = theory.spectrum(np.eye(4) * 3.0, activation="sigmoid")  # rho 3, but 3 * 0.25 < 1
    assert sig.fate == "vanishing" and sig.horizon == theory.steps_to_threshold(0.75)


def test_identity_init():
    np.testing.assert_array_equal(theory.make_matrix("identity", 3, 2.0), 2 * np.eye(3))


@pytest.mark.parametrize("init,hidden", [("nope", 4), ("gaussian", 0), ("gaussian", -1)])
def test_make_matrix_rejects_bad_input(init, hidden):
    with pytest.raises(ValueError, match="init|hidden"):
        theory.make_matrix(init, hidden)
