"""models.fit_laplace: the Laplace approximation judged as a variational q, against closed-form
posteriors and evidences and an exact enumeration."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import stats
from scipy.special import gammaln

from em_reference import PoissonMixturePrior
from models import FitError, fit_laplace, poisson_mixture
from models import evidence_exact as exact


def normal_mean(x):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("data", len(x)):
        numpyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def gamma_poisson(x, a=2.0, b=1.0):
    rate = numpyro.sample("rate", dist.Gamma(a, b))
    with numpyro.plate("data", len(x)):
        numpyro.sample("x", dist.Poisson(rate), obs=x)


def test_a_gaussian_posterior_is_recovered_and_its_elbo_is_the_evidence():
    # mu ~ N(0, 1), x_i | mu ~ N(mu, 1): the posterior is N(sum x / (n + 1), 1 / (n + 1)), so
    # q is the posterior, the ELBO is log p(x) = log N(x | 0, I + 1 1^T) with zero variance
    x = np.random.default_rng(0).normal(1.0, 1.0, 20)
    fit = fit_laplace(normal_mean, x, num_samples=20_000, elbo_particles=200)
    evidence = stats.multivariate_normal(np.zeros(20), np.eye(20) + 1.0).logpdf(x)
    assert fit.status == "ok" and fit.objective_name == "elbo_vi"
    assert fit.elbo == pytest.approx(evidence, abs=1e-9)
    assert fit.elbo_se < 1e-9
    assert fit.diagnostics["mode_unconstrained"][0] == pytest.approx(x.sum() / 21, abs=1e-9)
    assert fit.diagnostics["hessian_cholesky"][0, 0] == pytest.approx(np.sqrt(21), abs=1e-9)
    mu = fit.samples["mu"]
    assert mu.shape == (20_000,)
    assert abs(mu.mean() - x.sum() / 21) < 4 / np.sqrt(21 * 20_000)
    assert mu.std() == pytest.approx(1 / np.sqrt(21), rel=0.03)


def test_a_gamma_posterior_gets_the_log_space_mode_and_curvature_and_a_bound_below_it():
    # rate | x ~ Gamma(a', b'), a' = a + sum x, b' = b + n; on u = log rate the density is
    # exp(a' u - b' e^u): mode log(a' / b'), curvature a'. The Laplace q is not the posterior,
    # so its ELBO lies strictly below the closed-form evidence, and close to it
    x = np.random.default_rng(1).poisson(3.0, 30).astype(float)
    fit = fit_laplace(gamma_poisson, x, elbo_particles=20_000)
    a1, b1 = 2.0 + x.sum(), 1.0 + len(x)
    evidence = (2.0 * np.log(1.0) - gammaln(2.0) + gammaln(a1) - a1 * np.log(b1)
                - gammaln(x + 1).sum())
    assert fit.diagnostics["mode_unconstrained"][0] == pytest.approx(np.log(a1 / b1), abs=1e-8)
    assert fit.diagnostics["hessian_cholesky"][0, 0] == pytest.approx(np.sqrt(a1), rel=1e-8)
    assert fit.elbo < evidence - 3 * fit.elbo_se
    assert fit.elbo > evidence - 0.05


def test_the_bound_holds_on_a_mixture_against_the_enumerated_evidence():
    x = np.array([0, 1, 1, 2, 0, 7, 9, 8, 6, 10, 1, 8], float)
    prior = PoissonMixturePrior(weight_concentration=1.0, rate_shape=1.0, rate_rate=0.2)
    init = {"weights": np.array([0.5, 0.5]), "rates": np.array([[1.0], [8.0]])}
    fit = fit_laplace(poisson_mixture, x, 2, prior=prior, init=init, elbo_particles=20_000)
    evidence = exact.mixture_log_evidence(x, 2, prior)
    assert fit.status == "ok"
    assert fit.elbo < evidence + 3 * fit.elbo_se
    # a unimodal q sees one of the K! = 2 relabelled modes: the gap is about log 2 or more
    assert evidence - fit.elbo > 0.5 * np.log(2)
    assert fit.samples["weights"].shape == (1000, 2)
    np.testing.assert_allclose(fit.samples["weights"].sum(axis=1), 1.0, atol=1e-12)


def no_maximum(x):
    # log density -c^2/2 + 2 c^2 = 1.5 c^2: c = 0 is stationary, a minimum, with no Gaussian
    c = numpyro.sample("c", dist.Normal(0.0, 1.0))
    numpyro.factor("grow", 2.0 * c**2)
    with numpyro.plate("data", len(x)):
        numpyro.sample("x", dist.Normal(0.0, 1.0), obs=x)


def no_latent(x):
    with numpyro.plate("data", len(x)):
        numpyro.sample("x", dist.Normal(0.0, 1.0), obs=x)


def with_param(x):
    mu = numpyro.param("mu", 0.0)
    with numpyro.plate("data", len(x)):
        numpyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def test_a_stationary_point_that_is_no_maximum_is_refused_rather_than_given_a_gaussian():
    with pytest.raises(FitError, match="not positive definite"):
        fit_laplace(no_maximum, np.zeros(5), init={"c": 0.0})


@pytest.mark.parametrize("model, options, message", [
    (no_latent, {}, "needs latent sample sites"),
    (with_param, {}, "param sites"),
    (normal_mean, {"elbo_particles": 1}, "elbo_particles"),
    (normal_mean, {"num_samples": 0}, "num_samples"),
    (normal_mean, {"gradient_tol": -1.0}, "gradient_tol"),
])
def test_bad_input_is_refused_before_any_work(model, options, message):
    with pytest.raises(ValueError, match=message):
        fit_laplace(model, np.zeros(5), **options)
