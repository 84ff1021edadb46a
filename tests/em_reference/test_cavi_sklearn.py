"""GaussianMixtureCAVI from scikit-learn's start and prior: scikit-learn's BayesianGaussianMixture
parameters, and its bound plus exactly the constants it omits; where scikit-learn solves another
model (diag / spherical with D > 1), exactly the documented difference."""

import math
import warnings

import numpy as np
import pytest
from scipy.special import digamma, gammaln, multigammaln
from sklearn.mixture import BayesianGaussianMixture

from em_reference.cavi import GaussianMixtureCAVI, sklearn_lower_bound_offset
from em_reference.cavi import families, gaussian, loop
from em_reference.priors import GaussianMixturePrior

KINDS = ("dirichlet_distribution", "dirichlet_process")


def _data(d, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 3.0, -1.0], [-3.0, 5.0, 2.0]])[:, :d]
    scales = np.array([[1.0, 1.0, 0.5], [1.0, 2.0, 1.0], [0.5, 0.5, 1.5]])[:, :d]
    return np.concatenate([rng.normal(c, s, (n, d)) for c, s, n in
                           zip(centres, scales, (150, 200, 80))])


def _priors(X, covariance_type, alpha=0.4, kappa0=0.7, extra_dof=1.5):
    """The same prior as a GaussianMixturePrior and as scikit-learn's keyword arguments."""
    d = X.shape[1]
    psi = {"full": np.cov(X.T).reshape(d, d), "tied": np.cov(X.T).reshape(d, d),
           "diag": X.var(0, ddof=1), "spherical": X.var(0, ddof=1).mean()}[covariance_type]
    ours = GaussianMixturePrior(alpha, X.mean(0), kappa0, d + extra_dof, psi, covariance_type)
    theirs = dict(weight_concentration_prior=alpha, mean_prior=X.mean(0),
                  mean_precision_prior=kappa0, degrees_of_freedom_prior=d + extra_dof,
                  covariance_prior=psi)
    return ours, theirs


