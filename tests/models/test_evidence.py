"""models.log_evidence (bridge sampling) against the exact log p(X): closed forms for conjugate
one-component models, the enumeration of every assignment for tiny mixtures; its standard
error against the spread of repeated estimates."""

import itertools
import math

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import stats
from scipy.special import logsumexp

import models
from em_reference.priors import GaussianMixturePrior, PoissonMixturePrior
from models import evidence_exact as exact
from models.evidence import log_evidence

TARGET = 0.05  # nats


def normal_mean(y, sigma=1.0, tau=2.0, mu0=0.5):
    """y_n ~ N(mu, sigma^2), mu ~ N(mu0, tau^2):
    log p(y) = log N(y | mu0 1, sigma^2 I + tau^2 1 1^T)."""
    mu = numpyro.sample("mu", dist.Normal(mu0, tau))
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def _normal_mean_exact(y, sigma=1.0, tau=2.0, mu0=0.5):
    n = len(y)
    return stats.multivariate_normal(np.full(n, mu0), sigma**2 * np.eye(n) + tau**2).logpdf(y)


def _normal_mean_posterior_draws(y, rng, n_chains, n_draws, sigma=1.0, tau=2.0, mu0=0.5):
    """Exact (iid) posterior draws, laid out (chains, draws)."""
    precision = 1 / tau**2 + len(y) / sigma**2
    mean = (mu0 / tau**2 + y.sum() / sigma**2) / precision
    return {"mu": rng.normal(mean, precision**-0.5, (n_chains, n_draws))}


@pytest.fixture(scope="module")
def y():
    return np.random.default_rng(0).normal(1.3, 1.0, 20)


def test_bridge_on_exact_draws_is_within_its_standard_error(y):
    """40 estimates from independent exact posterior draws: their spread matches the reported
    standard error, and they centre on the closed form."""
    rng = np.random.default_rng(1)
    truth = _normal_mean_exact(y)
    runs = [log_evidence(normal_mean, y, posterior=_normal_mean_posterior_draws(y, rng, 2, 200),
                         seed=i) for i in range(40)]
    est = np.array([r.log_evidence for r in runs])
    se = np.array([r.log_evidence_se for r in runs])
    assert np.all(np.abs(est - truth) < TARGET)
    # the sd of 40 estimates is known to ~ +-11 %: 0.6..1.5 leaves room for the SE's own noise
    assert 0.6 < est.std(ddof=1) / np.sqrt(np.mean(se**2)) < 1.5
    assert abs(est.mean() - truth) < 4 * se.mean() / math.sqrt(len(runs))
    assert runs[0].method == "bridge" and runs[0].diagnostics["label_switching"] == "none"


def test_bridge_on_nuts_chains_is_within_its_standard_error(y):
    """One NUTS run of 16 chains, split into 8 independent pairs: each pair's estimate is within
    0.05 nats of the closed form, and the estimates scatter as their standard errors say."""
    fit = models.fit_nuts(normal_mean, y, num_warmup=300, num_samples=400, num_chains=16,
                          chain_method="vectorized", seed=2)
    mu = np.asarray(fit.inference_data.posterior["mu"].values)
    truth = _normal_mean_exact(y)
    runs = [log_evidence(normal_mean, y, posterior={"mu": mu[2 * i: 2 * i + 2]}, seed=i)
            for i in range(8)]
    z = np.array([(r.log_evidence - truth) / r.log_evidence_se for r in runs])
    assert all(abs(r.log_evidence - truth) < TARGET for r in runs)
    # sum of 8 squared z-scores ~ chi^2_8: between its 0.1 % and 99.9 % points
    assert 0.86 < np.sum(z**2) < 26.1, z


def test_normal_inverse_wishart_one_component_by_nuts():
    rng = np.random.default_rng(3)
    X = rng.multivariate_normal([1.0, -1.0], [[2.0, 0.6], [0.6, 1.0]], size=25)
    prior = GaussianMixturePrior(1.0, np.zeros(2), 0.5, 4.0, np.eye(2), "full")
    r = log_evidence(models.gaussian_mixture, X, 1, prior=prior, num_warmup=300,
                     num_samples=1000, num_chains=2, seed=0)
    truth = exact.gaussian_log_marginal(X, prior)
    assert abs(r.log_evidence - truth) < TARGET, (r.log_evidence, truth, r.log_evidence_se)
    assert r.log_evidence_se < TARGET / 2
    assert r.diagnostics["nuts"]["divergences"] == 0
    assert r.diagnostics["proposal_dim"] == 5  # 2 means + 3 Cholesky coordinates


