"""Per-point evidence, IWAE and the gap decomposition, checked on a 1-D linear-Gaussian latent
model where everything is known in closed form:

    z ~ N(0, 1),  x | z ~ N(a z + b, s^2)   =>   x ~ N(b, a^2 + s^2),
    z | x ~ N(m(x), v),  v = 1 / (1 + a^2 / s^2),  m(x) = v a (x - b) / s^2,

with a linear 'encoder' q(z | x) = N(c x + d, e^2) whose parameters are param sites, so that
its amortization gap KL(q(z | x) || p(z | x)) is a closed form too."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from scipy import stats
from scipy.special import logsumexp

import models
from models.local_evidence import local_structure

# one worker computes this module's shared fits (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_local_evidence")

A, B, S = 1.5, 0.5, 0.7
V = 1.0 / (1.0 + A ** 2 / S ** 2)
EXACT_Q = {"c": V * A / S ** 2, "d": -V * A * B / S ** 2, "e": np.sqrt(V)}
WRONG_Q = {"c": 0.3, "d": 0.4, "e": 0.9}     # a poor shared encoder
PRIOR_Q = {"c": 0.0, "d": 0.0, "e": 1.0}     # the prior as proposal


def lg_model(x):
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(A * z + B, S), obs=numpyro.subsample(x, event_dim=0))


def lg_guide(x):
    c, d = numpyro.param("c", 0.0), numpyro.param("d", 0.0)
    e = numpyro.param("e", 1.0, constraint=constraints.positive)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Normal(c * numpyro.subsample(x, event_dim=0) + d, e))


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(3).normal(B, np.sqrt(A ** 2 + S ** 2), size=40)


def exact_log_px(x):
    return stats.norm(B, np.sqrt(A **2 + S ** 2)).logpdf(x)


def kl_normal(m1, s1, m2, s2):
    return np.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5


def hand_iwae(x, q, k, repeats, rng):
    """IWAE-k per point by hand (numpy/scipy): (repeats, N) estimates."""
    m, s = q["c"] * x + q["d"], q["e"]
    z = rng.normal(m, s, size=(repeats, k, len(x)))
    log_w = (stats.norm(A * z + B, S).logpdf(x) + stats.norm(0, 1).logpdf(z)
             - stats.norm(m, s).logpdf(z))
    return logsumexp(log_w, axis=1) - np.log(k)


def test_exact_posterior_gives_the_exact_evidence_with_no_noise(x):
    ev = models.evidence_per_point(lg_model, lg_guide, EXACT_Q, x, num_particles=50)
    np.testing.assert_allclose(ev.elbo.values, exact_log_px(x), atol=1e-10)
    np.testing.assert_allclose(ev.iwae.values, exact_log_px(x), atol=1e-10)
    assert ev.elbo.se.max() < 1e-8 and ev.iwae.se.max() < 1e-8


def test_iwae_converges_to_the_exact_log_marginal(x):
    ev = models.evidence_per_point(lg_model, lg_guide, PRIOR_Q, x, num_particles=20000)
    err = ev.iwae.values - exact_log_px(x)
    # the bias of IWAE-k is O(1/k); per point within 4 delta-method SEs (+ that bias)
    assert np.all(np.abs(err) < 4 * ev.iwae.se + 1e-3), err
    assert abs(ev.iwae.mean - exact_log_px(x).mean()) < 4 * ev.iwae.se_mean + 1e-3


def test_iwae_increases_with_k_and_stays_below_the_evidence(x):
    truth = exact_log_px(x).mean()
    means, ses = [], []
    for k in (2, 8, 64, 512):
        iw = models.iwae_per_point(lg_model, lg_guide, WRONG_Q, x, num_particles=k, repeats=8,
                                   seed=k)
        means.append(iw.mean)
        ses.append(iw.se_mean)
    for (m0, s0), (m1, s1) in zip(zip(means, ses), zip(means[1:], ses[1:])):
        assert m1 > m0 - 3 * np.hypot(s0, s1), means
    assert means[-1] - means[0] > 5 * np.hypot(ses[0], ses[-1])   # a real increase
    assert all(m <= truth + 3 * s for m, s in zip(means, ses))
    elbo = models.elbo_per_point(lg_model, lg_guide, WRONG_Q, x, num_particles=2000)
    assert elbo.mean < means[0]


@pytest.mark.parametrize("k", [4, 32])
def test_iwae_matches_a_hand_written_log_sum_exp_estimator(x, k):
    ours = models.iwae_per_point(lg_model, lg_guide, WRONG_Q, x, num_particles=k, repeats=40)
    hand = hand_iwae(x, WRONG_Q, k, 400, np.random.default_rng(k))
    hand_mean, hand_se = hand.mean(0), hand.std(0, ddof=1) / np.sqrt(len(hand))
    # same expectation per point: within 4.5 combined SEs (80 comparisons in all)
    z = (ours.values - hand_mean) / np.hypot(ours.se, hand_se)
    assert np.all(np.abs(z) < 4.5), z
    # and the repeats' spread matches the hand estimator's sd per estimate (per point these
    # are noisy: 40 draws of a skewed estimator; their median ratio is not)
    ratio = ours.se * np.sqrt(40) / hand.std(0, ddof=1)
    assert 0.8 < np.median(ratio) < 1.25, ratio


def test_delta_method_se_agrees_with_independent_repeats(x):
    single = models.iwae_per_point(lg_model, lg_guide, WRONG_Q, x, num_particles=256)
    repeated = models.iwae_per_point(lg_model, lg_guide, WRONG_Q, x, num_particles=256,
                                     repeats=30)
    # repeated.se is the SE of a mean of 30 estimates; one estimate's SE is sqrt(30) times it
    ratio = single.se / (repeated.se * np.sqrt(30))
    assert 0.6 < np.median(ratio) < 1.6, ratio


def test_rate_plus_distortion_is_minus_the_elbo_and_matches_closed_forms(x):
    ev = models.evidence_per_point(lg_model, lg_guide, WRONG_Q, x, num_particles=4000)
    np.testing.assert_allclose(ev.elbo.values, -(ev.rate.values + ev.distortion.values),
                               atol=1e-9)
    m, e = WRONG_Q["c"] * x + WRONG_Q["d"], WRONG_Q["e"]
    rate = kl_normal(m, e, 0.0, 1.0)
    distortion = 0.5 * np.log(2 * np.pi * S ** 2) + ((x - A * m - B) ** 2 + A ** 2 * e ** 2) / (
        2 * S ** 2)
    assert np.all(np.abs(ev.rate.values - rate) < 5 * ev.rate.se)
    assert np.all(np.abs(ev.distortion.values - distortion) < 5 * ev.distortion.se)


def test_gap_decomposition_adds_up_and_matches_the_closed_form(x):
    gaps = models.inference_gaps(lg_model, lg_guide, WRONG_Q, x, num_particles=4000,
                                 elbo_particles=4000, local_steps=400, local_learning_rate=0.05,
                                 local_particles=16)
    np.testing.assert_allclose(gaps.inference_gap.values,
                               gaps.approximation_gap.values + gaps.amortization_gap.values,
                               atol=1e-10)
    assert np.isclose(gaps.inference_gap.mean,
                      gaps.approximation_gap.mean + gaps.amortization_gap.mean)
    # the family contains the exact posterior: q* finds it, the approximation gap vanishes
    m = WRONG_Q["c"] * x + WRONG_Q["d"]
    post_m = V * A * (x - B) / S ** 2
    np.testing.assert_allclose(gaps.local.loc["z"], post_m, atol=0.03)
    np.testing.assert_allclose(gaps.local.scale["z"], np.sqrt(V), rtol=0.05)
    assert abs(gaps.approximation_gap.mean) < 4 * gaps.approximation_gap.se_mean + 1e-3
    # the amortization gap is KL(q_amortized || posterior), per point
    kl = kl_normal(m, WRONG_Q["e"], post_m, np.sqrt(V))
    assert np.all(np.abs(gaps.amortization_gap.values - kl)
                  < 5 * gaps.amortization_gap.se + 2e-3)
    # q* is never worse than the amortized q, up to MC error
    assert np.all(gaps.amortization_gap.values > -3 * gaps.amortization_gap.se)
    assert np.all(np.abs(gaps.log_px.values - exact_log_px(x)) < 4 * gaps.log_px.se + 1e-3)


def test_active_units_counts_dimensions_that_follow_the_data():
    x2 = np.random.default_rng(0).normal(size=(50, 2))

    def guide(x):
        with numpyro.plate("data", x.shape[0]):
            xs = numpyro.subsample(x, event_dim=1)
            loc = np.array([1.0, 0.0]) * xs[:, :1] + np.array([0.0, 0.05]) * xs[:, 1:] * 0.1
            numpyro.sample("z", dist.Normal(loc, 1.0).to_event(1))

    n_active, var = models.active_units(guide, {}, x2)
    assert n_active == 1
    np.testing.assert_allclose(var, [x2[:, 0].var(ddof=1), (0.005 * x2[:, 1]).var(ddof=1)])


def test_structure_errors_name_the_problem(x):
    def global_latent(x):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def global_guide(x):
        numpyro.sample("mu", dist.Normal(numpyro.param("m", 0.0), 1.0))

    with pytest.raises(ValueError, match="outside the plate 'data'"):
        local_structure(global_latent, global_guide, (x,), {})
    with pytest.raises(ValueError, match="no plate named 'points'"):
        local_structure(lg_model, lg_guide, (x,), {}, plate="points")

    def empty_guide(x):
        pass

    with pytest.raises(ValueError, match="guide proposes"):
        models.evidence_per_point(lg_model, empty_guide, {}, x, num_particles=4)
    with pytest.raises(ValueError, match="num_particles"):
        models.evidence_per_point(lg_model, lg_guide, WRONG_Q, x, num_particles=1)


def test_chunked_and_blocked_evaluation_agrees_with_one_block(x):
    """Points in chunks and particles in blocks stream the same statistics (same draws per
    chunk are not reproducible across plans, so compare exactly on the exact posterior and in
    expectation elsewhere)."""
    small = models.evidence_per_point(lg_model, lg_guide, WRONG_Q, x, num_particles=3000,
                                      chunk_size=7)
    big = models.evidence_per_point(lg_model, lg_guide, WRONG_Q, x, num_particles=3000)
    z = (small.elbo.values - big.elbo.values) / np.hypot(small.elbo.se, big.elbo.se)
    assert np.all(np.abs(z) < 4.5)
    assert jax.numpy.allclose(
        models.evidence_per_point(lg_model, lg_guide, EXACT_Q, x, num_particles=10,
                                  chunk_size=3).elbo.values, exact_log_px(x), atol=1e-10)
