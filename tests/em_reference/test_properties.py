"""Property tests (hypothesis) of em_reference: EM's monotonicity, responsibilities on the
simplex, invariance to the order of the rows, and the ELBO identity log p = ELBO + KL.

JAX compiles once per shape and static configuration, so the shapes below are fixed and
hypothesis varies only the values (data, initial parameters, q). All fits of one configuration
share one compilation (same N, D, K, max_iter, reg_covar, prior or not, assignment).
"""

import warnings

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special

import em_reference
from em_reference import GaussianMixtureEM, PoissonMixtureEM

N, D, K = 60, 2, 3
MAX_ITER = 15
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2**31 - 1)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

GAUSSIAN_CONFIGS = [  # (covariance_type, prior, assignment)
    ("full", None, "soft"),
    ("tied", "default", "soft"),
    ("diag", None, "hard"),
    ("spherical", "default", "hard"),
    ("diag", "default", "soft"),
    ("full", "default", "hard"),
]
POISSON_CONFIGS = [(None, "soft"), ("default", "soft"), (None, "hard"), ("default", "hard")]


# ------------------------------------------------------------------------------ data + init
def gaussian_data(seed, scale):
    """N points from K Gaussian clusters of N / K points each, at an overall scale.

    (Not degenerate on purpose: a component that collapses onto D points has a covariance
    with condition number ~ 1 / reg_covar, and its log-density is then only accurate to
    ~1e-8 relative, which no objective trace can be monotone beyond.)"""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(K, D)) * 4.0
    spreads = rng.uniform(0.5, 2.0, size=(K, D))
    z = np.repeat(np.arange(K), N // K)
    return scale * (centers[z] + rng.normal(size=(N, D)) * spreads[z])


def gaussian_init(seed, X, ct):
    """Explicit initial parameters (so the start does not depend on the row order)."""
    rng = np.random.default_rng(seed + 1)
    weights = rng.dirichlet(np.full(K, 2.0))
    means = X[rng.choice(N, size=K, replace=False)] + 0.1 * rng.normal(size=(K, D)) * X.std(0)
    var = X.var(axis=0).mean() * rng.uniform(0.3, 1.5, size=K)
    prec = {"full": np.stack([np.eye(D) / v for v in var]), "tied": np.eye(D) / var[0],
            "diag": np.outer(1.0 / var, np.ones(D)), "spherical": 1.0 / var}[ct]
    return dict(weights_init=weights, means_init=means, precisions_init=prec)


def poisson_data(seed):
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.2, 15.0, size=(2, D))
    return rng.poisson(rates[rng.integers(0, 2, size=N)]).astype(float)


def poisson_init(seed, x):
    rng = np.random.default_rng(seed + 1)
    return dict(weights_init=rng.dirichlet([2.0, 2.0]),
                rates_init=x.mean(0) * rng.uniform(0.3, 2.0, size=(2, D)) + 0.1)


def gaussian_estimator(ct, prior, assignment, **kw):
    # MAP-EM needs no regulariser (the prior keeps covariances positive definite), so its M-step
    # is the exact maximiser. The MLE keeps the default reg_covar = 1e-6, which moves the M-step
    # off the maximiser only to second order (~1e-12 absolute), far below the tolerance.
    reg = 0.0 if prior is not None else 1e-6
    return GaussianMixtureEM(K, covariance_type=ct, prior=prior, assignment=assignment,
                             reg_covar=reg, max_iter=MAX_ITER, tol=0.0, **kw)


def assert_non_decreasing(trace):
    trace = np.asarray(trace)
    assert trace.shape == (MAX_ITER + 1,)
    assert np.all(np.isfinite(trace)), trace
    steps = np.diff(trace)
    slack = 1e-9 * np.maximum(np.abs(trace[:-1]), 1.0)
    assert np.all(steps >= -slack), (steps.min(), trace)
    assert trace[-1] > trace[0]  # EM made progress from an arbitrary start


def assert_proba_on_simplex(est, X):
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), est.n_components)
    assert np.all(proba >= 0.0) and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(est.predict(X), np.argmax(est.log_joint_matrix(X), axis=1))


