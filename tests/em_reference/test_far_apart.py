"""Tight clusters far apart (issue 21 item 2): the fast kernel's expanded quadratic
x'Lx - 2 mu'Lx + mu'L mu and its scatter from raw moments cancel when a component's mean is
many of its own standard deviations from the data's centre. The fit must still be the MLE,
judged against an oracle written in the difference form (each cluster's own mean and
covariance + reg_covar, densities by scipy)."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from em_reference import GaussianMixtureEM, gaussian

REG = 1e-6
N_PER = 200
MAX_ITER = 200  # EM is at the MLE to rounding after a few steps on these clusters


def two_far_clusters(sd, separation=1e6, seed=0):
    """Two clusters of N_PER points, sd ``sd``, at the origin and at (separation, 0)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.0, sd, (N_PER, 2)),
                           rng.normal(0.0, sd, (N_PER, 2)) + [separation, 0.0]])


def difference_form_mle(X, ct):
    """(weights, means, covariances as (K, D, D)) of the two clusters taken separately: their
    mean and their covariance about it (+ reg_covar), which is the MLE when they are this far
    apart (every responsibility is 0 or 1 to rounding)."""
    means, covs = [], []
    for part in (X[:N_PER], X[N_PER:]):
        mu = part.mean(axis=0)
        diff = part - mu
        cov = diff.T @ diff / len(part)
        cov = (cov if ct == "full" else np.diag(np.diag(cov))) + REG * np.eye(2)
        means.append(mu)
        covs.append(cov)
    return np.array([0.5, 0.5]), np.array(means), np.array(covs)


def scipy_log_density(X, weights, means, covs, penalty=None):
    """sum_n log sum_k pi_k N(x_n | mu_k, Sigma_k) (exp(penalty_k)) by scipy."""
    per_k = np.stack([np.log(w) + stats.multivariate_normal(m, c).logpdf(X)
                      + (0.0 if penalty is None else penalty[i])
                      for i, (w, m, c) in enumerate(zip(weights, means, covs))], axis=1)
    return float(np.sum(np.logaddexp.reduce(per_k, axis=1)))


def fitted_full(est):
    cov = est.covariances_
    return cov if est.covariance_type == "full" else np.stack([np.diag(c) for c in cov])


@pytest.mark.parametrize("ct, sd, n_init", [("diag", 1e-3, 1), ("full", 1e-3, 1),
                                            ("full", 1e-5, 1), ("diag", 1e-3, 3),
                                            ("full", 1e-3, 3)])
def test_fast_fit_of_tight_far_apart_clusters_is_the_mle(ct, sd, n_init):
    X = two_far_clusters(sd)
    with warnings.catch_warnings():
        # no RuntimeWarning (a non-finite update), no ConvergenceWarning: float64 holds a
        # mean at 5e5 to 1.2e-10, 1e-7 of its own spread, and the gradient in the data's units
        # (spread 5e5) stays ~10 per sample, which the certificate floor accounts for
        warnings.simplefilter("error")
        est = GaussianMixtureEM(2, covariance_type=ct, algorithm="fast", n_init=n_init,
                                max_iter=MAX_ITER, random_state=0).fit(X)
    order = np.argsort(est.means_[:, 0])
    weights, means, covs = difference_form_mle(X, ct)
    np.testing.assert_allclose(est.weights_[order], weights, rtol=1e-6)
    # means: to 1e-6 of each cluster's spread, or where that is below what float64 holds at
    # 1e6 (sd 1e-5: 1e-11 < its spacing 1.2e-10), to a few spacings
    np.testing.assert_allclose(est.means_[order], means, rtol=0,
                               atol=max(1e-6 * sd, 8 * np.spacing(1e6)))
    got = fitted_full(est)[order]
    np.testing.assert_allclose(np.diagonal(got, axis1=1, axis2=2),
                               np.diagonal(covs, axis1=1, axis2=2), rtol=1e-6)
    np.testing.assert_allclose(got, covs, rtol=0, atol=1e-6 * sd**2)
    assert est.converged_ and est.distance_to_optimum_ == 0.0
    assert est.gradient_norm_ <= est.certificate_floor_
    # score, log_likelihood_ and lower_bound_ against scipy at the returned parameters
    fit_w, fit_m, fit_c = est.weights_, est.means_, fitted_full(est)
    truth = scipy_log_density(X, fit_w, fit_m, fit_c)
    assert est.score(X) * len(X) == pytest.approx(truth, rel=1e-9)
    assert est.log_likelihood_ == pytest.approx(truth, rel=1e-9)
    # EM's objective counts reg_covar: -reg_covar tr(Sigma_k^-1) / 2 in each component
    penalty = [-0.5 * REG * np.trace(np.linalg.inv(c)) for c in fit_c]
    assert est.lower_bound_ == pytest.approx(scipy_log_density(X, fit_w, fit_m, fit_c, penalty),
                                             rel=1e-9)
    # and the MLE's own log-likelihood (the fit is at it)
    assert truth == pytest.approx(scipy_log_density(X, weights, means, covs), rel=1e-9)


