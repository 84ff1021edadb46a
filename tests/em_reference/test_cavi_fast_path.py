"""The fast kernel of the Gaussian CAVI E-step (gaussian_fast: T(X) @ eta and R^T T(X)) gives
the textbook path's numbers (gaussian.py: per-component Mahalanobis terms, two-pass scatter)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from em_reference.cavi import families, loop
from em_reference.cavi.weights import WEIGHT_PRIOR_TYPES
from em_reference.priors import COVARIANCE_TYPES, GaussianMixturePrior


def _problem(covariance_type, seed=0, n=300, d=3, k=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * [1.0, 3.0, 0.3] + rng.normal(0, 4, (k, d))[rng.integers(0, k, n)]
    X = X - X.mean(0)  # the estimator centres the data before the loop
    psi = {"full": np.cov(X.T), "tied": np.cov(X.T), "diag": X.var(0),
           "spherical": X.var(0).mean()}[covariance_type]
    prior = GaussianMixturePrior(0.5, rng.normal(size=d), 0.3, d + 2.0, psi,
                                 covariance_type).validate(d, k)
    w = rng.integers(1, 4, n).astype(float)
    resp = rng.dirichlet(np.ones(k), n)
    return jnp.asarray(X), jnp.asarray(w), jnp.asarray(resp), prior


@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fast_e_step_equals_the_textbook_e_step(covariance_type, kind):
    X, w, resp, prior = _problem(covariance_type)
    family = families.GaussianCAVIFamily(covariance_type)
    q = loop.m_step(family.statistics(X, resp * w[:, None]), prior, family, kind)
    slow = loop.e_step(X, w, q, family, kind)
    fast = loop.e_step_features(family.features(X), w, q, family, kind)
    for a, b in zip(jax.tree.leaves(slow), jax.tree.leaves(fast)):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9 * np.abs(a).max())


@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fast_fit_equals_the_textbook_fit(covariance_type, kind):
    X, w, resp, prior = _problem(covariance_type, seed=1)
    family = families.GaussianCAVIFamily(covariance_type)
    q0, e0 = loop.init_from_responsibilities(X, w, resp, prior, family=family, kind=kind)
    batch = jax.tree.map(lambda a: jnp.stack([a, a]), q0)
    runs = [loop.fit_cavi(batch, jnp.stack([e0, e0]), X, w, prior, jnp.asarray(0.0),
                          family=family, kind=kind, max_iter=15, fast=fast)
            for fast in (False, True)]
    np.testing.assert_allclose(runs[1].trace, runs[0].trace, rtol=1e-10)
    for a, b in zip(jax.tree.leaves(runs[0].q), jax.tree.leaves(runs[1].q)):
        np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-10)
