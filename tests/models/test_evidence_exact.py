"""The exact evidence by enumeration (models.evidence_exact) against oracles that use no
conjugacy: numerical integration of one component, and plain Monte Carlo over the prior of
p(X | theta) for tiny mixtures of every covariance type."""

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import logsumexp

from em_reference.priors import (BernoulliMixturePrior, COVARIANCE_TYPES, GaussianMixturePrior,
                                 PoissonMixturePrior)
from models import evidence_exact as exact


def test_one_dimensional_marginal_by_numerical_integration():
    """int p(x | var) InverseGamma(var | 1.5, 1) dvar, the mean integrated out first:
    x | var ~ N(m0 1, var (I + 1 1^T / kappa0))."""
    x = np.array([0.3, -1.2, 2.0])
    prior = GaussianMixturePrior(1.0, np.array([0.5]), 0.8, 3.0, np.array([[2.0]]), "full")
    shape = np.eye(3) + 1.0 / 0.8

    def joint(var):
        return (stats.multivariate_normal(np.full(3, 0.5), var * shape).pdf(x)
                * stats.invgamma.pdf(var, 1.5, scale=1.0))

    value, _ = integrate.quad(joint, 0, np.inf, epsabs=1e-15, limit=200)
    assert exact.gaussian_log_marginal(x, prior) == pytest.approx(math.log(value), abs=1e-8)
    # one dimension: full, diag and spherical are the same model
    for ct, psi in (("diag", np.array([2.0])), ("spherical", 2.0)):
        other = GaussianMixturePrior(1.0, np.array([0.5]), 0.8, 3.0, psi, ct)
        assert exact.gaussian_log_marginal(x, other) == pytest.approx(
            exact.gaussian_log_marginal(x, prior), abs=1e-12)


def test_poisson_marginal_by_numerical_integration():
    x = np.array([0.0, 3.0, 1.0, 4.0])
    prior = PoissonMixturePrior(1.0, 2.0, 0.7)
    value, _ = integrate.quad(lambda lam: np.prod(stats.poisson.pmf(x, lam))
                              * stats.gamma.pdf(lam, 2.0, scale=1 / 0.7), 0, 200,
                              epsabs=1e-15)
    assert exact.poisson_log_marginal(x, prior) == pytest.approx(math.log(value), abs=1e-7)


def test_bernoulli_marginal_by_numerical_integration():
    """Two pixels, independent under the prior: the product of two one-dimensional integrals
    int prod_n p^x (1 - p)^(1 - x) Beta(p | a_d, b_d) dp."""
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    a, b = np.array([0.7, 2.0]), np.array([1.5, 0.4])
    prior = BernoulliMixturePrior(1.0, a, b)
    log_value = 0.0
    for d in range(2):
        ones, zeros = x[:, d].sum(), (1 - x[:, d]).sum()
        beta = stats.beta(a[d], b[d])
        value, _ = integrate.quad(lambda p, i=ones, o=zeros, f=beta: p**i * (1 - p)**o
                                  * f.pdf(p), 0, 1, epsabs=1e-15)
        log_value += math.log(value)
    assert exact.bernoulli_log_marginal(x, prior) == pytest.approx(log_value, abs=1e-8)


def _prior_draws(prior, rng, s, k, d):
    """(weights (S, K), means (S, K, D), covariances (S, K, D, D)) drawn from the prior."""
    weights = rng.dirichlet(np.full(k, prior.weight_concentration), s)
    ct, nu0 = prior.covariance_type, prior.degrees_of_freedom
    psi0 = np.asarray(prior.covariance_prior)
    if ct in ("full", "tied"):
        n_cov = 1 if ct == "tied" else k
        cov = stats.invwishart(nu0, psi0).rvs(size=s * n_cov, random_state=rng)
        cov = cov.reshape(s, n_cov, d, d) * np.ones((1, k, 1, 1))
    else:
        shape = (s, k, d) if ct == "diag" else (s, k, 1)
        scale = psi0 / 2 if ct == "diag" else np.full(1, psi0 / 2)
        var = stats.invgamma(nu0 / 2, scale=scale).rvs(size=shape, random_state=rng)
        cov = np.einsum("skd,de->skde", np.broadcast_to(var, (s, k, d)), np.eye(d))
    chol = np.linalg.cholesky(cov / prior.mean_precision)
    means = prior.mean_prior + np.einsum("skde,ske->skd", chol, rng.standard_normal((s, k, d)))
    return weights, means, cov


