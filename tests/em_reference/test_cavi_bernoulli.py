"""BernoulliMixtureCAVI (Beta pixel probabilities) against oracles written differently: the
Beta-Bernoulli normalisers (scipy's betaln) at the update, Monte Carlo over q with scipy's
Beta at arbitrary factors, the exact evidence (closed form for one component, every
assignment enumerated for two), the predictive as a ratio of evidences; and its properties:
the ELBO never decreases (hypothesis), each update maximises the ELBO in its block (autodiff),
frequency weights are duplicated rows, bad input is refused."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import betaln

from em_reference import BernoulliMixtureCAVI
from em_reference.cavi import bernoulli, families, loop
from em_reference.cavi.weights import WEIGHT_PRIOR_TYPES
from em_reference.priors import BernoulliMixturePrior, PoissonMixturePrior
from models import evidence_exact as exact

FAMILY = families.BernoulliCAVIFamily()


def _images(rng, n, d=4, k=2, sharp=0.85):
    """(N, D) 0/1 rows from K random prototypes, each pixel kept with probability sharp."""
    protos = rng.integers(0, 2, (k, d))
    keep = rng.random((n, d)) < sharp
    z = rng.integers(0, k, n)
    return np.where(keep, protos[z], 1 - protos[z]).astype(float)


def _prior(d, alpha=0.9):
    return BernoulliMixturePrior(alpha, np.linspace(0.6, 1.8, d), np.linspace(1.4, 0.5, d))


def _quiet_fit(est, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, **kw)


def _entropy(resp):
    return -np.sum(resp * np.log(resp))


# ---------------------------------------------------------------- the bound, by other means
@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
def test_elbo_after_the_update_is_the_conjugate_normaliser_form(kind):
    """At q(pi, p) = M-step(r): L = H(r) + log int p(pi) prod pi^N_k + sum_kd log B(a0 + S_kd,
    b0 + N_k - S_kd) - log B(a0, b0), with soft counts (scipy's betaln)."""
    rng = np.random.default_rng(0)
    X = _images(rng, 20, d=3, k=3)
    resp = rng.dirichlet(np.full(3, 0.7), 20)
    prior = _prior(3).validate(3, 3)
    q = loop.m_step(FAMILY.statistics(X, resp), prior, FAMILY, kind)
    ours = float(loop.elbo(X, np.ones(20), resp, q, prior, FAMILY, kind))
    nk, ones = resp.sum(0), resp.T @ X
    if kind == "dirichlet_distribution":
        weights = (math.lgamma(2.7) - math.lgamma(2.7 + nk.sum())
                   + np.sum([math.lgamma(0.9 + n) - math.lgamma(0.9) for n in nk]))
    else:  # the sticks: Beta(1 + N_k, gamma + sum_{j>k} N_j) against Beta(1, gamma)
        tail = nk[::-1].cumsum()[::-1] - nk
        weights = np.sum(betaln(1 + nk, 0.9 + tail) - betaln(1, 0.9))
    a0, b0 = np.asarray(prior.probs_concentration1), np.asarray(prior.probs_concentration0)
    pixels = np.sum(betaln(a0 + ones, b0 + nk[:, None] - ones) - betaln(a0, b0))
    assert ours == pytest.approx(_entropy(resp) + weights + pixels, abs=1e-9)


def test_elbo_matches_monte_carlo_at_arbitrary_factors():
    """Off the update, L = E_q[sum_nk r_nk (log pi_k + log Bern(x_n | p_k))] + H(r)
    - E_q[log q(pi, p) - log p(pi, p)], by sampling q with scipy."""
    rng = np.random.default_rng(1)
    n, d, k, s = 15, 3, 2, 200_000
    X = _images(rng, n, d, k)
    resp = rng.dirichlet(np.ones(k), n)
    prior = _prior(d).validate(d, k)
    q = loop.Variational(jnp.asarray([2.5, 4.0]), bernoulli.BetaProbs(
        jnp.asarray(rng.uniform(0.5, 5.0, (k, d))), jnp.asarray(rng.uniform(0.5, 5.0, (k, d)))))
    ours = float(loop.elbo(X, np.ones(n), resp, q, prior, FAMILY, "dirichlet_distribution"))
    a, b = (np.asarray(c) for c in q.components)
    pi = rng.dirichlet(np.asarray(q.weights), s)
    p = rng.beta(a, b, (s, k, d))
    log_lik = (np.einsum("nd,skd->snk", X, np.log(p))
               + np.einsum("nd,skd->snk", 1 - X, np.log1p(-p)))
    log_ratio = (stats.dirichlet(np.asarray(q.weights)).logpdf(pi.T)
                 - stats.dirichlet(np.full(k, 0.9)).logpdf(pi.T)
                 + np.sum(stats.beta(a, b).logpdf(p) - stats.beta(
                     np.asarray(prior.probs_concentration1),
                     np.asarray(prior.probs_concentration0)).logpdf(p), axis=(1, 2)))
    f = np.sum(resp * (np.log(pi)[:, None, :] + log_lik), axis=(1, 2)) - log_ratio
    mc, se = f.mean() + _entropy(resp), f.std() / math.sqrt(s)
    assert abs(ours - mc) < 4 * se, (ours, mc, se)


def test_one_component_elbo_is_the_exact_evidence():
    """K = 1: q(p) of the conjugate update is the exact posterior, so the bound is tight."""
    X = _images(np.random.default_rng(2), 30, d=5)
    prior = _prior(5)
    fit = _quiet_fit(BernoulliMixtureCAVI(1, prior=prior, tol=0.0, max_iter=2), X)
    assert fit.lower_bound_ == pytest.approx(exact.bernoulli_log_marginal(X, prior), abs=1e-9)


def test_elbo_bounds_the_enumerated_evidence():
    """K = 2, N = 12: below log p(X) summed over all 2^12 assignments, and within about
    log 2! plus the mean-field gap of it."""
    X = _images(np.random.default_rng(3), 12, d=4)
    prior = _prior(4, alpha=1.0)
    evidence = exact.mixture_log_evidence(X, 2, prior)
    fit = BernoulliMixtureCAVI(2, prior=prior, n_init=4, tol=1e-10, max_iter=1000,
                               random_state=0).fit(X)
    assert evidence - 3.0 < fit.lower_bound_ <= evidence


def test_one_component_predictive_is_the_ratio_of_evidences():
    """score_samples(x) = log p(X, x) - log p(X) when q(p) is the exact posterior."""
    rng = np.random.default_rng(4)
    X, new = _images(rng, 20, d=4), _images(rng, 5, d=4)
    prior = _prior(4)
    fit = _quiet_fit(BernoulliMixtureCAVI(1, prior=prior, tol=0.0, max_iter=2), X)
    ratio = [exact.bernoulli_log_marginal(np.vstack([X, x]), prior)
             - exact.bernoulli_log_marginal(X, prior) for x in new]
    np.testing.assert_allclose(fit.score_samples(new), ratio, atol=1e-10)


# ---------------------------------------------------------------- coordinate ascent
@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), sharp=st.floats(0.5, 0.99), a0=st.floats(0.05, 10.0),
       b0=st.floats(0.05, 10.0), alpha=st.floats(0.05, 5.0))
