"""scikit-learn parity of the EM estimators (issue 21 item 8): warm_start, verbose /
verbose_interval, max_iter=0, a ValueError for an ill-defined fit, and scikit-learn's
k-means start for the same random_state."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state

from em_reference import GaussianMixtureEM, IllDefinedFitError, PoissonMixtureEM
from em_reference.initialization import initial_responsibilities


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal([0, 0], 1.0, (60, 2)), rng.normal([5, 1], 0.7, (50, 2)),
                           rng.normal([1, 6], 1.2, (70, 2))])


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data", "random"])
def test_same_random_state_gives_scikit_learns_start(init_params):
    """max_iter=0 returns the initialisation; from the same random_state it is
    scikit-learn's (its _initialize_parameters draws from the RandomState itself)."""
    X = blobs()
    ours = GaussianMixtureEM(3, init_params=init_params, max_iter=0, random_state=7).fit(X)
    ref = GaussianMixture(3, init_params=init_params, max_iter=0, random_state=7).fit(X)
    # scikit-learn's seed-point starts (k-means++, random_from_data) keep weights N_k / N
    # that sum to K / N (one point each); ours are normalised
    np.testing.assert_allclose(ours.weights_, ref.weights_ / ref.weights_.sum(), rtol=1e-10)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-9, atol=1e-12)


def test_kmeans_labels_are_drawn_from_the_random_state_itself():
    X = blobs(1)
    resp = initial_responsibilities(X, 3, "kmeans", check_random_state(3), np.ones(len(X)))
    labels = KMeans(3, n_init=1, random_state=check_random_state(3)).fit(X).labels_
    np.testing.assert_array_equal(np.argmax(resp, axis=1), labels)


def test_max_iter_0_returns_the_initialisation_without_warning():
    X = blobs()
    means_init = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = GaussianMixtureEM(3, means_init=means_init, max_iter=0, random_state=0).fit(X)
    np.testing.assert_array_equal(est.means_, means_init)
    assert est.n_iter_ == 0 and not est.converged_
    assert est.lower_bound_ == pytest.approx(est.lower_bounds_[-1])
    assert len(est.lower_bounds_) == 1
    with pytest.raises(ValueError, match="max_iter"):
        GaussianMixtureEM(3, max_iter=-1).fit(X)


