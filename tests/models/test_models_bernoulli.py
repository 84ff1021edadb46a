"""models.bernoulli_mixture is exactly em_reference's Bernoulli mixture: the same log joint at
arbitrary parameters (numpyro.distributions on one side, em_reference's hand-written density
and prior on the other), the same default prior, and the MAP-EM point is a stationary point of
the model's log density."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density

import em_reference
import models
from em_reference import BernoulliMixtureEM, BernoulliMixturePrior, BernoulliParams


def binary(seed, n=50, d=7):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.05, 0.95, size=(3, d))
    return (rng.uniform(size=(n, d)) < probs[rng.integers(3, size=n)]).astype(float)


def numpyro_log_joint(args, kwargs, values):
    return float(jax.jit(lambda v: log_density(models.bernoulli_mixture, args, kwargs,
                                               v)[0])(values))


def em_log_joint(x, params, prior=None):
    def f(p):
        ll = em_reference.bernoulli.log_likelihood(x, BernoulliParams(**p))
        return ll if prior is None else ll + prior.log_prob(p)
    return float(jax.jit(f)(params))


def random_params(rng, k, d):
    return {"weights": rng.dirichlet(np.full(k, 2.0)), "probs": rng.uniform(0.01, 0.99, (k, d))}


def test_log_joint_matches_em_reference_at_arbitrary_parameters():
    rng = np.random.default_rng(1)
    x = binary(1)
    k, d = 3, x.shape[1]
    custom = BernoulliMixturePrior(rng.uniform(0.5, 3.0, k), rng.uniform(0.5, 3.0, d),
                                   rng.uniform(0.5, 3.0, d))
    for prior in (custom, BernoulliMixturePrior.default(x, k)):
        params = random_params(rng, k, d)
        ours = numpyro_log_joint((x, k), {"prior": prior}, params)
        theirs = em_log_joint(x, params, prior.validate(d, k))
        assert abs(ours - theirs) <= 1e-10 * abs(theirs), (ours, theirs)


def test_without_prior_it_is_the_likelihood_and_one_component_has_weight_one():
    rng = np.random.default_rng(2)
    x = binary(2)
    params = random_params(rng, 2, x.shape[1])
    ours = numpyro_log_joint((x, 2), {}, params)
    assert abs(ours - em_log_joint(x, params)) <= 1e-10 * abs(ours)
    one = {"probs": rng.uniform(0.1, 0.9, (1, x.shape[1]))}
    prior = BernoulliMixturePrior.default(x, 1)
    ours = numpyro_log_joint((x, 1), {"prior": prior}, one)
    theirs = em_log_joint(x, {"weights": np.ones(1), **one}, prior.validate(x.shape[1], 1))
    assert abs(ours - theirs) <= 1e-10 * abs(theirs)


def test_prepare_args_resolves_the_same_default_prior_as_em_reference():
    x = binary(3)
    (args, kwargs) = models.bernoulli_mixture.prepare_args(x, 3, prior="default")
    est = BernoulliMixtureEM(3, prior="default", max_iter=2, random_state=0)
    with pytest.warns(Warning):
        est.fit(x)
    for name in ("weight_concentration", "probs_concentration1", "probs_concentration0"):
        np.testing.assert_allclose(np.asarray(getattr(kwargs["prior"], name)),
                                   np.asarray(getattr(est.prior_, name)), rtol=1e-12)


def test_map_em_optimum_is_a_stationary_point_of_the_model():
    """MAP-EM run to its fixed point: the model's log density (NumPyro) has zero gradient there
    on the unconstrained scale (logit probabilities; weights along the simplex)."""
    x = binary(4, n=120, d=5)
    est = BernoulliMixtureEM(2, prior="default", tol=0.0, max_iter=3000, random_state=0)
    with pytest.warns(Warning):  # tol=0: runs every iteration
        est.fit(x)
    prior = est.prior_

    def f(u):
        weights = jax.nn.softmax(jnp.append(u[0], 0.0))
        return log_density(models.bernoulli_mixture, (x, 2), {"prior": prior},
                           {"weights": weights, "probs": jax.nn.sigmoid(u[1])})[0]

    w, p = est.weights_, est.probs_
    g = jax.grad(f)((jnp.log(w[:-1] / w[-1]), jnp.log(p) - jnp.log1p(-p)))
    assert max(float(jnp.max(jnp.abs(leaf))) for leaf in g) < 1e-6 * len(x)


@pytest.mark.parametrize("x, match", [(np.full((4, 2), 0.5), "binary"),
                                      (np.zeros((4, 2, 2)), "1-D")])
def test_bad_data_is_refused(x, match):
    with pytest.raises(ValueError, match=match):
        numpyro_log_joint((x, 2), {}, {"weights": np.full(2, 0.5),
                                       "probs": np.full((2, 2), 0.5)})