# ---------------------------------------------------------------- monotone objective trace
@pytest.mark.parametrize("ct, prior, assignment", GAUSSIAN_CONFIGS)
@SETTINGS
@given(seed=seeds, scale=st.sampled_from([0.05, 1.0, 30.0]))
def test_gaussian_objective_trace_never_decreases(ct, prior, assignment, seed, scale):
    X = gaussian_data(seed, scale)
    est = gaussian_estimator(ct, prior, assignment, **gaussian_init(seed, X, ct))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed (non-finite) step is a bug
        est.fit(X)
    assert est.n_iter_ == MAX_ITER
    assert_non_decreasing(est.lower_bounds_)
    assert est.lower_bound_ == est.lower_bounds_[-1]
    assert_proba_on_simplex(est, X)
    # far from every cluster the responsibilities are still a distribution (log-sum-exp)
    assert_proba_on_simplex(est, X * 1e3 + 1e4)


@pytest.mark.parametrize("prior, assignment", POISSON_CONFIGS)
@SETTINGS
@given(seed=seeds)
def test_poisson_objective_trace_never_decreases(prior, assignment, seed):
    x = poisson_data(seed)
    est = PoissonMixtureEM(2, prior=prior, assignment=assignment, max_iter=MAX_ITER, tol=0.0,
                           init_params="random_from_data", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        est.fit(x)
    assert_non_decreasing(est.lower_bounds_)
    assert_proba_on_simplex(est, x)
    assert_proba_on_simplex(est, x * 50.0)


# --------------------------------------------------------------- invariance to row order
def _assert_same_params(a, b, names):
    for name in names:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-8, atol=1e-10,
                                   err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-10)


@pytest.mark.parametrize("ct, prior, assignment", GAUSSIAN_CONFIGS[:4])
@SETTINGS
@given(seed=seeds, perm_seed=seeds)
def test_gaussian_fit_is_invariant_to_row_permutation(ct, prior, assignment, seed, perm_seed):
    X = gaussian_data(seed, 1.0)
    init = gaussian_init(seed, X, ct)
    perm = np.random.default_rng(perm_seed).permutation(N)
    a = gaussian_estimator(ct, prior, assignment, **init).fit(X)
    b = gaussian_estimator(ct, prior, assignment, **init).fit(X[perm])
    _assert_same_params(a, b, ("weights_", "means_", "covariances_"))
    np.testing.assert_allclose(a.predict_proba(X)[perm], b.predict_proba(X[perm]), atol=1e-9)


@pytest.mark.parametrize("prior, assignment", POISSON_CONFIGS[1:3])
@SETTINGS
@given(seed=seeds, perm_seed=seeds)
def test_poisson_fit_is_invariant_to_row_permutation(prior, assignment, seed, perm_seed):
    x = poisson_data(seed)
    init = poisson_init(seed, x)
    perm = np.random.default_rng(perm_seed).permutation(N)
    kw = dict(prior=prior, assignment=assignment, max_iter=MAX_ITER, tol=0.0, **init)
    a = PoissonMixtureEM(2, **kw).fit(x)
    b = PoissonMixtureEM(2, **kw).fit(x[perm])
    _assert_same_params(a, b, ("weights_", "rates_"))


# ----------------------------------------------------------- log p(X | theta) = ELBO + KL
NQ, KQ = 9, 4
elbo_em = jax.jit(em_reference.elbo_em)
kl_to_posterior = jax.jit(em_reference.kl_to_posterior)
log_marginal = jax.jit(em_reference.log_marginal)
posterior = jax.jit(em_reference.posterior_responsibilities)


def random_q(rng, n, k, sparse):
    """Rows on the simplex; with sparse=True some entries are exactly zero."""
    q = rng.dirichlet(np.full(k, 0.3), size=n)
    if sparse:
        q[rng.uniform(size=(n, k)) < 0.3] = 0.0
        q[np.arange(n), rng.integers(0, k, size=n)] += 0.5  # no all-zero row
        q /= q.sum(axis=1, keepdims=True)
    return q


