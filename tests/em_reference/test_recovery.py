"""Recovery of the truth on the classic textbook examples (labels matched optimally)."""

import numpy as np
from scipy.optimize import linear_sum_assignment

from em_reference import GaussianMixtureEM, PoissonMixtureEM


def _match(estimated, truth):
    """Permutation of estimated components that best matches the true ones (by location)."""
    cost = ((estimated[:, None, :] - truth[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return rows[np.argsort(cols)]


def test_three_cluster_diag_recovery(three_cluster, three_cluster_truth):
    X, labels = three_cluster
    true_means, true_vars, true_weights = three_cluster_truth
    est = GaussianMixtureEM(3, covariance_type="diag", n_init=4, random_state=0).fit(X)
    order = _match(est.means_, true_means)
    assert est.converged_
    np.testing.assert_allclose(est.means_[order], true_means, atol=0.25)
    np.testing.assert_allclose(est.covariances_[order], true_vars, rtol=0.2)
    np.testing.assert_allclose(est.weights_[order], true_weights,
                               atol=0.03)
    # hard labels agree with the truth for most points (clusters overlap a little)
    accuracy = np.mean(np.argsort(order)[est.predict(X)] == labels)
    assert accuracy > 0.9


def test_poisson_rates_2_and_6():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.poisson(2.0, 1200), rng.poisson(6.0, 800)])
    est = PoissonMixtureEM(2, n_init=3, random_state=0).fit(x)
    order = np.argsort(est.rates_[:, 0])
    np.testing.assert_allclose(est.rates_[order, 0], [2.0, 6.0], atol=0.4)
    np.testing.assert_allclose(est.weights_[order], [0.6, 0.4], atol=0.08)
    # MAP-EM with the weak default prior lands next to the MLE
    map_est = PoissonMixtureEM(2, n_init=3, random_state=0, prior="default").fit(x)
    np.testing.assert_allclose(np.sort(map_est.rates_[:, 0]), est.rates_[order, 0], atol=0.02)


def test_height_mixture_80_20():
    rng = np.random.default_rng(1)
    n = 5000
    heights = np.where(rng.uniform(size=n) < 0.8, rng.normal(165.0, 6.0, n),
                       rng.normal(185.0, 6.0, n))
    # overlapping components make EM crawl: the default tol (1e-3 per sample) stops it early,
    # visibly biased (weights ~0.76/0.24); recovery needs the real optimum
    est = GaussianMixtureEM(2, n_init=3, random_state=0, tol=1e-9, max_iter=2000).fit(heights)
    order = np.argsort(est.means_[:, 0])
    np.testing.assert_allclose(est.weights_[order], [0.8, 0.2], atol=0.03)
    np.testing.assert_allclose(est.means_[order, 0], [165.0, 185.0], atol=1.0)
    np.testing.assert_allclose(np.sqrt(est.covariances_[order, 0, 0]), [6.0, 6.0], atol=0.5)
    # and it is the maximum likelihood fit: at least as good as scikit-learn's best of 5
    from sklearn.mixture import GaussianMixture
    ref = GaussianMixture(2, n_init=5, random_state=0, tol=1e-9, max_iter=2000)
    ref.fit(heights[:, None])
    assert est.score(heights) >= ref.score(heights[:, None]) - 1e-6


def test_sample_draws_from_the_fitted_mixture(three_cluster):
    X, _ = three_cluster
    est = GaussianMixtureEM(3, covariance_type="full", random_state=0).fit(X)
    draws, comp = est.sample(20000, random_state=1)
    assert draws.shape == (20000, 2) and comp.shape == (20000,)
    np.testing.assert_allclose(np.bincount(comp) / 20000, est.weights_, atol=0.015)
    for k in range(3):
        np.testing.assert_allclose(draws[comp == k].mean(0), est.means_[k], atol=0.15)
        np.testing.assert_allclose(np.cov(draws[comp == k].T), est.covariances_[k], atol=0.35)
