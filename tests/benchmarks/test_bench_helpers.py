"""The benchmark's own yardsticks: deterministic data, shared starting point, log-likelihood."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from benchmarks.cases import (flops_per_iteration, initial_params, make_data,
                              mean_log_likelihood)
from benchmarks.measure import summarize


def test_data_is_deterministic_and_fills_a_chunked_buffer():
    X = make_data(2_500, 3, 4)
    assert X.shape == (2_500, 3) and np.all(np.isfinite(X))
    np.testing.assert_array_equal(X, make_data(2_500, 3, 4))
    chunked = np.empty((5, 500, 3))
    make_data(2_500, 3, 4, out=chunked.reshape(2_500, 3))
    np.testing.assert_array_equal(chunked.reshape(2_500, 3), X)
    assert not np.array_equal(X, make_data(2_500, 3, 4, seed=1))


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_mean_log_likelihood_matches_sklearn(ct):
    X = make_data(1_000, 3, 2)
    gm = GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
    got = mean_log_likelihood(X, gm.weights_, gm.means_, gm.covariances_, ct)
    assert got == pytest.approx(gm.score(X), rel=1e-12)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_initial_params_are_valid_and_consistent(ct):
    X = make_data(1_000, 3, 4)
    init = initial_params(X, 4, ct)
    assert init["weights"].sum() == pytest.approx(1.0)
    assert init["means"].shape == (4, 3)
    cov, prec = init["covariances"], init["precisions"]
    if ct == "full":
        np.testing.assert_allclose(cov @ prec, np.broadcast_to(np.eye(3), (4, 3, 3)),
                                   atol=1e-10)
        np.testing.assert_allclose(cov[0], np.cov(X.T, bias=True) + 1e-6 * np.eye(3),
                                   rtol=1e-10)
    else:
        np.testing.assert_allclose(cov * prec, 1.0)
        np.testing.assert_allclose(cov[0], X.var(axis=0) + 1e-6, rtol=1e-10)


def test_flop_model_counts_the_dominant_terms():
    # 4 N K D^2 for the two (D, D) contractions per sample and component, plus lower order
    assert flops_per_iteration(100_000, 8, 8, "full") == pytest.approx(2.5e8, rel=0.01)
    assert flops_per_iteration(10, 4, 2, "diag") < flops_per_iteration(10, 4, 2, "full")


def test_marginal_time_per_iteration_removes_the_fixed_cost():
    # t(m) = 0.5 s fixed + 0.1 s per iteration, measured at m1 = 2 and m2 = 6
    rec = {"t_m1": [0.7, 0.7], "t_m2": [1.1, 1.1], "per_iter": [0.1, 0.1], "first_m2": 3.1}
    row = summarize(rec, 2, 6)
    assert row["s_per_iter"] == pytest.approx(0.1)
    assert row["fixed_s"] == pytest.approx(0.5)
    assert row["first_call_extra_s"] == pytest.approx(2.0)


def test_restarts_floor_counts_two_products_and_one_exp_per_value():
    """(100,000, 8, 8) full, 16 restarts, 100 GFLOP/s, 1 ns per exp, by hand: F = 1 + 8 + 36
    = 45 features; 2 products x 2 N F K flops x 16 = 2.304 GFLOP -> 23.04 ms; N K x 16 =
    12.8 M exps -> 12.8 ms. diag: F = 17 -> 8.704 ms + 12.8 ms."""
    from benchmarks.cases import restarts_floor_s

    assert restarts_floor_s(100_000, 8, 8, "full", 16, 100.0, 1.0) == pytest.approx(35.84e-3)
    assert restarts_floor_s(100_000, 8, 8, "diag", 16, 100.0, 1.0) == pytest.approx(21.504e-3)
    assert restarts_floor_s(100_000, 8, 8, "full", 1, 100.0, 1.0) == pytest.approx(2.24e-3)
