"""The certificate floor (em_reference.loop.certificate_and_floor): the gradient norm per sample
that rounding the parameters to float64 alone leaves at an exact optimum. It must equal its
closed form where the Hessian is known and stay far below cert_tol on ordinary data (so that
it never loosens the certificate there). Where it matters, tight clusters far apart:
test_far_apart.py."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from em_reference import GaussianMixtureEM, PoissonMixtureEM, gaussian, tuning
from em_reference.loop import Problem, certificate_and_floor
from em_reference.textbook import TextbookEngine


def test_floor_of_one_tight_gaussian_far_from_the_origin_is_its_closed_form():
    """K = 1, 1-D, N points at 1e6 with sd 1e-3, at the MLE (reg_covar 0), not centred. In
    u = (log weight, mu / s, log(sigma^2 / s^2)) the Hessian is diagonal at the MLE:
    -N s^2 / sigma^2 for the mean, -N / 2 for the variance, 0 for the weight (softmax of one
    value); one spacing of mu is spacing(mu) / s in u and one of sigma^2 is
    spacing(sigma^2) / sigma^2, so the floor is ULPS / N * sqrt((N s spacing(mu) /
    sigma^2)^2 + (N spacing(sigma^2) / (2 sigma^2))^2)."""
    rng = np.random.default_rng(0)
    n = 200
    x = 1e6 + rng.normal(0.0, 1e-3, (n, 1))
    mu, var = x.mean(), x.var()
    s = x.std()
    params = gaussian.GaussianParams(jnp.ones(1), jnp.array([[mu]]), jnp.array([[var]]))
    family = gaussian.GaussianFamily("diag", 0.0)
    problem = Problem(TextbookEngine(family), (jnp.asarray(x), jnp.ones(n)), None,
                      jnp.zeros(()), jnp.zeros(()), jnp.array([s]), jnp.asarray(float(n)))
    got = float(certificate_and_floor(problem, params, None)[1])
    mean_term = n * s * np.spacing(mu) / var
    var_term = n * np.spacing(var) / (2 * var)
    expected = tuning.CERTIFICATE_FLOOR_ULPS / n * np.hypot(mean_term, var_term)
    assert got == pytest.approx(expected, rel=1e-6)
    assert got > np.sqrt(np.finfo(float).eps)  # here the floor, not cert_tol, is the limit


@pytest.mark.parametrize("ct", ["full", "diag", "spherical", "tied"])
def test_floor_is_far_below_cert_tol_on_ordinary_data(ct):
    """Three unit clusters a few spreads apart: rounding leaves ~1e-15 per sample, so cert_tol
    (1.5e-8) is what a fit there must meet."""
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(c, 1.0, (150, 2)) for c in ([0, 0], [6, 0], [0, 6])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = GaussianMixtureEM(3, covariance_type=ct, random_state=0).fit(X)
    assert est.converged_
    assert est.certificate_floor_ < 1e-12 and est.certificate_floor(X) < 1e-12


def test_floor_is_far_below_cert_tol_for_poisson_counts():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.poisson(3.0, 300), rng.poisson(40.0, 300)])[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = PoissonMixtureEM(2, random_state=0).fit(x)
    assert est.converged_ and est.certificate_floor(x) < 1e-12
