"""dynamics.py against torch.autograd.functional.jacobian products, closed forms and the lesson."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bpttlab import dynamics, theory
from bpttlab.dynamics import jacobian_walk, lyapunov_exponents, simulate
from bpttlab.testing import lesson_loop

ACTS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "identity": lambda z: z}


def _torch_rollout(W, drive, h_t, start, stop, act):
    """h_stop as a function of h_start, with the same inputs (float64)."""
    h = h_t
    for s in range(start, stop):
        h = ACTS[act](W @ h + drive[s])
    return h


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu", "identity"])
@pytest.mark.parametrize("inputs", ["noise", "matrix"])
def test_walk_matches_autograd_jacobian_products(act, inputs):
    H, T = 5, 7
    W = theory.make_matrix("gaussian", H, 1.2, seed=3)
    traj = dynamics.simulate(W, T, act, inputs, 0.7, input_size=3, h0="random", seed=4)
    drive = torch.tensor(traj.z - traj.h[:-1] @ W.T)  # (T, H): U x_t + b, recovered exactly
    Wt = torch.tensor(W)
    v = np.arange(1, H + 1, dtype=np.float64)
    full = dynamics.jacobian_walk(traj, mode="full", v=v)
    vjp = dynamics.jacobian_walk(traj, mode="vjp", v=v)
    assert list(full.t) == list(range(T, -1, -1))
    for i, t in enumerate(full.t):
        h_t = torch.tensor(traj.h[t])
        J = torch.autograd.functional.jacobian(
            lambda h, t=t: _torch_rollout(Wt, drive, h, t, T, act), h_t
        ).numpy()  # (H, H) = dh_T/dh_t
        np.testing.assert_allclose(10 ** full.log10_frobenius[i], np.linalg.norm(J), rtol=1e-10)
        np.testing.assert_allclose(10 ** full.log10_spectral[i], np.linalg.norm(J, 2), rtol=1e-10)
        ref_vjp = np.linalg.norm(v / np.linalg.norm(v) @ J)
        if ref_vjp > 0:
            np.testing.assert_allclose(10 ** full.log10_vjp[i], ref_vjp, rtol=1e-10)
            np.testing.assert_allclose(10 ** vjp.log10_vjp[i], ref_vjp, rtol=1e-10)
        else:
            assert full.log10_vjp[i] == -math.inf


def test_trajectory_matches_torch_forward():
    W = theory.make_matrix("gaussian", 6, 1.5, seed=0)
    traj = dynamics.simulate(W, 20, "tanh", "noise", 1.0, h0="random", seed=2)
    drive = torch.tensor(traj.z - traj.h[:-1] @ W.T)
    h = torch.tensor(traj.h[0])
    for t in range(20):
        h = torch.tanh(torch.tensor(W) @ h + drive[t])
        np.testing.assert_allclose(h.numpy(), traj.h[t + 1], rtol=1e-12)
    np.testing.assert_allclose(traj.d, 1 - traj.h[1:] ** 2)


def test_walk_of_100k_steps_never_underflows():
    # linear recurrence, W = 0.5 Q with Q orthogonal: ||dh_T/dh_t||_2 = 0.5^(T-t) exactly
    W = theory.make_matrix("orthogonal", 8, 0.5, seed=0)
    T = 100_000
    traj = dynamics.simulate(W, T, "identity", "zeros", h0="random", seed=0)
    walk = dynamics.jacobian_walk(traj, mode="vjp", every=10_000)
    assert walk.t[-1] == 0
    np.testing.assert_allclose(
        walk.log10_vjp, (T - walk.t) * math.log10(0.5), rtol=1e-9, atol=1e-12
    )
    assert walk.log10_vjp[-1] < -30_000  # 10^-30103: far below any float
    full = dynamics.jacobian_walk(
        dynamics.simulate(W, 3000, "identity", "zeros", seed=0), every=1000
    )
    np.testing.assert_allclose(
        full.log10_spectral, (3000 - full.t) * math.log10(0.5), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        full.log10_frobenius,
        (3000 - full.t) * math.log10(0.5) + math.log10(math.sqrt(8)),
        rtol=1e-9,
    )


def test_walk_rows_report_approximations_and_plain_values():
    traj = dynamics.simulate(theory.make_matrix("gaussian", 8, 0.9, seed=1), 30, seed=1)
    rows = dynamics.jacobian_walk(traj, every=10).rows()
    assert [r["t"] for r in rows] == [30, 20, 10, 0]
    for r in rows:
        assert r["frobenius"] == pytest.approx(10 ** r["log10_frobenius"])
        assert r["rho_power_error_decades"] == pytest.approx(
            r["log10_rho_power"] - r["log10_spectral"]
        )


def test_lesson_preset_is_the_lessons_loop_and_w_powers():
    res = dynamics.lesson_preset()
    W, traj, walk = res["W"], res["trajectory"], res["walk"]
    np.random.seed(0)  # noqa: NPY002  (the lesson's own construction, legacy API on purpose)
    W_lesson = np.random.randn(64, 64) * 0.9 / np.sqrt(64)  # noqa: NPY002
    np.testing.assert_array_equal(W, W_lesson)
    assert np.all(traj.h == 0) and np.all(traj.d == 1)
    powers = [np.linalg.norm(np.linalg.matrix_power(W, k)) for k in range(51)]
    walk_fro = 10**walk.log10_frobenius  # t = 50..0, i.e. k = T - t = 0..50
    np.testing.assert_allclose(walk_fro, powers, rtol=1e-10)
    np.testing.assert_allclose(walk_fro, lesson_loop(W, traj.d), rtol=1e-10)
    assert walk_fro[0] == pytest.approx(8.0)  # ||I||_F for H = 64, not 1


def test_lesson_gain_1_1_is_finite_about_2e3():
    walk = dynamics.lesson_preset(gain=1.1)["walk"]
    end = 10 ** walk.log10_frobenius[-1]
    assert math.isfinite(end) and 1e3 < end < 5e3  # REFERENCES: about 2e3, no NaN


def test_lesson_loop_order_differs_on_a_real_trajectory():
    W = theory.make_matrix("gaussian", 6, 1.0, seed=0)
    traj = dynamics.simulate(W, 12, "tanh", "noise", 2.0, h0="random", seed=0)
    walk = dynamics.jacobian_walk(traj)
    lesson = lesson_loop(W, traj.d)  # J_1 ... J_T
    correct = 10 ** walk.log10_frobenius[-1]  # J_T ... J_1
    direct = np.eye(6)
    for t in range(12):
        direct = (traj.d[t][:, None] * W) @ direct
    assert correct == pytest.approx(np.linalg.norm(direct), rel=1e-10)
    assert abs(lesson[-1] - correct) / correct > 1e-3


@pytest.mark.parametrize("g", [0.5, 0.9, 1.2])
def test_lyapunov_linear_orthogonal_is_log_gain(g):
    W = theory.make_matrix("orthogonal", 10, g, seed=0)
    traj = dynamics.simulate(W, 200, "identity", "zeros", h0="random", seed=0)
    res = dynamics.lyapunov_exponents(traj)
    np.testing.assert_allclose(res.exponents, math.log(g), atol=1e-10)
    assert res.log_spectral_radius == pytest.approx(math.log(g))


def test_lyapunov_linear_symmetric_gives_log_eigenvalues():
    rng = np.random.default_rng(5)
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    eig = np.array([0.95, -0.8, 0.6, 0.4, -0.3, 0.1])
    W = Q @ np.diag(eig) @ Q.T  # normal (symmetric)
    traj = dynamics.simulate(W, 3000, "identity", "zeros", seed=0)
    res = dynamics.lyapunov_exponents(traj, k=6)
    np.testing.assert_allclose(res.exponents, np.sort(np.log(np.abs(eig)))[::-1], atol=2e-3)
    assert res.exponents[0] == pytest.approx(math.log(0.95), abs=1e-3)


def test_lyapunov_tanh_on_zero_trajectory_is_log_rho():
    W = theory.make_matrix("gaussian", 32, 0.8, seed=2)
    traj = dynamics.simulate(W, 4000, "tanh", "zeros", h0="zeros")
    res = dynamics.lyapunov_exponents(traj, k=1, warmup=500)
    assert res.exponents[0] == pytest.approx(res.log_spectral_radius, abs=5e-3)
    assert res.half_life == pytest.approx(math.log(2) / -res.exponents[0])
    assert res.horizon == math.ceil(math.log(1e-6) / res.exponents[0])


def test_lyapunov_sum_equals_mean_log_det():
    W = theory.make_matrix("gaussian", 12, 1.3, seed=1)
    traj = dynamics.simulate(W, 400, "tanh", "noise", 0.5, h0="random", seed=1)
    res = dynamics.lyapunov_exponents(traj, warmup=100)
    direct = np.mean(
        [np.linalg.slogdet(traj.d[t][:, None] * W)[1] for t in range(100, traj.length)]
    )
    assert res.exponents.sum() == pytest.approx(direct, rel=1e-9)
    assert res.mean_log_det == pytest.approx(direct, rel=1e-9)


def test_naive_rate_has_the_wrong_sign_above_gain_one():
    # REFERENCES: random tanh RNN with gain 1.5: naive log(rho <f'>) ~ -0.01, lambda_1 ~ +0.06
    W = theory.make_matrix("gaussian", 256, 1.5, seed=0)
    traj = dynamics.simulate(W, 1500, "tanh", "zeros", h0="random", seed=0)
    res = dynamics.lyapunov_exponents(traj, k=2, warmup=500)
    assert res.exponents[0] > 0.03
    assert res.naive_rate < 0
    assert res.doubling_time is not None and res.horizon is None


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"activation": "softsign"}, "activation"),
        ({"inputs": "ones"}, "inputs"),
        ({"h0": "ones"}, "h0"),
        ({"length": 0}, "length"),
    ],
)
def test_simulate_rejects_bad_input(kwargs, match):
    args = {"W": np.eye(2), "length": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        dynamics.simulate(**args)


def test_walk_and_lyapunov_reject_bad_input():
    traj = dynamics.simulate(np.eye(2), 3)
    with pytest.raises(ValueError, match="every"):
        dynamics.jacobian_walk(traj, every=0)
    with pytest.raises(ValueError, match="mode"):
        dynamics.jacobian_walk(traj, mode="fast")
    with pytest.raises(ValueError, match="k="):
        dynamics.lyapunov_exponents(traj, k=3)
    with pytest.raises(ValueError, match="warmup"):
        dynamics.lyapunov_exponents(traj, warmup=3)


# ---------------------------------------------------------------- overflow is not decay
@pytest.mark.parametrize("gain", [3.0, 5.0, 1e300])
def test_a_state_that_overflows_is_reported_as_exploding_never_as_decay(gain: float) -> None:
    W = theory.make_matrix("gaussian", 16, gain, seed=0)
    traj = simulate(W, 2000, "relu", "noise", 1.0, h0="random", seed=0)
    assert traj.overflow_at is not None and 1 <= traj.overflow_at <= 2000
    assert np.isfinite(traj.h[: traj.overflow_at]).all()  # finite up to the step before
    assert not np.isfinite(traj.h[traj.overflow_at]).all()
    walk = jacobian_walk(traj, mode="vjp", every=100)
    assert walk.overflow_at == traj.overflow_at
    assert np.isfinite(walk.log10_vjp).all()  # no -inf that would read as a vanished gradient
    assert walk.t[0] == traj.overflow_at - 1  # the walk covers the finite steps
    if len(walk.t) > 1:
        assert walk.log10_vjp[-1] > 0  # and there the gradient grows
    lyap = lyapunov_exponents(traj, k=2, warmup=0)
    assert lyap.verdict.startswith("exploding (overflow at step")
    assert not lyap.naive_sign_wrong
    assert "vanishing" not in lyap.to_dict()["verdict"]


def test_relu_without_overflow_is_exploding_not_chaotic() -> None:
    W = theory.make_matrix("gaussian", 32, 3.0, seed=0)
    lyap = lyapunov_exponents(simulate(W, 300, "relu", h0="random"), k=2, warmup=100)
    assert lyap.exponents[0] > 0.1 and lyap.verdict == "exploding"
    tanh = lyapunov_exponents(simulate(W, 300, "tanh", h0="random"), k=2, warmup=100)
    assert tanh.verdict == "exploding (chaotic)"