def independent_elbo_kl(log_joint, q, w):
    """numpy, in log space: ELBO = sum_n w_n sum_k q (log p(x_n, k) - log q), and
    KL = sum_n w_n sum_k q (log q - log p(k | x_n)), with 0 log 0 = 0."""
    log_post = log_joint - special.logsumexp(log_joint, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.log(q)
        elbo = np.sum(w * np.sum(np.where(q > 0, q * (log_joint - log_q), 0.0), axis=1))
        kl = np.sum(w * np.sum(np.where(q > 0, q * (log_q - log_post), 0.0), axis=1))
    return elbo, kl


@SETTINGS
@given(seed=seeds, spread=st.sampled_from([0.1, 5.0, 300.0]), sparse=st.booleans(),
       weighted=st.booleans())
def test_log_marginal_is_elbo_plus_kl_for_any_q(seed, spread, sparse, weighted):
    rng = np.random.default_rng(seed)
    log_joint = rng.normal(size=(NQ, KQ)) * spread - 50.0
    q = random_q(rng, NQ, KQ, sparse)
    w = rng.integers(0, 4, size=NQ).astype(float) if weighted else np.ones(NQ)
    sw = w if weighted else None
    lm = float(log_marginal(log_joint, sw))
    elbo = float(elbo_em(log_joint, q, sw))
    kl = float(kl_to_posterior(log_joint, q, sw))
    scale = np.sum(w * np.abs(log_joint).max(axis=1)) + 1.0

    np.testing.assert_allclose(lm, np.sum(w * special.logsumexp(log_joint, axis=1)),
                               rtol=1e-12)
    exp_elbo, exp_kl = independent_elbo_kl(log_joint, q, w)
    np.testing.assert_allclose(elbo, exp_elbo, rtol=1e-10, atol=1e-12 * scale)
    np.testing.assert_allclose(kl, exp_kl, rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(elbo + kl, lm, rtol=0, atol=1e-11 * scale)
    assert kl >= -1e-12 * scale and elbo <= lm + 1e-12 * scale

    # after an E-step (q = posterior) the bound is tight
    post = np.asarray(posterior(log_joint))
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-12)
    assert abs(float(kl_to_posterior(log_joint, post, sw))) <= 1e-11 * scale
    np.testing.assert_allclose(float(elbo_em(log_joint, post, sw)), lm, rtol=0,
                               atol=1e-11 * scale)


@pytest.fixture(scope="module")
def fitted_pair():
    X = gaussian_data(3, 1.0)
    g = gaussian_estimator("full", None, "soft", **gaussian_init(3, X, "full")).fit(X)
    x = poisson_data(4)
    p = PoissonMixtureEM(2, max_iter=MAX_ITER, tol=0.0, **poisson_init(4, x)).fit(x)
    return (g, X), (p, x)


@SETTINGS
@given(seed=seeds, sparse=st.booleans(), weighted=st.booleans())
def test_estimator_elbo_plus_kl_is_the_log_likelihood(fitted_pair, seed, sparse, weighted):
    rng = np.random.default_rng(seed)
    for est, X in fitted_pair:
        k = est.n_components
        q = random_q(rng, len(X), k, sparse)
        w = rng.integers(0, 4, size=len(X)).astype(float) if weighted else np.ones(len(X))
        sw = w if weighted else None
        log_lik = float(np.sum(w * est.score_samples(X)))
        scale = abs(log_lik) + 1.0
        elbo, kl = est.elbo_em(X, q, sample_weight=sw), est.kl_to_posterior(X, q, sample_weight=sw)
        exp_elbo, exp_kl = independent_elbo_kl(est.log_joint_matrix(X), q, w)
        np.testing.assert_allclose(elbo, exp_elbo, rtol=1e-10)
        np.testing.assert_allclose(kl, exp_kl, rtol=1e-9, atol=1e-12 * scale)
        np.testing.assert_allclose(elbo + kl, log_lik, rtol=0, atol=1e-11 * scale)
        assert kl >= 0.0 or abs(kl) <= 1e-12 * scale
        # q = predict_proba is the E-step: KL ~ 0, the ELBO equals the log-likelihood
        proba = est.predict_proba(X)
        assert abs(est.kl_to_posterior(X, proba, sample_weight=sw)) <= 1e-11 * scale
        np.testing.assert_allclose(est.elbo_em(X, proba, sample_weight=sw), log_lik, rtol=0,
                                   atol=1e-11 * scale)
