"""EM's decomposition per iteration (PRML fig. 9.14): log p(X | theta_t) <= ELBO(q_t,
theta_t+1) <= log p(X | theta_t+1), the gap being KL(q_t || p(Z | X, theta_t+1))."""

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from em_reference import GaussianMixtureEM, PoissonMixtureEM


def _initial(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.set_params(max_iter=0).fit(X)


def _check_decomposition(d, n_steps):
    ll, elbo, kl = (np.asarray(d[k]) for k in ("log_likelihood", "elbo", "kl"))
    assert ll.shape == (n_steps + 1,) and elbo.shape == kl.shape == (n_steps,)
    scale = abs(ll[-1])
    assert np.all(kl >= -1e-10 * scale)
    assert np.all(elbo >= ll[:-1] - 1e-10 * scale)        # the M-step raises the ELBO
    np.testing.assert_allclose(elbo + kl, ll[1:], rtol=1e-12)  # the E-step closes the KL
    assert kl[0] > 1e-6 * scale  # from a k-means start the E-step still has work to do


def test_gaussian_decomposition_matches_scipy_and_plain_em(three_cluster):
    X, _ = three_cluster
    est = _initial(GaussianMixtureEM(3, covariance_type="full", reg_covar=0.0,
                                     random_state=0), X)
    d = est.em_decomposition(X, n_steps=8)
    _check_decomposition(d, 8)
    # log p(X | theta_0) by scipy at the initialisation (an oracle written differently)
    dens = np.stack([np.log(w) + stats.multivariate_normal(m, c).logpdf(X)
                     for w, m, c in zip(est.weights_, est.means_, est.covariances_, strict=True)],
                    axis=1)
    assert d["log_likelihood"][0] == pytest.approx(logsumexp(dens, axis=1).sum(), rel=1e-12)
    # the log-likelihoods are plain EM's trace from the same start
    plain = GaussianMixtureEM(3, covariance_type="full", reg_covar=0.0, tol=0.0, max_iter=8,
                              weights_init=est.weights_, means_init=est.means_,
                              precisions_init=est.precisions_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain.fit(X)
    np.testing.assert_allclose(d["log_likelihood"], plain.lower_bounds_[:9], rtol=1e-10)


def test_poisson_decomposition():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.poisson(2.0, 300), rng.poisson(9.0, 200)])
    est = _initial(PoissonMixtureEM(2, random_state=0), x)
    d = est.em_decomposition(x, n_steps=6)
    _check_decomposition(d, 6)
    dens = np.stack([np.log(w) + stats.poisson(r[0]).logpmf(x)
                     for w, r in zip(est.weights_, est.rates_, strict=True)], axis=1)
    assert d["log_likelihood"][0] == pytest.approx(logsumexp(dens, axis=1).sum(), rel=1e-12)


def test_n_steps_is_checked(three_cluster):
    X, _ = three_cluster
    est = _initial(GaussianMixtureEM(2, random_state=0), X)
    with pytest.raises(ValueError, match="n_steps"):
        est.em_decomposition(X, n_steps=0)
