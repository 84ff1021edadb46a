"""fit(X, row_bucket=B) pads the rows with zero-weight rows to B, 2B, 4B, ... (issue 20 item 1:
compile once, run many). The oracle is the same fit unpadded: a zero-weight row changes no
sum, so parameters, objective, iteration count and certificate must agree to rounding; and a
second data set of another size in the same bucket must compile nothing (JAX's own compile
events, counted by experiments.compile_clock)."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from em_reference import BernoulliMixtureEM, GaussianMixtureEM, PoissonMixtureEM
from em_reference.fast import layout
from experiments.compile_clock import CompileClock

RNG = np.random.default_rng(5)
GAUSS = np.concatenate([RNG.normal(0, 1, (70, 2)), RNG.normal(4, 0.5, (80, 2))])
COUNTS = np.concatenate([RNG.poisson(2, (60, 2)), RNG.poisson(9, (90, 2))]).astype(float)
BITS = (RNG.random((150, 6)) < np.where(np.arange(150)[:, None] < 75, 0.2, 0.8)).astype(float)


def _fit(est, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, **kw)


def _assert_same_fit(a, b, names):
    np.testing.assert_allclose(a.restart_lower_bounds_, b.restart_lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=1e-12)
    assert a.converged_ == b.converged_
    # restarts that tie at one optimum are ranked by rounding: the kept one may differ
    one_kept = len(a.restart_lower_bounds_) == 1
    if one_kept:
        assert a.n_iter_ == b.n_iter_
        np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)
    for name in names:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name),
                                   rtol=1e-9 if one_kept else 1e-5, atol=1e-12, err_msg=name)
    if np.isfinite(a.gradient_norm_):
        # both far below cert_tol (1.5e-8): at an optimum the gradient is rounding noise
        np.testing.assert_allclose(a.gradient_norm_, b.gradient_norm_, rtol=1e-4, atol=1e-10)


GAUSS_PARAMS = ("weights_", "means_", "covariances_")
CASES = [  # both paths, a prior with SQUAREM, hard EM, restarts, and the other families
    (GaussianMixtureEM, GAUSS, {"covariance_type": "full", "algorithm": "fast"}, GAUSS_PARAMS),
    (GaussianMixtureEM, GAUSS, {"covariance_type": "diag", "algorithm": "textbook"},
     GAUSS_PARAMS),
    (GaussianMixtureEM, GAUSS, {"prior": "default", "acceleration": "squarem",
                                "algorithm": "textbook"}, GAUSS_PARAMS),
    (GaussianMixtureEM, GAUSS, {"assignment": "hard", "covariance_type": "spherical"},
     GAUSS_PARAMS),
    (GaussianMixtureEM, GAUSS, {"n_init": 3, "init_params": "random_from_data",
                                "covariance_type": "tied"}, GAUSS_PARAMS),
    (PoissonMixtureEM, COUNTS, {"algorithm": "textbook"}, ("weights_", "rates_")),
    (BernoulliMixtureEM, BITS, {"algorithm": "fast"}, ("weights_", "probs_")),
]


@pytest.mark.parametrize("cls, X, options, names", CASES)
def test_a_padded_fit_equals_the_unpadded_one(cls, X, options, names):
    plain = _fit(cls(2, random_state=0, **options), X)
    padded = _fit(cls(2, random_state=0, **options), X, row_bucket=64)  # 150 rows -> 256
    _assert_same_fit(plain, padded, names)


def test_the_decomposition_is_unchanged_by_padding():
    est = _fit(GaussianMixtureEM(2, max_iter=0, random_state=0), GAUSS)
    plain = est.em_decomposition(GAUSS, 5)
    padded = est.em_decomposition(GAUSS, 5, row_bucket=100)
    for key in plain:  # the KL terms fall to ~1e-20 nats: rounding of sums of ~300
        np.testing.assert_allclose(padded[key], plain[key], rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("algorithm", ["textbook", "fast"])
def test_a_second_size_in_the_same_bucket_compiles_nothing(algorithm):
    options = {"algorithm": algorithm, "random_state": 0, "acceleration": "squarem"}
    _fit(GaussianMixtureEM(2, **options), GAUSS[:120], row_bucket=256)
    with CompileClock() as clock:
        est = _fit(GaussianMixtureEM(2, **options), GAUSS, row_bucket=256)
    assert clock.spans == []
    assert est.converged_
    # the control: without the bucket the new size compiles (the clock does see compiles)
    with CompileClock() as clock:
        _fit(GaussianMixtureEM(2, **options), GAUSS[:130])
    assert clock.seconds > 0


def test_bucket_sizes():
    assert layout.bucket_rows(150, None) == 150
    assert layout.bucket_rows(150, 64) == 256
    assert layout.bucket_rows(128, 64) == 128
    assert layout.bucket_rows(1, 2048) == 2048
    assert layout.pad_rows(np.ones((3, 2)), 5).tolist() == [[1, 1], [1, 1], [1, 1], [0, 0],
                                                            [0, 0]]


@pytest.mark.parametrize("bad", [0, -4, 2.5, True, "64"])
def test_a_bad_row_bucket_is_refused_before_any_work(bad):
    with pytest.raises(ValueError, match="row_bucket"):
        GaussianMixtureEM(2).fit(GAUSS, row_bucket=bad)
