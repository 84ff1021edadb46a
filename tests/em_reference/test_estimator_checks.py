"""scikit-learn's estimator checks on GaussianMixtureEM and PoissonMixtureEM.

A check is listed in ``expected_failed_checks`` only when it does not apply, with the reason,
and the companion tests below prove that each listed check fails *for that reason* (xfail alone
would swallow any exception). Checks that fail because of a genuine defect are not listed: they
fail here. At the time of writing those are
- check_sample_weights_not_an_array (every configuration): validation.as_2d_samples calls
  np.ndim(X) on a non-ndarray array-like, which dispatches __array_function__ instead of
  converting X with np.asarray first;
- check_positive_only_tag_during_fit (Poisson): PoissonMixtureEM rejects negative X but does not
  set tags.input_tags.positive_only (nor say "Negative values in data");
- check_fit2d_1sample and check_sample_weight_equivalence_on_dense_data with prior="default":
  GaussianMixturePrior.default builds a singular covariance_prior from a singular var(X)
  (n_samples <= n_features, a constant column), and the fit stops with an error about that
  hyper-parameter (see test_default_prior_on_degenerate_data_fits_or_names_the_data_problem).
"""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (check_sample_weight_equivalence_on_dense_data,
                                            estimator_checks_generator,
                                            parametrize_with_checks)

from em_reference import GaussianMixtureEM, PoissonMixtureEM

# (JAX compiles per shape; the first two share their compiled per-shape pieces, which keeps
# three configurations affordable)
ESTIMATORS = [
    GaussianMixtureEM(),  # the defaults: full covariances, k-means initialisation, MLE
    GaussianMixtureEM(prior="default", init_params="random", n_init=3),  # MAP-EM, restarts
    GaussianMixtureEM(n_components=2, covariance_type="spherical", assignment="hard",
                      init_params="k-means++"),  # hard (classification) EM
    PoissonMixtureEM(),
]

ONE_D_IS_ONE_FEATURE = (
    "by design (issue 3: the 1-D height example) X of shape (n,) is n samples of one feature, "
    "so fitting 1-D X does not raise; see test_one_d_input_is_one_feature_by_design")
PREDICT_1D = (
    "by design 1-D X is one feature, so after a fit on 3 features predict(1-D X) raises the "
    "feature-count ValueError ('X has 1 features, but ... expecting 3') instead of "
    "'Reshape your data'; see test_one_d_input_is_one_feature_by_design")
RANDOM_SEEDING = (
    "k-means / k-means++ / random_from_data seeding draws from the random stream over the rows, "
    "so the weighted and the repeated data start EM from different points (sklearn xfails its "
    "own KMeans for the same reason); with the start pinned the same check passes: "
    "test_sample_weight_equivalence_once_the_start_is_pinned")
COUNTS_ONLY = (
    "the check fits continuous (or negative) X; a Poisson mixture is a density on "
    "non-negative integer counts and rejects such X with 'Poisson counts must be ...'; see "
    "test_poisson_expected_failures_are_the_counts_contract and test_poisson_on_counts_*")

POISSON_CONTINUOUS_DATA_CHECKS = (
    "check_fit_score_takes_y", "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
    "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_estimators_dtypes", "check_sample_weights_list", "check_all_zero_sample_weights_error",
    "check_sample_weight_equivalence_on_dense_data", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_fit2d_1sample", "check_fit2d_1feature",
    "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
    "check_n_features_in", "check_fit2d_predict1d",
)


def expected_failed_checks(estimator):
    if isinstance(estimator, PoissonMixtureEM):
        return dict.fromkeys(POISSON_CONTINUOUS_DATA_CHECKS, COUNTS_ONLY)
    failed = {"check_fit1d": ONE_D_IS_ONE_FEATURE, "check_fit2d_predict1d": PREDICT_1D}
    if estimator.n_components > 1:  # a random, row-order dependent start
        failed["check_sample_weight_equivalence_on_dense_data"] = RANDOM_SEEDING
    return failed


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks,
                         xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _check_name(check):
    return getattr(check, "func", check).__name__


# ----------------------------------------------------- the listed checks fail for that reason
def _message_chain(exc):
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " | ".join(parts)


def test_poisson_expected_failures_are_the_counts_contract():
    seen, wrong = set(), {}
    for est, check in estimator_checks_generator(PoissonMixtureEM(), legacy=True, mark=None):
        name = _check_name(check)
        if name not in POISSON_CONTINUOUS_DATA_CHECKS:
            continue
        seen.add(name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check(est)
        except Exception as exc:  # noqa: BLE001 (any failure must be the counts contract)
            if "Poisson counts must be" not in _message_chain(exc):
                wrong[name] = _message_chain(exc)[:300]
        else:
            wrong[name] = "did not fail"
    assert seen == set(POISSON_CONTINUOUS_DATA_CHECKS)
    assert not wrong, wrong


def test_one_d_input_is_one_feature_by_design():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, 30), rng.normal(3, 0.5, 20)])
    init = dict(weights_init=[0.5, 0.5], means_init=[[-1.0], [1.0]], precisions_init=[1.0, 1.0],
                covariance_type="spherical", max_iter=20)
    one_d = GaussianMixtureEM(2, **init).fit(x)
    two_d = GaussianMixtureEM(2, **init).fit(x[:, None])
    assert one_d.n_features_in_ == 1 and one_d.means_.shape == (2, 1)
    np.testing.assert_array_equal(one_d.means_, two_d.means_)
    np.testing.assert_array_equal(one_d.score_samples(x), two_d.score_samples(x[:, None]))
    # on a model of 3 features, 1-D X is one feature: a ValueError naming the mismatch
    wide = GaussianMixtureEM(1, covariance_type="diag").fit(rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="X has 1 features, but GaussianMixtureEM is expecting 3"):
        wide.predict(x)