def test_poisson_mixture_against_enumeration():
    """K = 2, N = 12: 4096 assignments. The symmetrised proposal gets the evidence; without it
    the estimate is the evidence of one labelling, log 2! lower."""
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.poisson(1.0, 6), rng.poisson(8.0, 6)]).astype(float)
    prior = PoissonMixturePrior(1.0, 1.0, 0.2)
    truth = exact.mixture_log_evidence(x, 2, prior)
    fit = models.fit_nuts(models.poisson_mixture, x, 2, prior=prior, num_warmup=300,
                          num_samples=1000, num_chains=4, chain_method="vectorized", seed=1)
    r = log_evidence(models.poisson_mixture, x, 2, prior=prior, posterior=fit, seed=1)
    assert abs(r.log_evidence - truth) < TARGET, (r.log_evidence, truth, r.log_evidence_se)
    assert r.diagnostics["label_switching"] == "symmetrize"
    assert r.diagnostics["n_permutations"] == 2
    single = log_evidence(models.poisson_mixture, x, 2, prior=prior, posterior=fit, seed=1,
                          label_switching="none")
    assert abs(single.log_evidence - (truth - math.log(2))) < 2 * TARGET
    with pytest.warns(RuntimeWarning, match="do not overlap"):
        separated = log_evidence(models.poisson_mixture, x, 2, prior=prior, posterior=fit,
                                 seed=1, label_switching="separated")
    assert separated.diagnostics["log_k_factorial"] == pytest.approx(math.log(2))


def _poisson_mixture_posterior_draws(x, prior, rng, n_chains, n_draws):
    """Exact (iid) posterior draws of a K = 2 Poisson mixture, every labelling visited: z from
    its enumerated posterior, then the weights and rates from their conjugate posteriors."""
    n = len(x)
    onehot = np.eye(2)[np.array(list(itertools.product(range(2), repeat=n)))]
    log_p = (exact.dirichlet_multinomial_log_prob(onehot, np.full(2, prior.weight_concentration))
             + exact.poisson_log_marginals(x[:, None], onehot, prior))
    z = onehot[rng.choice(len(onehot), size=n_chains * n_draws, p=np.exp(log_p - logsumexp(log_p)))]
    counts, sums = z.sum(1), np.einsum("snk,n->sk", z, x)
    weights = np.array([rng.dirichlet(prior.weight_concentration + c) for c in counts])
    rates = rng.gamma(prior.rate_shape + sums, 1.0 / (prior.rate_rate + counts))
    return {"weights": weights.reshape(n_chains, n_draws, 2),
            "rates": rates.reshape(n_chains, n_draws, 2, 1)}


def test_poisson_mixture_on_exact_draws_of_every_mode():
    """iid posterior draws that visit both labellings (relabelled inside): each estimate within
    0.05 nats of the enumeration, and the errors the size the standard errors say."""
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.poisson(1.0, 6), rng.poisson(8.0, 6)]).astype(float)
    prior = PoissonMixturePrior(1.0, 1.0, 0.2)
    truth = exact.mixture_log_evidence(x, 2, prior)
    runs = [log_evidence(models.poisson_mixture, x, 2, prior=prior, seed=i,
                         posterior=_poisson_mixture_posterior_draws(x, prior, rng, 4, 1000))
            for i in range(10)]
    errors = np.array([r.log_evidence - truth for r in runs])
    z = errors / np.array([r.log_evidence_se for r in runs])
    assert np.all(np.abs(errors) < TARGET), errors
    # |z| of a standard normal has median 0.67 (bridge errors have heavier tails: the median)
    assert 0.2 < np.median(np.abs(z)) < 1.5, z


def test_gaussian_mixture_against_enumeration():
    """K = 2, N = 12, a 1-D normal-inverse-gamma mixture."""
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(-2.5, 1.0, 6), rng.normal(2.5, 1.0, 6)])
    prior = GaussianMixturePrior(1.0, np.zeros(1), 0.5, 3.0, np.eye(1), "full")
    truth = exact.mixture_log_evidence(X, 2, prior)
    r = log_evidence(models.gaussian_mixture, X, 2, prior=prior, num_warmup=300,
                     num_samples=1500, num_chains=4, nuts_options={"chain_method": "vectorized"},
                     seed=2)
    assert abs(r.log_evidence - truth) < TARGET, (r.log_evidence, truth, r.log_evidence_se)


def test_bad_input_is_refused(y):
    with pytest.raises(ValueError, match="method"):
        log_evidence(normal_mean, y, method="chib")
    with pytest.raises(ValueError, match="label_switching"):
        log_evidence(normal_mean, y, label_switching="sometimes")
    with pytest.raises(ValueError, match="lacks draws"):
        log_evidence(normal_mean, y, posterior={"nu": np.zeros((2, 10))})
    with pytest.raises(ValueError, match="shape"):
        log_evidence(normal_mean, y, posterior={"mu": np.zeros((2, 10, 3))})
    with pytest.raises(ValueError, match="at least 4 draws"):
        log_evidence(normal_mean, y, posterior={"mu": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="NaN"):
        log_evidence(normal_mean, y, posterior={"mu": np.full((2, 10), np.nan)})
    with pytest.raises(ValueError, match="param sites"):
        log_evidence(models.gaussian_mixture, np.zeros((10, 1)) + np.arange(10)[:, None], 2)
