"""The amortized categorical q(c | x) of a Bernoulli mixture against the exact E-step, with a
Bernoulli-mixture log joint written here with scipy (the oracle)."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp, rel_entr, softmax

from models.amortized_mixture import (categorical_elbo, fit_amortized_categorical,
                                      mixture_gaps)

WEIGHTS = np.array([0.5, 0.3, 0.2])
PROBS = np.array([[0.9] * 8 + [0.1] * 8, [0.1] * 8 + [0.9] * 8, [0.5] * 16])


def bernoulli_log_joint(X, params):
    """log pi_k + sum_d log Bernoulli(x_nd | p_kd): (N, K), by scipy."""
    weights, probs = params
    return np.log(weights) + np.stack(
        [stats.bernoulli.logpmf(X, p).sum(1) for p in probs], axis=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    c = rng.choice(3, size=600, p=WEIGHTS)
    return (rng.uniform(size=(600, 16)) < PROBS[c]).astype(float)


def test_elbo_bounds_the_exact_log_likelihood_with_equality_at_the_posterior(data):
    L = bernoulli_log_joint(data, (WEIGHTS, PROBS))
    logits = np.random.default_rng(0).normal(size=L.shape)
    gaps = mixture_gaps(L, logits)
    np.testing.assert_allclose(gaps.log_likelihood, logsumexp(L, axis=1))
    assert np.all(gaps.elbo <= gaps.log_likelihood + 1e-12)
    # the gap is KL(q || posterior), computed here by scipy
    kl = rel_entr(softmax(logits, 1), softmax(L, 1)).sum(1)
    np.testing.assert_allclose(gaps.amortization_gap, kl, rtol=1e-9, atol=1e-12)
    # q = the exact posterior (EM's E-step): the bound is tight, point by point
    exact = mixture_gaps(L, L)
    np.testing.assert_allclose(exact.elbo, exact.log_likelihood, atol=1e-10)
    assert abs(exact.mean_gap) < 1e-10


def test_a_component_with_zero_probability_contributes_nothing():
    L = np.log(np.array([[0.2, 0.3, 0.5]]))
    logits = np.array([[0.0, 0.0, -np.inf]])
    expected = 0.5 * (np.log(0.2) - np.log(0.5)) + 0.5 * (np.log(0.3) - np.log(0.5))
    np.testing.assert_allclose(categorical_elbo(L, logits), [expected])


def test_a_fitted_encoder_closes_most_of_the_gap_and_never_beats_the_e_step(data):
    params = (WEIGHTS, PROBS)
    train, test = data[:500], data[500:]
    uniform = mixture_gaps(bernoulli_log_joint(train, params), np.zeros((500, 3))).mean_gap
    q = fit_amortized_categorical(train, bernoulli_log_joint, params, hidden=(32,),
                                  epochs=150, batch_size=50, learning_rate=3e-3)
    assert q.objective_trace[-1] > q.objective_trace[0]
    on_train, on_test = q.gaps(train, bernoulli_log_joint, params), q.gaps(
        test, bernoulli_log_joint, params)
    assert on_train.mean_gap < 0.1 * uniform
    for g in (on_train, on_test):
        assert np.all(g.amortization_gap >= -1e-10)     # a KL: never negative
    # the one-argument form (a fitted estimator's bound method) gives the same numbers
    same = q.gaps(test, lambda X: bernoulli_log_joint(X, params))
    np.testing.assert_allclose(same.amortization_gap, on_test.amortization_gap)


def test_bad_inputs_raise(data):
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        mixture_gaps(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        fit_amortized_categorical(data, lambda X: np.full((len(X), 2), np.nan))
    with pytest.raises(ValueError, match="batch_size"):
        fit_amortized_categorical(data[:10], bernoulli_log_joint, (WEIGHTS, PROBS),
                                  batch_size=20)
