"""MAP-EM: the M-step output is the true maximiser of E_q[log p(X, Z | theta)] + log p(theta).

The check is first-order optimality by automatic differentiation of the objective written from
the log densities (jax.grad), independent of the closed-form update being tested. Weights live
on the simplex, so only the gradient component tangent to it must vanish; covariances are
symmetric, so the gradient is taken through (A + A^T) / 2.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from em_reference import GaussianMixturePrior, GaussianParams, PoissonMixturePrior, PoissonParams
from em_reference import gaussian, poisson

K = 3


def _random_resp(n, rng):
    q = rng.dirichlet(np.ones(K), size=n)
    return jnp.asarray(q)


def _expected_complete_log_joint(log_joint_fn, q, params, prior):
    return jnp.sum(q * log_joint_fn(params)) + prior.log_prob(params)


def _gaussian_prior(X, covariance_type):
    d = X.shape[1]
    psi = {"full": np.array([[2.0, 0.3], [0.3, 1.0]]), "tied": np.array([[2.0, 0.3], [0.3, 1.0]]),
           "diag": np.array([2.0, 1.0]), "spherical": np.float64(1.5)}[covariance_type]
    # non-flat Dirichlet, off-centre mean prior, strong shrinkage: every term of the prior bites
    return GaussianMixturePrior(np.array([2.0, 3.0, 4.0]), np.array([1.0, -1.0]), 0.7,
                                d + 1.5, psi, covariance_type)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_map_m_step_is_stationary(three_cluster, covariance_type):
    X = jnp.asarray(three_cluster[0][::10])  # 200 points
    rng = np.random.default_rng(1)
    q = _random_resp(len(X), rng)
    prior = _gaussian_prior(X, covariance_type)
    stats = gaussian.sufficient_stats(X, q, covariance_type)
    theta = gaussian.m_step(stats, covariance_type, 0.0, prior)

    def objective(weights, means, cov_raw):
        cov = cov_raw if cov_raw.ndim < 2 or covariance_type in ("diag",) else \
            0.5 * (cov_raw + jnp.swapaxes(cov_raw, -1, -2))
        params = GaussianParams(weights, means, cov)
        return _expected_complete_log_joint(
            lambda p: gaussian.log_joint_matrix(X, p, covariance_type), q, params, prior)

    g_w, g_mu, g_cov = jax.grad(objective, argnums=(0, 1, 2))(*theta)
    scale = len(X)
    # Lagrange condition on the simplex: the weight gradient is constant across components
    np.testing.assert_allclose(g_w - g_w.mean(), 0.0, atol=1e-8 * scale)
    np.testing.assert_allclose(g_mu, 0.0, atol=1e-8 * scale)
    np.testing.assert_allclose(g_cov, 0.0, atol=1e-8 * scale)

    # and it is a maximum, not just a stationary point: random feasible moves only lose
    base = objective(*theta)
    for _ in range(5):
        eps = 1e-3
        w = theta.weights * np.exp(eps * rng.normal(size=K))
        mu = theta.means + eps * rng.normal(size=theta.means.shape)
        assert objective(w / w.sum(), mu, theta.covariances) < base


def test_gaussian_mle_m_step_is_stationary(three_cluster):
    X = jnp.asarray(three_cluster[0][::10])
    q = _random_resp(len(X), np.random.default_rng(2))
    for ct in ("full", "tied", "diag", "spherical"):
        theta = gaussian.m_step(gaussian.sufficient_stats(X, q, ct), ct, 0.0, None)

        def objective(weights, means, cov, ct=ct):
            return jnp.sum(q * gaussian.log_joint_matrix(X, GaussianParams(weights, means, cov),
                                                         ct))

        g_w, g_mu, g_cov = jax.grad(objective, argnums=(0, 1, 2))(*theta)
        np.testing.assert_allclose(g_w - g_w.mean(), 0.0, atol=1e-7)
        np.testing.assert_allclose(g_mu, 0.0, atol=1e-7)
        g_cov = g_cov if ct in ("diag", "spherical") else 0.5 * (g_cov + np.swapaxes(g_cov, -1, -2))
        np.testing.assert_allclose(g_cov, 0.0, atol=1e-7)


@pytest.mark.parametrize("n_features", [1, 3])
def test_poisson_map_m_step_is_stationary(n_features):
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.poisson(4.0, size=(150, n_features)).astype(float))
    q = _random_resp(len(x), rng)
    prior = PoissonMixturePrior(np.array([1.5, 2.0, 5.0]), np.linspace(2.0, 3.0, n_features),
                                np.linspace(0.5, 1.0, n_features))
    stats = poisson.stats_from_moments(q.T @ poisson.features(x))
    theta = poisson.m_step(stats, prior)

    def objective(weights, rates):
        params = PoissonParams(weights, rates)
        return _expected_complete_log_joint(lambda p: poisson.log_joint_matrix(x, p), q, params,
                                            prior)

    g_w, g_rate = jax.grad(objective, argnums=(0, 1))(*theta)
    np.testing.assert_allclose(g_w - g_w.mean(), 0.0, atol=1e-9 * len(x))
    np.testing.assert_allclose(g_rate, 0.0, atol=1e-9 * len(x))


def test_map_em_objective_is_log_joint(three_cluster):
    """lower_bound_ of MAP-EM is log-likelihood + log prior at the returned parameters (with
    reg_covar = 0: a regulariser adds its own term, tests/em_reference/test_monotone.py)."""
    from em_reference import GaussianMixtureEM
    X = three_cluster[0]
    est = GaussianMixtureEM(3, covariance_type="diag", prior="default", reg_covar=0.0,
                            random_state=0).fit(X)
    params = GaussianParams(est.weights_, est.means_, est.covariances_)
    expected = float(np.sum(est.score_samples(X)) + est.prior_.log_prob(params))
    np.testing.assert_allclose(est.lower_bound_, expected, rtol=1e-10)
    assert est.prior_.covariance_type == "diag"
    # the MAP point beats nearby points on the log joint
    for scale in (0.99, 1.01):
        moved = params._replace(covariances=params.covariances * scale)
        value = float(gaussian.log_likelihood(X, moved, "diag") + est.prior_.log_prob(moved))
        assert value < expected
