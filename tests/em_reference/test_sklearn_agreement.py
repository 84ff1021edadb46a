"""Same data and same initial parameters as scikit-learn's GaussianMixture: same answer."""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
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
    """Plain EM (reg_covar = 0, where both are the textbook algorithm): the same iterates."""
    X, _ = three_cluster
    init = dict(weights_init=np.array([0.2, 0.3, 0.5]),
                means_init=X[[3, 700, 1500]],
                precisions_init=_initial_precisions(X, covariance_type, 3))
    # a fixed number of iterations: tol=0 never stops early in either implementation
    kw = dict(n_components=3, covariance_type=covariance_type, tol=0.0, max_iter=25,
              reg_covar=0.0, **init)
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


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_with_reg_covar_the_objective_counts_it(three_cluster, covariance_type):
    """reg_covar > 0: the same M-step formula as scikit-learn's (C_k / N_k + reg_covar I), but
    EM's objective counts the regulariser (each component's log density less
    reg_covar tr(Sigma_k^-1) / 2), so the iterates move by O(reg_covar / variance); the
    objective is that regularised log-likelihood (scipy here), log_likelihood_ the plain one."""
    X, _ = three_cluster
    reg = 1e-3
    init = dict(weights_init=np.array([0.2, 0.3, 0.5]), means_init=X[[3, 700, 1500]],
                precisions_init=_initial_precisions(X, covariance_type, 3))
    kw = dict(n_components=3, covariance_type=covariance_type, tol=0.0, max_iter=25,
              reg_covar=reg, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(**kw).fit(X)
        ours = GaussianMixtureEM(**kw).fit(X)
    np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-3)
    dense = ours.covariances_ if covariance_type == "full" else np.stack(
        [np.diag(v) for v in ours.covariances_])
    log_joint = np.stack([np.log(ours.weights_[k]) - 0.5 * reg * np.trace(np.linalg.inv(
        dense[k])) + multivariate_normal(ours.means_[k], dense[k]).logpdf(X) for k in range(3)],
        axis=1)
    np.testing.assert_allclose(ours.lower_bound_, logsumexp(log_joint, axis=1).sum(),
                               rtol=1e-10)
    np.testing.assert_allclose(ours.log_likelihood_, ours.score(X) * len(X), rtol=1e-10)
    assert ours.lower_bound_ < ours.log_likelihood_


def test_converges_where_sklearn_converges(three_cluster):
    X, _ = three_cluster
    init = dict(weights_init=np.full(3, 1 / 3), means_init=X[[3, 700, 1500]],
                precisions_init=_initial_precisions(X, "full", 3))
    ref = GaussianMixture(3, tol=1e-3, max_iter=200, **init).fit(X)
    ours = GaussianMixtureEM(3, tol=1e-3, max_iter=200, **init).fit(X)
    assert ours.converged_ and ref.converged_
    # our rule (Aitken distance + gradient certificate) never stops before scikit-learn's
    # change-per-iteration rule, and ends at the optimum scikit-learn reaches with tol=0
    assert ours.n_iter_ >= ref.n_iter_
    long = GaussianMixture(3, tol=0.0, max_iter=5_000, reg_covar=1e-6, **init).fit(X)
    np.testing.assert_allclose(ours.means_, long.means_, atol=1e-5)
    assert ours.lower_bound_ >= ref.lower_bound_ * len(X) - 1e-6 * len(X)


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
