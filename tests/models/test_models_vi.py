"""fit_vi's ELBO is a lower bound on the evidence, checked against conjugate models whose
evidence is computed here by hand (scipy special functions only)."""

import numpy as np
import pytest
from scipy.special import gammaln, multigammaln

import models
from em_reference import GaussianMixturePrior, PoissonMixturePrior

# Normal-inverse-Wishart hyper-parameters of the single-Gaussian check (D = 2)
M0, KAPPA0, NU0, PSI0 = np.array([0.5, -1.0]), 0.5, 5.0, np.array([[2.0, 0.3], [0.3, 1.0]])
A0, B0 = 2.0, 0.5  # Gamma(shape, rate) of the single-Poisson check


def niw_log_evidence(X):
    """log p(X) for x_n ~ N(mu, S), mu | S ~ N(m0, S / kappa0), S ~ IW(nu0, Psi0)
    (Murphy 2007, 'Conjugate Bayesian analysis of the Gaussian distribution', eq. 266)."""
    n, d = X.shape
    xbar = X.mean(0)
    scatter = (X - xbar).T @ (X - xbar)
    kappa_n, nu_n = KAPPA0 + n, NU0 + n
    dev = (xbar - M0)[:, None]
    psi_n = PSI0 + scatter + KAPPA0 * n / kappa_n * dev @ dev.T
    return (-0.5 * n * d * np.log(np.pi) + multigammaln(0.5 * nu_n, d)
            - multigammaln(0.5 * NU0, d) + 0.5 * NU0 * np.linalg.slogdet(PSI0)[1]
            - 0.5 * nu_n * np.linalg.slogdet(psi_n)[1] + 0.5 * d * np.log(KAPPA0 / kappa_n))


def gamma_poisson_log_evidence(x):
    """log p(x) for x_n ~ Poisson(l), l ~ Gamma(a0, b0): the negative-binomial marginal."""
    n, s = len(x), x.sum()
    return (A0 * np.log(B0) - gammaln(A0) + gammaln(A0 + s) - (A0 + s) * np.log(B0 + n)
            - gammaln(x + 1).sum())


@pytest.fixture(scope="module")
def gaussian_200():
    rng = np.random.default_rng(11)
    return rng.multivariate_normal([1.0, -0.5], [[1.5, 0.4], [0.4, 0.8]], size=200)


@pytest.fixture(scope="module")
def counts_200():
    return np.random.default_rng(12).poisson(3.5, size=200).astype(float)


def check_bound(res, log_evidence, max_gap=None):
    assert res.objective_name == "elbo_vi" and res.elbo_se > 0
    assert res.elbo <= log_evidence + 3 * res.elbo_se, (res.elbo, log_evidence)
    if max_gap is not None:
        assert log_evidence - res.elbo < max_gap, (res.elbo, log_evidence)


def test_gaussian_elbo_bounds_the_evidence(gaussian_200):
    prior = GaussianMixturePrior(1.0, M0, KAPPA0, NU0, PSI0, "full")
    res = models.fit_vi(models.gaussian_mixture, gaussian_200, 1, covariance_type="full",
                        prior=prior, guide="full_rank", num_samples=500)
    check_bound(res, niw_log_evidence(gaussian_200), max_gap=0.5)
    assert res.method == "vi_full_rank"
    # samples from the guide, the point estimate is their mean, ArviZ sees one chain
    assert res.samples["covariances"].shape == (500, 1, 2, 2)
    assert res.samples["weights"].shape == (500, 1)  # K = 1: the deterministic site
    np.testing.assert_allclose(res.params["means"], res.samples["means"].mean(0))
    assert res.inference_data.posterior["means"].shape == (1, 500, 1, 2)
    np.testing.assert_allclose(res.params["means"][0], gaussian_200.mean(0), atol=0.1)


@pytest.mark.parametrize("guide", ["mean_field", "full_rank", "low_rank"])
def test_poisson_elbo_bounds_the_evidence(counts_200, guide):
    prior = PoissonMixturePrior(1.0, A0, B0)
    res = models.fit_vi(models.poisson_mixture, counts_200, 1, prior=prior, guide=guide,
                        n_restarts=2)
    check_bound(res, gamma_poisson_log_evidence(counts_200), max_gap=0.5)
    assert res.diagnostics["restart_objectives"].shape == (2,)
    posterior_mean = (A0 + counts_200.sum()) / (B0 + len(counts_200))
    assert res.params["rates"][0, 0] == pytest.approx(posterior_mean, rel=0.02)