def _fit_both(X, k, covariance_type, kind, init_params, max_iter, seed=3, tol=0.0):
    ours_prior, sk_prior = _priors(X, covariance_type)
    kw = dict(n_components=k, covariance_type=covariance_type, tol=tol, max_iter=max_iter,
              init_params=init_params, random_state=seed, weight_concentration_prior_type=kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of a fixed iteration count
        # reg_covar=0: scikit-learn adds reg_covar to every scatter matrix, not part of the model
        ref = BayesianGaussianMixture(**kw, reg_covar=0.0, **sk_prior).fit(X)
        ours = GaussianMixtureCAVI(**kw, prior=ours_prior).fit(X)
    return ours, ref


def _offset_by_hand(X, k, prior, kind):
    """The constants scikit-learn drops, written out again from the derivation."""
    n, d = X.shape
    psi0 = np.atleast_2d(prior.covariance_prior)
    nu0 = prior.degrees_of_freedom
    wishart_prior_log_normaliser = (0.5 * nu0 * d * math.log(2) + multigammaln(0.5 * nu0, d)
                                    - 0.5 * nu0 * np.linalg.slogdet(psi0)[1])
    gamma_d_pi = d * (d - 1) / 4 * math.log(math.pi)   # the pi term scikit-learn's norm drops
    weights = (k * math.log(prior.weight_concentration) if kind == "dirichlet_process" else
               gammaln(k * prior.weight_concentration) - k * gammaln(prior.weight_concentration))
    return (-n * d / 2 * math.log(2 * math.pi) + k * d / 2 * math.log(prior.mean_precision)
            + k * (gamma_d_pi - wishart_prior_log_normaliser) + weights)


def _assert_same(ours, ref, kind):
    for name in ("mean_precision_", "means_", "degrees_of_freedom_", "covariances_",
                 "precisions_cholesky_", "precisions_", "weights_"):
        np.testing.assert_allclose(np.squeeze(ours.__dict__[name]), np.squeeze(ref.__dict__[name]),
                                   atol=1e-6, rtol=1e-9, err_msg=name)
    conc = np.asarray(ref.weight_concentration_)
    np.testing.assert_allclose(np.asarray(ours.weight_concentration_), conc, atol=1e-6)
    assert ours.n_iter_ == ref.n_iter_


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("init_params", ["random_from_data", "random"])
def test_full_matches_sklearn(kind, init_params):
    X = _data(2)
    ours, ref = _fit_both(X, 3, "full", kind, init_params, max_iter=40)
    _assert_same(ours, ref, kind)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    offset = sklearn_lower_bound_offset(ours.prior_, len(X), 3, kind)
    assert offset == pytest.approx(_offset_by_hand(X, 3, ours.prior_, kind), rel=1e-12)
    # the full ELBO is scikit-learn's bound plus exactly the omitted constants
    assert ours.lower_bound_ - float(ref.lower_bound_) == pytest.approx(offset, abs=1e-8)
    # ... at every iteration (scikit-learn's trace has no entry for the start)
    np.testing.assert_allclose(ours.lower_bounds_[1:] - np.asarray(ref.lower_bounds_),
                               offset, atol=1e-8, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_converges_where_sklearn_converges(kind):
    X = _data(3, seed=1)
    # tol is per sample here, on the total for scikit-learn: the same stopping rule
    ours_prior, sk_prior = _priors(X, "full")
    kw = dict(n_components=4, init_params="random_from_data", random_state=0,
              weight_concentration_prior_type=kind, max_iter=500)
    ref = BayesianGaussianMixture(**kw, tol=1e-4, reg_covar=0.0, **sk_prior).fit(X)
    ours = GaussianMixtureCAVI(**kw, tol=1e-4 / len(X), prior=ours_prior).fit(X)
    assert ref.converged_ and ours.converged_
    _assert_same(ours, ref, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("covariance_type,d,k", [("tied", 2, 1), ("diag", 1, 3),
                                                 ("spherical", 1, 3)])
def test_other_types_match_sklearn_where_the_models_coincide(kind, covariance_type, d, k):
    X = _data(d, seed=2)
    ours, ref = _fit_both(X, k, covariance_type, kind, "random", max_iter=30)
    _assert_same(ours, ref, kind)
    offset = sklearn_lower_bound_offset(ours.prior_, len(X), k, kind)
    assert offset == pytest.approx(_offset_by_hand(X, k, ours.prior_, kind), rel=1e-12)
    assert ours.lower_bound_ - float(np.squeeze(ref.lower_bound_)) == pytest.approx(
        offset, abs=1e-8)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_sklearn_diag_spherical_use_the_wishart_digammas(covariance_type):
    """From scikit-learn's own fitted factors, its responsibilities differ from the CAVI E-step
    of the independent-Gamma model by exactly 1/2 sum_{i<D} [psi(nu_k/2) - psi((nu_k - i)/2)]
    per component (its E[log|Lambda_k|] is the D-dimensional Wishart's)."""
    X = _data(3, seed=4)
    ours_prior, sk_prior = _priors(X, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type, max_iter=5,
                                      init_params="random", random_state=0, reg_covar=0.0,
                                      weight_concentration_prior_type="dirichlet_distribution",
                                      **sk_prior).fit(X)
    nu = ref.degrees_of_freedom_
    scale = ref.covariances_ * (nu[:, None] if covariance_type == "diag" else nu)
    q = loop.Variational(np.asarray(ref.weight_concentration_),
                         gaussian.NormalWishart(ref.mean_precision_, ref.means_, nu, scale))
    ours = np.asarray(loop.log_responsibilities(X, q, families.GaussianCAVIFamily(
        covariance_type), "dirichlet_distribution"))
    shift = 0.5 * sum(digamma(nu / 2) - digamma((nu - i) / 2) for i in range(3))
    gap = ours - np.log(ref.predict_proba(X)) - shift
    np.testing.assert_allclose(gap - gap[:, :1], 0.0, atol=1e-8)
    assert np.ptp(shift) > 1e-3  # the difference is real, not a constant


def test_offset_refuses_the_models_that_differ():
    X = _data(2)
    for ct, k in [("diag", 2), ("spherical", 2), ("tied", 2)]:
        prior = _priors(X, ct)[0].validate(2, k)
        with pytest.raises(ValueError, match="different model"):
            sklearn_lower_bound_offset(prior, len(X), k, "dirichlet_distribution")
