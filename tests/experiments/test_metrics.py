"""Metrics against values computed by hand, and the scipy densities against em_reference."""

import math

import numpy as np
import pytest

from experiments import densities, metrics
from experiments.models_registry import MODELS


def _normal(x, m, v):
    return math.exp(-((x - m) ** 2) / (2 * v)) / math.sqrt(2 * math.pi * v)


def test_gaussian_log_likelihood_by_hand():
    X = np.array([[-1.0], [0.5], [3.0]])
    params = {"weights": np.array([0.3, 0.7]), "means": np.array([[0.0], [2.0]]),
              "covariances": np.array([[[1.0]], [[4.0]]])}
    by_hand = sum(math.log(0.3 * _normal(x, 0, 1) + 0.7 * _normal(x, 2, 4)) for x in X[:, 0])
    mat = densities.gaussian_log_joint_matrix(X, params, "full")
    assert densities.log_likelihood(mat) == pytest.approx(by_hand, rel=1e-12)
    # the same numbers for the other covariance shapes
    for ct, cov in (("diag", [[1.0], [4.0]]), ("spherical", [1.0, 4.0])):
        p = {**params, "covariances": np.array(cov)}
        assert densities.log_likelihood(densities.gaussian_log_joint_matrix(X, p, ct)) \
            == pytest.approx(by_hand, rel=1e-12)


def test_poisson_log_likelihood_includes_log_factorial():
    x = np.array([[0], [3], [7]])
    params = {"weights": np.array([0.4, 0.6]), "rates": np.array([[1.5], [6.0]])}

    def pmf(k, r):
        return math.exp(-r) * r**k / math.factorial(k)

    by_hand = sum(math.log(0.4 * pmf(k, 1.5) + 0.6 * pmf(k, 6.0)) for k in x[:, 0])
    got = densities.log_likelihood(densities.poisson_log_joint_matrix(x, params))
    assert got == pytest.approx(by_hand, rel=1e-12)


def test_elbo_em_is_tight_at_the_posterior_and_below_for_hard_q():
    joint = np.array([[0.2, 0.1], [0.05, 0.3], [0.25, 0.25]])  # p(x_n, z_n = k)
    mat = np.log(joint)
    ll = math.log(0.3) + math.log(0.35) + math.log(0.5)
    q = densities.responsibilities(mat)
    assert densities.elbo_em(mat, q) == pytest.approx(ll, rel=1e-12)
    hard = np.eye(2)[q.argmax(1)]
    # one-hot q: the classification log-likelihood sum_n max_k log p(x_n, z=k)
    assert densities.elbo_em(mat, hard) == pytest.approx(mat.max(1).sum(), rel=1e-12)
    assert densities.elbo_em(mat, hard) < ll


def test_information_criteria_by_hand():
    bic, aic, icl = metrics.information_criteria(-100.0, 5, 50, map_log_posterior=-3.0)
    assert bic == pytest.approx(200 + 5 * math.log(50))
    assert aic == pytest.approx(210.0)
    assert icl == pytest.approx(bic + 6.0)
    mat = np.log(np.array([[0.3, 0.1], [0.2, 0.2]]))
    assert metrics.map_log_posterior(mat) == pytest.approx(math.log(0.75) + math.log(0.5))


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_parameter_counts_match_em_reference(ct):
    from em_reference.gaussian import n_parameters

    assert MODELS["gaussian_mixture"].count_params(3, 4, ct) == n_parameters(3, 4, ct)


def test_rmse_errors_and_posterior_sd():
    est = {"weights": np.array([0.5, 0.5]), "means": np.array([[0.0], [2.0]])}
    ref = {"weights": np.array([0.4, 0.6]), "means": np.array([[0.0], [1.0]])}
    errs = metrics.parameter_errors(est, ref, "vs_truth")
    assert errs["rmse_weights_vs_truth"] == pytest.approx(0.1)
    assert errs["rmse_means_vs_truth"] == pytest.approx(math.sqrt(0.5))
    sd = metrics.posterior_summaries({"means": np.array([[0.0, 1.0], [2.0, 3.0]])})
    assert sd["posterior_sd_means"] == pytest.approx(math.sqrt(2.0))


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_scipy_densities_agree_with_em_reference(ct):
    from em_reference import GaussianParams
    from em_reference.gaussian import log_likelihood

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    full = np.stack([np.eye(3) * (1 + k) + 0.2 for k in range(2)])
    cov = {"full": full, "tied": full[0], "diag": np.array([[1.0, 2.0, 3.0], [0.5, 1, 2]]),
           "spherical": np.array([1.5, 0.7])}[ct]
    params = {"weights": np.array([0.35, 0.65]), "means": rng.normal(size=(2, 3)),
              "covariances": cov}
    ours = densities.log_likelihood(densities.gaussian_log_joint_matrix(X, params, ct))
    theirs = float(log_likelihood(X, GaussianParams(**params), ct))
    assert ours == pytest.approx(theirs, rel=1e-10)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_the_compiled_prior_density_equals_the_eager_one(ct):
    """metrics.prior_log_prob compiles em_reference's prior.log_prob once per shape; the
    eager density (tested against scipy in tests/em_reference) is the oracle."""
    from em_reference.priors import (BernoulliMixturePrior, GaussianMixturePrior,
                                     PoissonMixturePrior)

    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    counts = rng.poisson(3.0, (40, 3)).astype(float)
    bits = (rng.random((40, 3)) < 0.4).astype(float)
    weights = np.array([0.25, 0.75])
    covs = {"full": np.stack([np.eye(3) * 0.7, np.eye(3) + 0.2]),
            "diag": np.array([[0.5, 1.0, 2.0], [1.5, 0.3, 0.9]])}[ct]
    cases = [(GaussianMixturePrior.default(X, 2, ct),
              {"weights": weights, "means": rng.normal(size=(2, 3)), "covariances": covs}),
             (PoissonMixturePrior.default(counts, 2),
              {"weights": weights, "rates": np.array([[1.0, 2, 3], [4, 5, 6]])}),
             (BernoulliMixturePrior.default(bits, 2),
              {"weights": weights, "probs": np.full((2, 3), 0.3)})]
    for prior, params in cases:
        eager = float(prior.log_prob(params))
        assert np.isfinite(eager)
        assert metrics.prior_log_prob(prior, params) == pytest.approx(eager, rel=1e-12)

    class OwnPrior:  # not a pytree: its own code runs as it is
        def log_prob(self, params):
            return float(np.sum(params["weights"]))

    assert metrics.prior_log_prob(OwnPrior(), {"weights": weights}) == 1.0
