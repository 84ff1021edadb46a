"""The textbook path (em_reference.textbook: log joint, responsibilities, M-step from them) and
the fast kernel (em_reference.fast: features, moments, chunks, restarts in one product) give
the same fit to 1e-10, for every family and covariance type, with and without a prior, with
frequency weights, restarts and streaming chunks.

Both fits start from the same explicit parameters and run a fixed number of iterations
(tol=0), so every iterate must agree, not only the optimum.
"""

import warnings

import numpy as np
import pytest

from em_reference import BernoulliMixtureEM, GaussianMixtureEM, PoissonMixtureEM

TOL = 1e-10
N, N_ITER = 157, 12
COV_TYPES = ("full", "tied", "diag", "spherical")


def gaussian_problem(ct, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 1.0]])
    X = centers[rng.integers(3, size=N)] + rng.normal(size=(N, 3)) * [1.0, 0.5, 2.0] + 50.0
    k, d = 3, 3
    prec = {"full": np.broadcast_to(np.eye(d) / 4.0, (k, d, d)), "tied": np.eye(d) / 4.0,
            "diag": np.full((k, d), 0.25), "spherical": np.full(k, 0.25)}[ct]
    init = dict(weights_init=[0.2, 0.3, 0.5], means_init=X[[0, 50, 100]], precisions_init=prec)
    return X, init


def poisson_problem(seed=0):
    rng = np.random.default_rng(seed)
    rates = np.array([[1.0, 8.0], [6.0, 2.0], [15.0, 12.0]])
    x = rng.poisson(rates[rng.integers(3, size=N)]).astype(float)
    return x, dict(weights_init=[0.3, 0.3, 0.4], rates_init=[[2.0, 5.0], [5.0, 3.0], [9.0, 9.0]])


def bernoulli_problem(seed=0):
    rng = np.random.default_rng(seed)
    probs = np.array([[0.9, 0.8, 0.1, 0.1, 0.5], [0.1, 0.2, 0.9, 0.7, 0.5],
                      [0.5, 0.5, 0.5, 0.9, 0.05]])
    x = (rng.uniform(size=(N, 5)) < probs[rng.integers(3, size=N)]).astype(float)
    return x, dict(weights_init=[0.3, 0.3, 0.4], probs_init=np.clip(probs + 0.05, 0.1, 0.9))


def weights(seed=1):
    w = np.random.default_rng(seed).integers(0, 4, size=N).astype(float)
    w[:3] = 1.0
    return w


def fitted(make, X, algorithm, sample_weight=None, **fit_kwargs):
    est = make(algorithm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: ConvergenceWarning by design
        est.fit(X, sample_weight=sample_weight, **fit_kwargs)
    names = ("weights_", "means_", "covariances_", "rates_", "probs_", "lower_bounds_")
    return {name: np.asarray(getattr(est, name)) for name in names if hasattr(est, name)}


def assert_same(got, ref):
    assert got.keys() == ref.keys()
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=TOL, atol=TOL, err_msg=name)


CONFIGS = [(ct, prior, hard) for ct in COV_TYPES for prior in (None, "default")
           for hard in (False,)] + [("full", None, True), ("diag", "default", True)]


@pytest.mark.parametrize("ct, prior, hard", CONFIGS)
def test_gaussian_textbook_equals_fast(ct, prior, hard):
    X, init = gaussian_problem(ct)
    w = weights()

    def make(algorithm):
        return GaussianMixtureEM(3, covariance_type=ct, prior=prior, tol=0.0, max_iter=N_ITER,
                                 assignment="hard" if hard else "soft", algorithm=algorithm,
                                 **init)

    ref = fitted(make, X, "textbook", w)
    assert_same(fitted(make, X, "fast", w), ref)              # features kept, unrolled
    assert_same(fitted(make, X, "fast", w, chunk_size=16), ref)  # streamed over 10 chunks


