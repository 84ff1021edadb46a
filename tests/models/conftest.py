"""Shared data for the models tests: small, fixed-seed, built once per session."""

import numpy as np
import pytest

import models  # noqa: F401  (float64 before any array is built)

TEXTBOOK_MEANS = np.array([[0.5, 0.5], [5.5, 2.5], [1.0, 7.0]])
TEXTBOOK_VARS = np.array([[1.0, 3.0], [2.0, 2.0], [6.0, 2.0]])
TEXTBOOK_SIZES = (400, 600, 1000)


@pytest.fixture(scope="session")
def textbook():
    """The three-cluster textbook data: (2000, 2), axis-aligned clusters."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(m, np.sqrt(v), size=(n, 2)) for m, v, n
                           in zip(TEXTBOOK_MEANS, TEXTBOOK_VARS, TEXTBOOK_SIZES, strict=True)])


@pytest.fixture(scope="session")
def poisson_counts():
    """Two-component Poisson data, rates 2 and 6 (600 + 400 counts), shape (1000,)."""
    rng = np.random.default_rng(1)
    return np.concatenate([rng.poisson(2.0, 600), rng.poisson(6.0, 400)]).astype(float)


@pytest.fixture(scope="session")
def random_gaussian_params():
    """f(rng, K, D, covariance_type) -> arbitrary (not fitted) parameters of the right shapes
    and supports."""
    return _random_gaussian_params


def _random_gaussian_params(rng, k, d, covariance_type):
    a = rng.normal(size=(k, d, d))
    full = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    cov = {"full": full, "tied": full[0], "diag": rng.uniform(0.3, 3.0, (k, d)),
           "spherical": rng.uniform(0.3, 3.0, k)}[covariance_type]
    return {"weights": rng.dirichlet(np.full(k, 2.0)), "means": rng.normal(0, 2, (k, d)),
            "covariances": cov}
