"""Bernoulli mixtures (binary data): em_reference against an oracle written here with
scipy.stats.bernoulli / scipy.stats.beta and direct loops over components and pixels, the
MAP-EM M-step against autodiff (stationary on the unconstrained scale, and a maximum), and the
objective trace against monotonicity (hypothesis)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special, stats
from sklearn.exceptions import ConvergenceWarning

from em_reference import BernoulliMixtureEM, BernoulliMixturePrior, BernoulliParams, bernoulli

N, D, K = 40, 6, 3
PROBS = np.array([[0.9, 0.8, 0.1, 0.1, 0.5, 0.0],
                  [0.1, 0.2, 0.9, 0.7, 0.5, 0.0],
                  [0.5, 0.5, 0.5, 0.9, 0.05, 0.0]])  # pixel 5 is never on


def binary_data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    z = rng.integers(K, size=n)
    return (rng.uniform(size=(n, D)) < PROBS[z]).astype(float)


INIT = dict(weights_init=[0.3, 0.3, 0.4],
            probs_init=np.clip(PROBS + [[0.05], [-0.05], [0.02]], 0.2, 0.8))


# ============================================================================ oracle (scipy)
def oracle_log_joint(x, weights, probs):
    """log pi_k + sum_d log Bernoulli(x_nd | p_kd), one scipy call per component and pixel."""
    n, d = x.shape
    out = np.empty((n, len(weights)))
    for k in range(len(weights)):
        out[:, k] = np.log(weights[k]) + sum(stats.bernoulli(probs[k, j]).logpmf(x[:, j])
                                             for j in range(d))
    return out


def oracle_em_step(x, weights, probs, sw, prior=None):
    """One textbook EM step (Bishop 9.56-9.60), loops over components; the Beta mode with a
    prior: p_kd = (S_kd + a_d - 1) / (N_k + a_d + b_d - 2)."""
    log_joint = oracle_log_joint(x, weights, probs)
    r = np.exp(log_joint - special.logsumexp(log_joint, axis=1, keepdims=True))
    k = len(weights)
    nk = np.array([np.sum(sw * r[:, j]) for j in range(k)])
    sx = np.array([np.sum((sw * r[:, j])[:, None] * x, axis=0) for j in range(k)])
    if prior is None:
        w_new, p_new = nk / nk.sum(), sx / nk[:, None]
    else:
        alpha, a, b = prior
        w_new = (nk + alpha - 1) / (nk.sum() + np.sum(alpha) - k)
        p_new = (sx + a - 1) / (nk[:, None] + a + b - 2)
    return w_new, np.clip(p_new, bernoulli.MIN_PROB, 1 - bernoulli.MIN_PROB)


def scipy_log_prior(prior, weights, probs):
    alpha, a, b = prior
    k, d = probs.shape
    lp = stats.dirichlet(np.broadcast_to(alpha, (k,)).astype(float)).logpdf(weights)
    a, b = np.broadcast_to(a, (d,)), np.broadcast_to(b, (d,))
    for j in range(k):
        for i in range(d):
            lp += stats.beta(a[i], b[i]).logpdf(probs[j, i])
    return float(lp)


HYPER = (np.array([2.0, 1.5, 3.0]), np.linspace(1.5, 3.0, D), np.linspace(2.0, 1.2, D))


# ============================================================================ densities
def test_log_joint_matches_scipy_at_arbitrary_parameters():
    rng = np.random.default_rng(1)
    x = binary_data(1)
    weights = rng.dirichlet(np.ones(K))
    probs = rng.uniform(0.02, 0.98, size=(K, D))
    expected = oracle_log_joint(x, weights, probs)
    params = BernoulliParams(weights, probs)
    got = jax.jit(bernoulli.log_joint_matrix)(x, params)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)
    # the fast kernel's form: features (1, x) times natural parameters
    fast = bernoulli.features(jnp.asarray(x)) @ bernoulli.natural_parameters(params)
    np.testing.assert_allclose(np.asarray(fast), expected, rtol=1e-12, atol=1e-12)

    est = BernoulliMixtureEM(K)
    est.weights_, est.probs_, est.n_features_in_ = weights, probs, D
    np.testing.assert_allclose(est.log_joint_matrix(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(est.score_samples(x), special.logsumexp(expected, axis=1),
                               rtol=1e-12)
    n_par = K * D + K - 1
    np.testing.assert_allclose(est.bic(x), -2 * special.logsumexp(expected, axis=1).sum()
                               + n_par * np.log(N), rtol=1e-12)


def test_prior_log_prob_matches_scipy_and_the_default_is_as_documented():
    rng = np.random.default_rng(2)
    weights, probs = rng.dirichlet(np.ones(K)), rng.uniform(0.05, 0.95, size=(K, D))
    prior = BernoulliMixturePrior(*HYPER)
    np.testing.assert_allclose(float(jax.jit(lambda p: prior.log_prob(p))(
        BernoulliParams(weights, probs))), scipy_log_prior(HYPER, weights, probs), rtol=1e-12)
    x = binary_data(2)
    w = rng.integers(0, 3, size=N).astype(float)
    default = BernoulliMixturePrior.default(x, K, w)
    mean = (w @ x + 1.0) / (w.sum() + 2.0)  # Laplace-smoothed pixel means
    np.testing.assert_allclose(default.probs_concentration1, 1.0 + mean)
    np.testing.assert_allclose(default.probs_concentration0, 2.0 - mean)
    assert float(default.weight_concentration) == 1.0


# ============================================================================ one EM step
@pytest.mark.parametrize("algorithm", ["textbook", "fast"])
@pytest.mark.parametrize("with_prior", [False, True])
def test_one_em_step_matches_the_oracle(algorithm, with_prior):
    x = binary_data(3)
    sw = np.random.default_rng(3).integers(0, 3, size=N).astype(float)
    sw[:K] = 1.0
    prior = BernoulliMixturePrior(*HYPER) if with_prior else None
    est = BernoulliMixtureEM(K, max_iter=1, tol=0.0, prior=prior, algorithm=algorithm, **INIT)
    with pytest.warns(ConvergenceWarning):
        est.fit(x, sample_weight=sw)
    w0, p0 = np.asarray(INIT["weights_init"]), INIT["probs_init"]
    w1, p1 = oracle_em_step(x, w0, p0, sw, HYPER if with_prior else None)
    np.testing.assert_allclose(est.weights_, w1, rtol=1e-12)
    np.testing.assert_allclose(est.probs_, p1, rtol=1e-12, atol=1e-15)
    lik = [np.sum(sw * special.logsumexp(oracle_log_joint(x, *p), axis=1)) for p in
           ((w0, p0), (w1, p1))]
    lp = [scipy_log_prior(HYPER, *p) if with_prior else 0.0 for p in ((w0, p0), (w1, p1))]
    np.testing.assert_allclose(est.lower_bounds_, np.add(lik, lp), rtol=1e-12)


def test_mle_probabilities_stay_inside_the_unit_interval():
    """Pixel 5 is never on: its MLE is 0, kept at MIN_PROB, so an image with that pixel on is
    improbable (log(1e-10) = -23 nats for it), not impossible (-inf)."""
    x = binary_data(4, n=200)
    est = BernoulliMixtureEM(K, random_state=0, max_iter=50).fit(x)
    np.testing.assert_array_equal(est.probs_[:, 5], bernoulli.MIN_PROB)
    assert np.all(est.probs_ >= bernoulli.MIN_PROB) and np.all(est.probs_ <= 1 - 1e-10)
    new = x[:3].copy()
    new[:, 5] = 1.0
    assert np.all(np.isfinite(est.score_samples(new)))
    drop = est.score_samples(x[:3]) - est.score_samples(new)
    assert np.all(drop > 20.0)  # about -log(MIN_PROB) = 23 nats


# ============================================================================ MAP-EM M-step
def test_map_m_step_maximises_the_expected_complete_log_joint():
    """The M-step from responsibilities q: the gradient of sum_nk q_nk log p(x_n, z=k | theta)
    + log p(theta) on the unconstrained scale (logit p, log-ratio weights: jax.grad) is zero
    at the update, and random moves from it lose."""
    x = jnp.asarray(binary_data(5))
    q = jnp.asarray(np.random.default_rng(5).dirichlet(np.ones(K), size=N))
    prior = BernoulliMixturePrior(*HYPER).validate(D, K)
    theta = bernoulli.BernoulliFamily().m_step(x, q, None, prior)

    def objective(u):
        logits, probs_logit = u
        params = BernoulliParams(jax.nn.softmax(jnp.append(logits, 0.0)),
                                 jax.nn.sigmoid(probs_logit))
        return jnp.sum(q * bernoulli.log_joint_matrix(x, params)) + prior.log_prob(params)

    w = theta.weights
    u = (jnp.log(w[:-1] / w[-1]), jnp.log(theta.probs) - jnp.log1p(-theta.probs))
    g_w, g_p = jax.grad(objective)(u)
    np.testing.assert_allclose(g_w, 0.0, atol=1e-10 * N)
    np.testing.assert_allclose(g_p, 0.0, atol=1e-10 * N)
    base = objective(u)
    rng = np.random.default_rng(6)
    for _ in range(5):
        moved = (u[0] + 1e-3 * rng.normal(size=K - 1), u[1] + 1e-3 * rng.normal(size=(K, D)))
        assert objective(moved) < base
    # the fast kernel's M-step (from the moments q^T T(x)) is the same update
    fast = bernoulli.BernoulliFamily().m_step_from_moments(q.T @ bernoulli.features(x), None,
                                                           prior)
    for a, b in zip(fast, theta):
        np.testing.assert_allclose(a, b, rtol=1e-12)


# ============================================================================ monotone objective
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("prior, algorithm", [(None, "textbook"), ("default", "fast")])
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_objective_trace_never_decreases(prior, algorithm, seed):
    x = binary_data(seed % 1000)
    est = BernoulliMixtureEM(K, prior=prior, tol=0.0, max_iter=15, algorithm=algorithm,
                             init_params="random", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        est.fit(x)
    trace = est.lower_bounds_
    assert np.all(np.isfinite(trace))
    assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[:-1]))
    assert trace[-1] > trace[0]


# ============================================================================ validation
@pytest.mark.parametrize("X, match", [(np.full((5, 2), 0.5), "binary"),
                                      (np.array([[0.0, 2.0], [1.0, 0.0]]), "binary")])
def test_non_binary_data_is_refused(X, match):
    with pytest.raises(ValueError, match=match):
        BernoulliMixtureEM(1).fit(X)


@pytest.mark.parametrize("kwargs, match", [
    ({"probs_init": np.full((2, 2), 1.0)}, "probs_init"),
    ({"probs_init": np.zeros((2, 2))}, "probs_init"),
    ({"probs_init": np.full((3, 2), 0.5)}, "probs_init"),
    ({"prior": BernoulliMixturePrior(1.0, -1.0, 1.0)}, "probs_concentration1"),
    ({"prior": BernoulliMixturePrior(1.0, 1.0, np.ones(3))}, "probs_concentration0"),
    ({"prior": "flat"}, "prior must be None, 'default' or a BernoulliMixturePrior"),
])
def test_bad_parameters_are_refused(kwargs, match):
    X = np.array([[0, 1], [1, 1], [0, 0], [1, 0]], float)
    with pytest.raises(ValueError, match=match):
        BernoulliMixtureEM(2, **kwargs).fit(X)
