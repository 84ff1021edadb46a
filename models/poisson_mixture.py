"""NumPyro model of the Poisson mixture of em_reference (Dirichlet weights, Gamma rates).

weights (K,), rates (K, D); a 1-D count vector x (N,) is one feature, rates (K, 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from em_reference.priors import PoissonMixturePrior
from models._checks import (as_data, check_inside_handler, check_n_components, is_concrete,
                            resolve_prior)
from models._components import PoissonComponents


def resolve_poisson_prior(prior, x, n_components):
    """None, "default" (PoissonMixturePrior.default) or a PoissonMixturePrior, validated."""
    prior = resolve_prior(prior, x, PoissonMixturePrior, "poisson_mixture",
                          lambda: PoissonMixturePrior.default(x, n_components))
    if prior is None:
        return None
    return prior.validate(x.shape[1], n_components)


def check_counts(x):
    """x (N,) or (N, D) of non-negative integer counts -> (N, D)."""
    x = as_data(x, "x")
    if is_concrete(x) and (np.any(x < 0) or np.any(x != np.round(x))):
        raise ValueError("x must hold non-negative integer counts")
    return x


def poisson_mixture(x, n_components, prior=None):
    """Poisson mixture with sites ``weights`` (K,), ``rates`` (K, D) and observed ``obs``.

    x : (N,) or (N, D) counts.  n_components : K >= 1.
    prior : None (``numpyro.param`` sites, SVI gives the MLE), "default" or
        em_reference.PoissonMixturePrior: weights ~ Dirichlet(alpha), rate_kd ~ Gamma(a_d, b_d).
    """
    check_inside_handler("poisson_mixture")
    x = check_counts(x)
    n, d = x.shape
    k = check_n_components(n_components, n)
    prior = resolve_poisson_prior(prior, x, k)
    x = jnp.asarray(x)
    if prior is None:
        if k == 1:
            weights = numpyro.deterministic("weights", jnp.ones(1))
        else:
            weights = numpyro.param("weights", lambda key: jnp.full(k, 1.0 / k),
                                    constraint=constraints.simplex)
        # lazy init: the data mean scaled by independent factors in (0.5, 1.5)
        rates = numpyro.param("rates", lambda key: (jnp.mean(x, 0) + 0.1) * jax.random.uniform(
            key, (k, d), minval=0.5, maxval=1.5), constraint=constraints.positive)
    else:
        alpha = jnp.broadcast_to(jnp.asarray(prior.weight_concentration), (k,))
        if k == 1:
            weights = numpyro.deterministic("weights", jnp.ones(1))
        else:
            weights = numpyro.sample("weights", dist.Dirichlet(alpha))
        with numpyro.plate("components", k):
            rates = numpyro.sample("rates", dist.Gamma(jnp.asarray(prior.rate_shape),
                                                       jnp.asarray(prior.rate_rate)).to_event(1))
    with numpyro.plate("data", n):
        numpyro.sample("obs", dist.MixtureSameFamily(dist.Categorical(probs=weights),
                                                     PoissonComponents(rates)), obs=x)


def _prepare_args(x, n_components, prior=None):
    """Concrete arguments for tracing: ``prior="default"`` becomes the PoissonMixturePrior it
    stands for (the fit_* routines call this before passing x as a traced array)."""
    if isinstance(prior, str) and prior == "default" and is_concrete(x):
        counts = check_counts(x)
        prior = PoissonMixturePrior.default(counts, check_n_components(n_components,
                                                                       counts.shape[0]))
    return (x, n_components), {"prior": prior}


poisson_mixture.prepare_args = _prepare_args
