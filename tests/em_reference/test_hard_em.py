"""Hard (classification) EM, and k-means as its special case."""

import numpy as np
from sklearn.cluster import KMeans

from em_reference import GaussianMixtureEM, PoissonMixtureEM


def test_hard_em_with_equal_fixed_spherical_covariances_is_kmeans(three_cluster):
    X, _ = three_cluster
    centers = X[[5, 900, 1800]]
    km = KMeans(3, init=centers, n_init=1, algorithm="lloyd", tol=0.0, max_iter=300).fit(X)
    est = GaussianMixtureEM(
        3, covariance_type="spherical", assignment="hard", tol=0.0, max_iter=60,
        weights_init=np.full(3, 1 / 3), means_init=centers, precisions_init=np.ones(3),
        fixed_params=("weights", "covariances"), reg_covar=0.0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    np.testing.assert_allclose(est.means_, km.cluster_centers_, atol=1e-10)
    np.testing.assert_array_equal(est.predict(X), km.labels_)
    # the hard-EM objective is the negative k-means inertia, up to constants
    d = X.shape[1]
    const = -len(X) * (np.log(3) + 0.5 * d * np.log(2 * np.pi))
    np.testing.assert_allclose(est.lower_bound_, const - 0.5 * km.inertia_, rtol=1e-10)


def test_hard_em_objective_never_decreases(three_cluster):
    X, _ = three_cluster
    for ct in ("full", "diag"):
        est = GaussianMixtureEM(3, covariance_type=ct, assignment="hard", random_state=2,
                                max_iter=50).fit(X)
        assert np.all(np.diff(est.lower_bounds_) >= -1e-9 * abs(est.lower_bound_))
    x = np.concatenate([np.random.default_rng(0).poisson(2, 300),
                        np.random.default_rng(1).poisson(9, 300)])
    est = PoissonMixtureEM(2, assignment="hard", random_state=0).fit(x)
    assert np.all(np.diff(est.lower_bounds_) >= -1e-9 * abs(est.lower_bound_))
    # classification likelihood <= likelihood at the same parameters
    assert est.lower_bound_ <= np.sum(est.score_samples(x)) + 1e-9