def test_float32_fast_fit_of_unit_clusters_far_apart():
    """float32, unit clusters 1e6 apart (centred: at -/+5e5, where float32's spacing is
    0.03): the means to a hundredth of the spread, the variances to 2%."""
    X = two_far_clusters(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float32 may not certify to cert_tol
        est = GaussianMixtureEM(2, covariance_type="diag", algorithm="fast", dtype="float32",
                                max_iter=MAX_ITER, random_state=0).fit(X)
    order = np.argsort(est.means_[:, 0])
    _, means, covs = difference_form_mle(X, "diag")
    np.testing.assert_allclose(est.means_[order], means, rtol=0, atol=1e-2)
    np.testing.assert_allclose(est.covariances_[order], np.diagonal(covs, axis1=1, axis2=2),
                               rtol=2e-2)


def test_expanded_form_is_kept_for_ordinary_data_and_left_for_far_tight_components():
    """The switch itself: zero centres (the one-product expanded form) for well-conditioned
    components, the current means for tight ones far from the data's centre."""
    family = gaussian.GaussianFamily("full")
    ordinary = gaussian.GaussianParams(jnp.array([0.5, 0.5]), jnp.array([[-3.0, 0.0],
                                                                         [3.0, 1.0]]),
                                       jnp.stack([0.1 * jnp.eye(2), jnp.eye(2)]))
    assert np.all(np.asarray(family.moment_centres(ordinary)) == 0.0)
    far = ordinary._replace(means=jnp.array([[-5e5, 0.0], [5e5, 0.0]]),
                            covariances=jnp.stack([1e-6 * jnp.eye(2)] * 2))
    np.testing.assert_array_equal(np.asarray(family.moment_centres(far)),
                                  np.asarray(far.means))


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_log_likelihood_is_exact_for_tight_clusters_at_offset_1e5(ct):
    """em_reference.gaussian.log_likelihood in the difference form, against scipy."""
    rng = np.random.default_rng(3)
    X = rng.normal(0.0, 1e-3, (300, 2)) + 1e5
    means = X[:2] + rng.normal(0.0, 1e-3, (2, 2))
    var = (1e-3 * rng.uniform(0.5, 2.0, (2, 2))) ** 2
    covs = np.stack([np.diag(v) for v in var])
    weights = np.array([0.3, 0.7])
    got = float(gaussian.log_likelihood(X, (weights, means, covs if ct == "full" else var), ct))
    assert got == pytest.approx(scipy_log_density(X, weights, means, covs), rel=1e-12)


@pytest.mark.parametrize("algorithm", ["fast", "textbook"])
def test_floor_certifies_the_mle_to_rounding_and_not_a_measurable_step_away(algorithm):
    """Tight clusters 1e6 apart: the fit is certified by the floor (its gradient is far
    above cert_tol, below the floor); moving one mean by 1,000 spacings (1e-7, a ten-thousandth
    of the cluster's sd) gives a certificate above the floor."""
    X = two_far_clusters(1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = GaussianMixtureEM(2, covariance_type="full", algorithm=algorithm,
                                random_state=0).fit(X)
    assert est.converged_
    assert np.sqrt(np.finfo(float).eps) < est.gradient_norm_ <= est.certificate_floor_
    at_fit = est.certificate(X)
    floor = est.certificate_floor(X)
    assert at_fit <= floor
    far = int(np.argmax(np.abs(est.means_[:, 0])))
    est.means_ = est.means_.copy()
    est.means_[far, 0] += 1000 * np.spacing(est.means_[far, 0])
    assert est.certificate(X) > 10 * floor
    assert est.certificate_floor(X) == pytest.approx(floor, rel=0.1)