@pytest.mark.parametrize("estimator", [e for e in ESTIMATORS if isinstance(e, GaussianMixtureEM)
                                       and "check_sample_weight_equivalence_on_dense_data"
                                       in expected_failed_checks(e)], ids=repr)
def test_sample_weight_equivalence_once_the_start_is_pinned(estimator):
    # the same sklearn check (X of shape (15, 30), 2 components), with explicit initial params
    rng = np.random.default_rng(0)
    d = 30
    cov_shape = {"spherical": (2,), "diag": (2, d)}[estimator.covariance_type]
    pinned = clone(estimator).set_params(weights_init=[0.4, 0.6],
                                         means_init=rng.uniform(0, 1, size=(2, d)),
                                         precisions_init=np.full(cov_shape, 10.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_sample_weight_equivalence_on_dense_data(type(pinned).__name__, pinned)


# ------------------------------ what the sklearn checks would test for Poisson, on counts
def _counts(seed=0, n=40):
    rng = np.random.default_rng(seed)
    rates = np.array([[1.0, 5.0, 0.3], [7.0, 1.0, 2.0]])
    return rng.poisson(rates[rng.integers(0, 2, size=n)]).astype(float)


POISSON_KW = dict(n_components=2, weights_init=[0.5, 0.5],
                  rates_init=[[2.0, 3.0, 1.0], [5.0, 2.0, 1.0]], max_iter=50)


def test_poisson_on_counts_fit_contract():
    x = _counts()
    est = PoissonMixtureEM(**POISSON_KW)
    with pytest.raises(NotFittedError):
        est.predict(x)
    params_before = est.get_params()
    assert est.fit(x) is est
    assert est.get_params() == params_before  # fit does not touch hyper-parameters
    assert est.n_features_in_ == 3 and est.rates_.shape == (2, 3)
    # idempotent, pickles, accepts int / float32 / F-ordered / list input identically
    proba = est.predict_proba(x)
    np.testing.assert_array_equal(clone(est).fit(x).predict_proba(x), proba)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict_proba(x), proba)
    for variant in (x.astype(np.int64), x.astype(np.float32), np.asfortranarray(x), x.tolist()):
        np.testing.assert_allclose(clone(est).fit(variant).predict_proba(x), proba, rtol=1e-12)
    # predictions are per sample: row order and subsets do not matter
    perm = np.random.default_rng(1).permutation(len(x))
    np.testing.assert_allclose(est.score_samples(x[perm]), est.score_samples(x)[perm],
                               rtol=1e-12)
    np.testing.assert_allclose(est.score_samples(x[:7]), est.score_samples(x)[:7], rtol=1e-12)
    with pytest.raises(ValueError, match="features"):
        est.predict(x[:, :2])


def test_poisson_on_counts_rejects_bad_input_by_name():
    x = _counts()
    est = PoissonMixtureEM(**POISSON_KW)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad)
    with pytest.raises(ValueError, match="non-negative"):
        est.fit(x - 1.0)
    with pytest.raises(ValueError, match="integer"):
        est.fit(x + 0.5)
    with pytest.raises(ValueError, match="sample_weight"):
        est.fit(x, sample_weight=np.zeros(len(x)))
    with pytest.raises(ValueError, match="n_samples"):
        est.fit(x[:1])


# ---------------------------------------------- prior="default" on a singular data covariance
@pytest.mark.parametrize("covariance_type, shape, constant_column", [
    ("diag", (40, 3), True),   # a constant column: its default inverse-gamma scale is 0
    ("full", (40, 3), True),
    ("full", (5, 8), False),   # n_samples <= n_features: var(X) is singular
])
def test_default_prior_on_degenerate_data_fits_or_names_the_data_problem(
        covariance_type, shape, constant_column):
    # The MLE fits these data (reg_covar); prior="default" must too, or stop with an error that
    # names the data problem (DESIGN: "regularise or stop with a clear error"), not one about
    # covariance_prior, a hyper-parameter the user never gave.
    X = np.random.default_rng(0).normal(size=shape)
    if constant_column:
        X[:, -1] = 1.0
    est = GaussianMixtureEM(1, covariance_type=covariance_type, prior="default", max_iter=10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
    except ValueError as exc:
        assert "covariance_prior" not in str(exc) and "default" in str(exc), str(exc)
    else:
        assert np.all(np.isfinite(est.covariances_)) and np.isfinite(est.lower_bound_)