def test_elbo_never_decreases(kind, seed, sharp, a0, b0, alpha):
    X = _images(np.random.default_rng(seed), 24, d=5, k=3, sharp=sharp)
    fit = BernoulliMixtureCAVI(3, prior=BernoulliMixturePrior(alpha, a0, b0), tol=0.0,
                               max_iter=25, init_params="random", random_state=seed,
                               weight_concentration_prior_type=kind)
    trace = _quiet_fit(fit, X).lower_bounds_
    assert len(trace) == 26 and np.all(np.isfinite(trace))
    assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:])), np.diff(trace).min()


def _check_block_maximum(objective, blocks, rng):
    """Gradient ~ 0 in every block, and small random moves of each block lower the objective."""
    value = float(objective(blocks))
    grads = jax.grad(objective)(blocks)
    for name, x in blocks.items():
        g, x = np.asarray(grads[name]), np.asarray(x)
        assert np.abs(g).max() < 1e-6 * abs(value) / max(1.0, np.abs(x).max()), name
        for _ in range(3):
            step = rng.normal(size=x.shape) * 1e-3 * np.maximum(np.abs(x), 1e-2)
            assert float(objective(dict(blocks, **{name: jnp.asarray(x + step)}))) < value, name


@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
def test_m_step_maximises_the_elbo_in_q_theta(kind):
    rng = np.random.default_rng(5)
    X = jnp.asarray(_images(rng, 24, d=3, k=3))
    prior = _prior(3).validate(3, 3)
    resp = jnp.asarray(rng.dirichlet(np.ones(3), 24))
    w = jnp.asarray(rng.integers(1, 4, 24).astype(float))
    q = loop.m_step(FAMILY.statistics(X, resp * w[:, None]), prior, FAMILY, kind)

    def objective(blocks):
        return loop.elbo(X, w, resp, loop.Variational(blocks["weights"], bernoulli.BetaProbs(
            blocks["concentration1"], blocks["concentration0"])), prior, FAMILY, kind)

    _check_block_maximum(objective, {"weights": q.weights,
                                     "concentration1": q.components.concentration1,
                                     "concentration0": q.components.concentration0}, rng)