@pytest.mark.parametrize("prior, hard", [(None, False), ("default", False), (None, True)])
def test_poisson_textbook_equals_fast(prior, hard):
    x, init = poisson_problem()
    w = weights()

    def make(algorithm):
        return PoissonMixtureEM(3, prior=prior, tol=0.0, max_iter=N_ITER, algorithm=algorithm,
                                assignment="hard" if hard else "soft", **init)

    ref = fitted(make, x, "textbook", w)
    assert_same(fitted(make, x, "fast", w), ref)
    assert_same(fitted(make, x, "fast", w, chunk_size=16), ref)


@pytest.mark.parametrize("prior, hard", [(None, False), ("default", False), (None, True)])
def test_bernoulli_textbook_equals_fast(prior, hard):
    x, init = bernoulli_problem()
    w = weights()

    def make(algorithm):
        return BernoulliMixtureEM(3, prior=prior, tol=0.0, max_iter=N_ITER, algorithm=algorithm,
                                  assignment="hard" if hard else "soft", **init)

    ref = fitted(make, x, "textbook", w)
    assert_same(fitted(make, x, "fast", w), ref)
    assert_same(fitted(make, x, "fast", w, chunk_size=16), ref)


@pytest.mark.parametrize("family", ["gaussian full", "gaussian diag", "poisson", "bernoulli"])
def test_restarts_textbook_equal_fast(family):
    """n_init=4 from seeded random starts: the textbook path vmaps its E-step, the fast kernel
    runs the 4 restarts in one product per chunk; the initial M-steps (from the same random
    responsibilities) and every iterate agree, so the best restart is the same fit."""
    if family == "poisson":
        X, _ = poisson_problem()

        def make(algorithm):
            return PoissonMixtureEM(3, prior="default", tol=0.0, max_iter=N_ITER, n_init=4,
                                    init_params="random", random_state=3, algorithm=algorithm)
    elif family == "bernoulli":
        X, _ = bernoulli_problem()

        def make(algorithm):
            return BernoulliMixtureEM(3, prior="default", tol=0.0, max_iter=N_ITER, n_init=4,
                                      init_params="random", random_state=3,
                                      algorithm=algorithm)
    else:
        ct = family.split()[1]
        X, _ = gaussian_problem(ct)

        def make(algorithm):
            return GaussianMixtureEM(3, covariance_type=ct, tol=0.0, max_iter=N_ITER, n_init=4,
                                     init_params="random", random_state=3, algorithm=algorithm)

    ref = fitted(make, X, "textbook", weights())
    assert_same(fitted(make, X, "fast", weights()), ref)
    assert_same(fitted(make, X, "fast", weights(), chunk_size=40), ref)


def test_auto_runs_the_textbook_path_on_small_problems_and_the_kernel_on_large(monkeypatch):
    import em_reference.base as base

    engines = []
    real_fit_em = base.fit_em

    def spy(*args, engine, **kwargs):
        engines.append(type(engine).__name__)
        return real_fit_em(*args, engine=engine, **kwargs)

    monkeypatch.setattr(base, "fit_em", spy)
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=(100, 2)), rng.normal(size=(5000, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for X, kw in [(small, {}), (large, {}), (small, {"n_init": 2}), (small, {"n_init": 7}),
                      (small, {"chunk": 1})]:
            chunk = kw.pop("chunk", None) and 50
            GaussianMixtureEM(3, max_iter=2, random_state=0, **kw).fit(X, chunk_size=chunk)
    # N K n_init = 300, 15000, 600, 2100, 300 (streamed) against TEXTBOOK_MAX_VALUES = 2048
    assert engines == ["TextbookEngine", "FastEngine", "TextbookEngine", "FastEngine",
                       "FastEngine"]


def test_textbook_refuses_streaming_and_devices():
    X = np.random.default_rng(0).normal(size=(50, 2))
    est = GaussianMixtureEM(2, algorithm="textbook")
    with pytest.raises(ValueError, match="algorithm='fast'"):
        est.fit(X, chunk_size=10)
    with pytest.raises(ValueError, match="algorithm='fast'"):
        est.fit(X, devices=1)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        GaussianMixtureEM(2, algorithm="quick").fit(X)