@pytest.mark.parametrize("algorithm", ["textbook", "fast"])
def test_warm_start_continues_from_the_fitted_parameters(algorithm):
    """Five E-steps then five more with warm_start equal ten E-steps from the same start
    (the second fit's start is the first's returned parameters)."""
    X = blobs()
    # random soft responsibilities: a start far from the optimum, so that steps still move
    kwargs = dict(covariance_type="diag", tol=0.0, init_params="random", random_state=0,
                  algorithm=algorithm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ten = GaussianMixtureEM(3, max_iter=10, **kwargs).fit(X)
        warm = GaussianMixtureEM(3, max_iter=5, warm_start=True, **kwargs)
        warm.fit(X)
        first = warm.means_.copy()
        warm.set_params(n_init=4).fit(X)
    assert np.max(np.abs(first - warm.means_)) > 1e-3
    np.testing.assert_allclose(warm.means_, ten.means_, rtol=1e-10)
    np.testing.assert_allclose(warm.covariances_, ten.covariances_, rtol=1e-10)
    np.testing.assert_allclose(warm.lower_bound_, ten.lower_bound_, rtol=1e-12)
    assert warm.lower_bounds_.shape == (6,)  # one restart although n_init=4
    # not warm: a refit starts afresh and equals a fresh fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold = GaussianMixtureEM(3, max_iter=5, **kwargs)
        cold.fit(X)
        again = cold.fit(X).means_.copy()
    np.testing.assert_allclose(again, first, rtol=1e-12)
    with pytest.raises(ValueError, match="features"):
        warm.fit(np.c_[X, X[:, :1]])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_repeated_one_step_warm_fits_detect_convergence(covariance_type):
    """scikit-learn's contract: warm fits of max_iter=1 on the same data, repeated, end
    converged, each within max_iter E-steps. The stopping rule's history carries over, so
    the warm fits stop where one long fit from the same start stops, at the same optimum."""
    X = blobs()
    kwargs = dict(covariance_type=covariance_type, random_state=0)
    long_fit = GaussianMixtureEM(3, **kwargs).fit(X)
    assert long_fit.converged_
    warm = GaussianMixtureEM(3, warm_start=True, max_iter=1, **kwargs)
    n_fits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        while n_fits < 3 * long_fit.n_iter_ and not getattr(warm, "converged_", False):
            warm.fit(X)
            n_fits += 1
            assert warm.n_iter_ <= 1
    assert warm.converged_
    assert n_fits <= long_fit.n_iter_ + 1
    np.testing.assert_allclose(warm.means_, long_fit.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(warm.lower_bound_, long_fit.lower_bound_, rtol=1e-12)
    # new data: no history carries over (the objective is another one), the fit starts its
    # stopping rule afresh and one E-step cannot certify
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm.fit(X[::-1][:-5])
    assert not warm.converged_


def test_verbose_prints_scikit_learns_messages(capsys):
    X = blobs()
    est = GaussianMixtureEM(2, tol=0.0, max_iter=7, n_init=2, verbose=2, verbose_interval=3,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("Initialization ")
            and line[15:].isdigit()] == ["Initialization 0", "Initialization 1"]
    iterations = [line.split("\t")[0].strip() for line in lines if "Iteration" in line]
    assert iterations == ["Iteration 3", "Iteration 6"] * 2
    assert sum("did not converge" in line for line in lines) == 2
    GaussianMixtureEM(2, verbose=1, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Initialization converged." in out
    with pytest.raises(ValueError, match="verbose_interval"):
        GaussianMixtureEM(2, verbose_interval=0).fit(X)


def test_an_ill_defined_fit_raises_a_value_error_naming_reg_covar():
    duplicates = np.repeat(np.array([[1.0, 2.0], [3.0, 4.0]]), 20, axis=0)
    with pytest.raises(ValueError, match="reg_covar") as info:
        GaussianMixtureEM(3, reg_covar=0.0, random_state=0).fit(duplicates)
    assert isinstance(info.value, IllDefinedFitError)
    assert isinstance(info.value, FloatingPointError)  # older callers' except clause


def test_poisson_estimator_takes_the_same_parameters():
    X = np.random.default_rng(0).poisson(3.0, (100, 1))
    est = PoissonMixtureEM(2, warm_start=True, max_iter=0, random_state=0).fit(X)
    assert est.n_iter_ == 0 and est.get_params()["verbose_interval"] == 10


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_more_restarts_never_end_below_one_from_the_same_random_state(covariance_type):
    """scikit-learn's contract (its test_init / test_multiple_init): restart 0 of n_init=5 is
    the n_init=1 fit from the same random_state, so the best of five is never below it; on
    small problems both run the textbook path, and restart 0 is the same fit bitwise."""
    X = np.random.RandomState(0).randn(50, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for max_iter in (1, 10_000):
            kwargs = dict(covariance_type=covariance_type, random_state=0, max_iter=max_iter)
            one = GaussianMixtureEM(2, **kwargs).fit(X)
            five = GaussianMixtureEM(2, n_init=5, **kwargs).fit(X)
            assert five.restart_lower_bounds_[0] == one.lower_bound_
            assert five.lower_bound_ >= one.lower_bound_


def test_ten_one_step_restarts_never_end_below_one():
    """scikit-learn's test_init on its own data: unit-scale blobs, N = 50, one E-step."""
    for seed in range(15):
        rng = np.random.RandomState(seed)
        means = rng.rand(2, 2)
        X = np.concatenate([rng.randn(25, 2) * 0.5 + m for m in means])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            one = GaussianMixtureEM(2, max_iter=1, random_state=seed).fit(X)
            ten = GaussianMixtureEM(2, n_init=10, max_iter=1, random_state=seed).fit(X)
        assert ten.restart_lower_bounds_[0] == one.lower_bound_, seed
        assert ten.lower_bound_ >= one.lower_bound_, seed