def test_e_step_maximises_the_elbo_in_q_z():
    rng = np.random.default_rng(6)
    X = jnp.asarray(_images(rng, 24, d=3, k=3))
    prior = _prior(3).validate(3, 3)
    kind = "dirichlet_distribution"
    q = loop.Variational(jnp.asarray([1.5, 3.0, 2.0]), bernoulli.BetaProbs(
        jnp.asarray(rng.uniform(0.5, 4.0, (3, 3))), jnp.asarray(rng.uniform(0.5, 4.0, (3, 3)))))
    logits = loop.log_responsibilities(X, q, FAMILY, kind)

    def objective(blocks):
        resp = jax.nn.softmax(blocks["logits"], axis=1)
        return loop.elbo(X, jnp.ones(24), resp, q, prior, FAMILY, kind)

    _check_block_maximum(objective, {"logits": logits}, rng)


# ---------------------------------------------------------------- the estimator
def test_frequency_weights_are_duplicated_rows():
    rng = np.random.default_rng(7)
    X = _images(rng, 30, d=6, k=2)
    counts = rng.integers(0, 4, 30)
    prior = _prior(6)
    kw = dict(prior=prior, tol=1e-12, max_iter=2000, init_params="random", random_state=0)
    weighted = BernoulliMixtureCAVI(2, **kw).fit(X, sample_weight=counts)
    assert weighted.elbo_vi(X, sample_weight=counts) == pytest.approx(
        weighted.elbo_vi(np.repeat(X, counts, 0)), rel=1e-11)


def test_recovers_prototypes_and_predicts():
    rng = np.random.default_rng(8)
    protos = np.array([[0.9] * 6 + [0.1] * 6, [0.1] * 6 + [0.9] * 6])
    z = rng.integers(0, 2, 600)
    X = (rng.random((600, 12)) < protos[z]).astype(float)
    fit = BernoulliMixtureCAVI(2, random_state=0, max_iter=500, tol=1e-10).fit(X)
    assert fit.converged_ and fit.probs_.shape == (2, 12)
    order = np.argsort(fit.probs_[:, 0])[::-1]
    np.testing.assert_allclose(fit.probs_[order], protos, atol=0.05)
    np.testing.assert_allclose(fit.weights_[order], np.bincount(z) / 600, atol=0.02)
    np.testing.assert_allclose(fit.probs_, fit.probs_concentration1_ / (
        fit.probs_concentration1_ + fit.probs_concentration0_))
    resp = fit.predict_proba(X)
    np.testing.assert_allclose(resp.sum(1), 1.0)
    np.testing.assert_array_equal(fit.predict(X), resp.argmax(1))
    assert fit.elbo_vi(X) >= fit.lower_bound_ - 1e-9


@pytest.mark.parametrize("kwargs,X,match", [
    (dict(), np.array([[0.0, 1.0], [1.0, 0.5], [1.0, 1.0]]), "binary"),
    (dict(), np.array([[0.0, 2.0], [1.0, 0.0], [1.0, 1.0]]), "binary"),
    (dict(prior=None), None, "needs a prior"),
    (dict(prior=PoissonMixturePrior(1.0, 1.0, 1.0)), None, "BernoulliMixturePrior"),
    (dict(prior=BernoulliMixturePrior(1.0, -1.0, 1.0)), None, "probs_concentration1"),
])
def test_bad_input_is_refused(kwargs, X, match):
    X = np.eye(4)[[0, 1, 2, 3, 0, 1]] if X is None else X
    with pytest.raises(ValueError, match=match):
        BernoulliMixtureCAVI(2, **kwargs).fit(X)