def _mixture_loglik(X, weights, means, cov):
    """log p(X | theta) for every prior draw: (S,)."""
    diff = X[None, :, None, :] - means[:, None]                     # (S, N, K, D)
    prec = np.linalg.inv(cov)[:, None]
    maha = np.einsum("snkd,snkde,snke->snk", diff, prec, diff)
    logdet = np.linalg.slogdet(cov)[1][:, None]
    log_comp = -0.5 * (maha + logdet + X.shape[1] * math.log(2 * math.pi))
    return np.sum(logsumexp(np.log(weights)[:, None] + log_comp, axis=2), axis=1)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_mixture_enumeration_matches_prior_monte_carlo(covariance_type):
    rng = np.random.default_rng(0)
    X = np.array([[0.2, -0.4], [1.5, 0.9], [-1.0, 0.3]])
    psi = {"full": np.array([[1.2, 0.3], [0.3, 0.8]]), "tied": np.array([[1.2, 0.3], [0.3, 0.8]]),
           "diag": np.array([1.2, 0.8]), "spherical": 1.0}[covariance_type]
    prior = GaussianMixturePrior(1.5, np.array([0.1, 0.2]), 0.7, 4.0, psi, covariance_type)
    s = 400_000
    loglik = _mixture_loglik(X, *_prior_draws(prior, rng, s, 2, 2))
    ratio = np.exp(loglik - loglik.max())
    mc = loglik.max() + math.log(ratio.mean())
    se = ratio.std() / (ratio.mean() * math.sqrt(s))
    assert abs(exact.mixture_log_evidence(X, 2, prior) - mc) < 4 * se + 1e-3, (mc, se)


def test_poisson_mixture_enumeration_matches_prior_monte_carlo():
    rng = np.random.default_rng(1)
    x = np.array([0.0, 1.0, 6.0, 7.0])
    prior = PoissonMixturePrior(0.8, 1.5, 0.3)
    s = 400_000
    weights = rng.dirichlet(np.full(2, 0.8), s)
    rates = rng.gamma(1.5, 1 / 0.3, (s, 2))
    comp = stats.poisson.logpmf(x[None, :, None], rates[:, None, :])
    loglik = np.sum(logsumexp(np.log(weights)[:, None] + comp, axis=2), axis=1)
    ratio = np.exp(loglik - loglik.max())
    mc = loglik.max() + math.log(ratio.mean())
    se = ratio.std() / (ratio.mean() * math.sqrt(s))
    assert abs(exact.mixture_log_evidence(x, 2, prior) - mc) < 4 * se + 1e-3, (mc, se)


def test_bernoulli_mixture_enumeration_matches_prior_monte_carlo():
    rng = np.random.default_rng(3)
    x = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    prior = BernoulliMixturePrior(0.8, np.array([1.5, 0.6, 1.0]), np.array([0.7, 1.2, 2.0]))
    s = 400_000
    weights = rng.dirichlet(np.full(2, 0.8), s)
    probs = rng.beta(prior.probs_concentration1, prior.probs_concentration0, (s, 2, 3))
    comp = np.einsum("nd,skd->snk", x, np.log(probs)) + np.einsum(
        "nd,skd->snk", 1 - x, np.log1p(-probs))
    loglik = np.sum(logsumexp(np.log(weights)[:, None] + comp, axis=2), axis=1)
    ratio = np.exp(loglik - loglik.max())
    mc = loglik.max() + math.log(ratio.mean())
    se = ratio.std() / (ratio.mean() * math.sqrt(s))
    assert abs(exact.mixture_log_evidence(x, 2, prior) - mc) < 4 * se + 1e-3, (mc, se)


def test_one_component_enumeration_is_the_marginal():
    X = np.random.default_rng(2).normal(size=(6, 2))
    for ct, psi in (("full", np.eye(2)), ("tied", np.eye(2)), ("diag", np.ones(2)),
                    ("spherical", 1.0)):
        prior = GaussianMixturePrior(1.0, np.zeros(2), 1.0, 3.0, psi, ct)
        assert exact.mixture_log_evidence(X, 1, prior) == pytest.approx(
            exact.gaussian_log_marginal(X, prior), abs=1e-12)


def test_enumeration_refuses_too_many_assignments():
    with pytest.raises(ValueError, match="too many"):
        exact.mixture_log_evidence(np.zeros(30), 2, PoissonMixturePrior(1.0, 1.0, 1.0))


def test_enumeration_refuses_an_unknown_prior():
    with pytest.raises(ValueError, match="no exact evidence"):
        exact.mixture_log_evidence(np.zeros(3), 2, object())
