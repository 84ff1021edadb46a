"""NumPyro model of the Bernoulli mixture of em_reference (Dirichlet weights, Beta pixel
probabilities), for binary data such as binarized images.

weights (K,), probs (K, D); probs[k, d] = p(x_d = 1 | z = k). The assignments are
marginalised (``MixtureSameFamily``), so every autoguide applies. The log density is written
with numpyro.distributions (em_reference.bernoulli writes it by hand); the tests prove the two
equal at arbitrary parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from em_reference.priors import BernoulliMixturePrior, resolve_prior
from models._checks import as_data, check_n_components, is_concrete


def check_binary(x):
    """x (N,) or (N, D) of 0/1 -> (N, D) floats."""
    x = as_data(x, "x")
    if is_concrete(x) and np.any((x != 0) & (x != 1)):
        raise ValueError("x must be binary (0 or 1)")
    return x


def resolve_bernoulli_prior(prior, x, n_components):
    """None, "default" (BernoulliMixturePrior.default) or a BernoulliMixturePrior, validated."""
    if isinstance(prior, str) and prior == "default" and not is_concrete(x):
        raise ValueError("prior='default' needs concrete data: resolve it before tracing "
                         "(bernoulli_mixture.prepare_args, which the fit_* routines call)")
    prior = resolve_prior(prior, BernoulliMixturePrior,
                          lambda: BernoulliMixturePrior.default(x, n_components))
    return None if prior is None else prior.validate(x.shape[1], n_components)


def _weights_site(k, sample):
    """The weights: a deterministic [1.] for K = 1 (a one-component Dirichlet is a point mass
    of density 1), else ``sample()`` (a param or a sample site)."""
    if k == 1:
        return numpyro.deterministic("weights", jnp.ones(1))
    return sample()


def bernoulli_mixture(x, n_components, prior=None):
    """Bernoulli mixture with sites ``weights`` (K,), ``probs`` (K, D) and observed ``obs``.

    x : (N, D) or (N,) of 0/1.  n_components : K >= 1.
    prior : None (``numpyro.param`` sites, SVI gives the MLE), "default" or
        em_reference.BernoulliMixturePrior: weights ~ Dirichlet(alpha),
        probs_kd ~ Beta(probs_concentration1_d, probs_concentration0_d).
    """
    x = check_binary(x)
    n, d = x.shape
    k = check_n_components(n_components, n)
    prior = resolve_bernoulli_prior(prior, x, k)
    x = jnp.asarray(x)
    if prior is None:
        weights = _weights_site(k, lambda: numpyro.param(
            "weights", jnp.full(k, 1.0 / k), constraint=constraints.simplex))
        # lazy init: the data's pixel means, moved apart by independent factors
        probs = numpyro.param("probs", lambda key: jnp.clip(
            (jnp.mean(x, 0) + 0.05) * jax.random.uniform(key, (k, d), minval=0.5, maxval=1.5),
            0.02, 0.98), constraint=constraints.unit_interval)
    else:
        alpha = jnp.broadcast_to(jnp.asarray(prior.weight_concentration), (k,))
        weights = _weights_site(k, lambda: numpyro.sample("weights", dist.Dirichlet(alpha)))
        with numpyro.plate("components", k):
            probs = numpyro.sample("probs", dist.Beta(
                jnp.asarray(prior.probs_concentration1),
                jnp.asarray(prior.probs_concentration0)).to_event(1))
    with numpyro.plate("data", n):
        numpyro.sample("obs", dist.MixtureSameFamily(dist.Categorical(probs=weights),
                                                     dist.Bernoulli(probs=probs).to_event(1)),
                       obs=x)


def _prepare_args(x, n_components, prior=None):
    """Concrete arguments for tracing: ``prior="default"`` becomes the BernoulliMixturePrior it
    stands for (the fit_* routines call this before passing x as a traced array)."""
    if isinstance(prior, str) and prior == "default" and is_concrete(x):
        bits = check_binary(x)
        prior = BernoulliMixturePrior.default(bits, check_n_components(n_components,
                                                                      bits.shape[0]))
    return (x, n_components), {"prior": prior}


bernoulli_mixture.prepare_args = _prepare_args
