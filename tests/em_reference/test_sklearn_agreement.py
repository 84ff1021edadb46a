"""Same data and same initial parameters as scikit-learn's GaussianMixture: same answer."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from em_reference import GaussianMixtureEM


def _initial_precisions(X, covariance_type, k):
    var = X.var(axis=0)
    if covariance_type == "full":
        return np.stack([np.diag(1.0 / var)] * k)
    if covariance_type == "tied":
        return np.diag(1.0 / var)
    if covariance_type == "diag":
        return np.tile(1.0 / var, (k, 1))
    return np.full(k, 1.0 / var.mean())


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_matches_sklearn_from_same_start(three_cluster, covariance_type):
    X, _ = three_cluster
    init = dict(weights_init=np.array([0.2, 0.3, 0.5]),
                means_init=X[[3, 700, 1500]],
                precisions_init=_initial_precisions(X, covariance_type, 3))
    # a fixed number of iterations: tol=0 never stops early in either implementation
    kw = dict(n_components=3, covariance_type=covariance_type, tol=0.0, max_iter=25, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(**kw).fit(X)
        ours = GaussianMixtureEM(**kw).fit(X)

    np.testing.assert_allclose(ours.weights_, ref.weights_, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.precisions_cholesky_, ref.precisions_cholesky_, atol=1e-6)
    assert ours.n_iter_ == ref.n_iter_ == 25
    total = ref.score(X) * len(X)
    np.testing.assert_allclose(ours.lower_bound_, total, rtol=1e-8)
    np.testing.assert_allclose(ours.score(X), ref.score(X), rtol=1e-8)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(ours.bic(X), ref.bic(X), rtol=1e-8)
    np.testing.assert_allclose(ours.aic(X), ref.aic(X), rtol=1e-8)


def test_converges_where_sklearn_converges(three_cluster):
    X, _ = three_cluster
    init = dict(weights_init=np.full(3, 1 / 3), means_init=X[[3, 700, 1500]],
                precisions_init=_initial_precisions(X, "full", 3))
    ref = GaussianMixture(3, tol=1e-3, max_iter=200, **init).fit(X)
    ours = GaussianMixtureEM(3, tol=1e-3, max_iter=200, **init).fit(X)
    assert ours.converged_ and ref.converged_
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-6)


def test_one_dimensional_input_is_one_feature():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, 300), rng.normal(6, 1, 200)])
    init = dict(weights_init=[0.5, 0.5], means_init=[[0.0], [5.0]],
                precisions_init=[[[1.0]], [[1.0]]], tol=0, max_iter=10)
    ours = GaussianMixtureEM(2, **init).fit(x)
    ref = GaussianMixture(2, **init).fit(x[:, None])
    assert ours.means_.shape == (2, 1) and ours.n_features_in_ == 1
    np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-8)
    np.testing.assert_allclose(ours.score_samples(x), ours.score_samples(x[:, None]))
