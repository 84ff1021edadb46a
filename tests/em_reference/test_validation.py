"""Bad input raises a ValueError naming the problem; degenerate data never gives silent NaN."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from em_reference import (GaussianMixtureEM, GaussianMixturePrior, PoissonMixtureEM,
                          PoissonMixturePrior)

X_OK = np.random.default_rng(0).normal(size=(50, 2))
COUNTS_OK = np.random.default_rng(0).poisson(3.0, size=50)


@pytest.mark.parametrize("X, match", [
    (np.array([[0.0, np.nan]] * 10), "NaN"),
    (np.array([[0.0, np.inf]] * 10), "infinity"),
    (np.zeros((5, 2, 2)), "dim 3"),
    (np.zeros((0, 2)), "0 sample"),
])
def test_bad_data(X, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureEM(2).fit(X)


def test_fewer_samples_than_components():
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixtureEM(5).fit(X_OK[:3])
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        PoissonMixtureEM(4).fit(COUNTS_OK[:2])


@pytest.mark.parametrize("counts, match", [
    (np.array([1, 2, -1, 3]), "non-negative"),
    (np.array([1.0, 2.5, 3.0, 0.0]), "integer"),
    (np.array([1.0, np.nan, 3.0, 0.0]), "NaN"),
])
def test_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        PoissonMixtureEM(2).fit(counts)


def test_feature_count_mismatch_after_fit():
    est = GaussianMixtureEM(2, random_state=0).fit(X_OK)
    for method in ("predict", "predict_proba", "score", "score_samples", "bic", "aic", "icl"):
        with pytest.raises(ValueError, match="features"):
            getattr(est, method)(np.zeros((4, 3)))
    pest = PoissonMixtureEM(2, random_state=0).fit(COUNTS_OK)
    with pytest.raises(ValueError, match="features"):
        pest.predict(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        pest.score(-np.ones(4))


@pytest.mark.parametrize("params, match", [
    (dict(n_components=0), "n_components"),
    (dict(n_components=2.5), "n_components"),
    (dict(covariance_type="banana"), "covariance_type"),
    (dict(tol=-1.0), "tol"),
    (dict(reg_covar=-1e-3), "reg_covar"),
    (dict(max_iter=-1), "max_iter"),  # 0 is allowed: it returns the initialisation
    (dict(verbose_interval=0), "verbose_interval"),
    (dict(warm_start="yes"), "warm_start"),
    (dict(n_init=0), "n_init"),
    (dict(init_params="magic"), "init_params"),
    (dict(assignment="fuzzy"), "assignment"),
    (dict(dtype="float16"), "dtype"),
    (dict(fixed_params=("rates",)), "fixed_params"),
    (dict(prior="flat"), "prior"),
    (dict(weights_init=[0.5, 0.6]), "weights_init"),
    (dict(means_init=np.zeros((3, 2))), "means_init"),
    (dict(precisions_init=np.stack([-np.eye(2)] * 2)), "precisions_init"),
])
def test_bad_hyper_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureEM(**{"n_components": 2, **params}).fit(X_OK)


def _prior(**overrides):
    base = dict(weight_concentration=1.0, mean_prior=np.zeros(2), mean_precision=0.01,
                degrees_of_freedom=4.0, covariance_prior=np.eye(2), covariance_type="full")
    return GaussianMixturePrior(**{**base, **overrides})


@pytest.mark.parametrize("prior, match", [
    (_prior(weight_concentration=0.0), "weight_concentration"),
    (_prior(weight_concentration=[1.0, 1.0, 1.0]), "weight_concentration"),
    (_prior(mean_prior=np.zeros(3)), "mean_prior"),
    (_prior(mean_precision=-1.0), "mean_precision"),
    (_prior(degrees_of_freedom=1.0), "degrees_of_freedom"),  # must exceed D - 1 = 1
    (_prior(covariance_prior=np.array([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
    (_prior(covariance_prior=np.eye(3)), "covariance_prior"),
    (_prior(covariance_type="tied"), "covariance_type"),  # estimator is full
])
def test_bad_gaussian_prior(prior, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureEM(2, prior=prior).fit(X_OK)


def test_prior_shape_must_fit_its_covariance_type():
    prior = _prior(covariance_type="diag", covariance_prior=np.eye(2))
    with pytest.raises(ValueError, match=r"covariance_prior must have shape \(2,\)"):
        GaussianMixtureEM(2, covariance_type="diag", prior=prior).fit(X_OK)


@pytest.mark.parametrize("prior, match", [
    (PoissonMixturePrior(0.0, 2.0, 1.0), "weight_concentration"),
    (PoissonMixturePrior(1.0, -2.0, 1.0), "rate_shape"),
    (PoissonMixturePrior(1.0, 2.0, 0.0), "rate_rate"),
    (PoissonMixturePrior(1.0, [2.0, 3.0], 1.0), "rate_shape"),
])
def test_bad_poisson_prior(prior, match):
    with pytest.raises(ValueError, match=match):
        PoissonMixtureEM(2, prior=prior).fit(COUNTS_OK)


@pytest.mark.parametrize("weights, match", [
    (-np.ones(50), "non-negative"),
    (np.ones(49), "shape"),
    (np.full(50, np.nan), "NaN"),
    (np.zeros(50), "sums to zero"),
])
def test_bad_sample_weight(weights, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureEM(2).fit(X_OK, sample_weight=weights)


def test_bad_poisson_rates_init():
    with pytest.raises(ValueError, match="rates_init"):
        PoissonMixtureEM(2, rates_init=[0.0, 1.0]).fit(COUNTS_OK)


@pytest.mark.parametrize("method", ["fit", "fit_predict"])
def test_non_convergence_warns_at_the_callers_line(method):
    """The warning names the user's own line (here, this file), not a frame inside mixbench or
    contextlib, so warning filters by module and the printed location are the caller's."""
    with pytest.warns(ConvergenceWarning, match="did not reach a certified optimum") as record:
        getattr(GaussianMixtureEM(3, max_iter=2, tol=1e-12, random_state=0), method)(X_OK)
    assert [w.filename for w in record] == [__file__]


def test_degenerate_data_never_gives_silent_nan():
    duplicates = np.repeat(np.array([[1.0, 2.0], [3.0, 4.0]]), 20, axis=0)
    constant_column = np.column_stack([np.random.default_rng(0).normal(size=40), np.ones(40)])
    for X in (duplicates, constant_column):
        for ct in ("full", "tied", "diag", "spherical"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est = GaussianMixtureEM(3, covariance_type=ct, random_state=0).fit(X)
            for value in (est.weights_, est.means_, est.covariances_):
                assert np.all(np.isfinite(value))
            assert np.isfinite(est.lower_bound_)
    # without regularisation a collapsed component has no finite likelihood: a clear error
    with pytest.raises(FloatingPointError, match="reg_covar"):
        GaussianMixtureEM(3, reg_covar=0.0, random_state=0).fit(duplicates)


def test_emptied_component_keeps_finite_parameters():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    # the third component starts far from every point, so it receives no responsibility
    est = GaussianMixtureEM(3, means_init=[[0.0, 0.0], [1.0, 1.0], [1e3, 1e3]],
                            weights_init=[0.4, 0.4, 0.2], random_state=0, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    assert np.all(np.isfinite(est.means_)) and np.all(np.isfinite(est.covariances_))
    assert np.isfinite(est.score(X))
