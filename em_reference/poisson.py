"""Poisson mixture: log densities, the (MAP-)M-step and the fast kernel's features, by hand.

Shapes: x (N, D) non-negative integer counts (independent Poisson per dimension; (N,) is taken
as (N, 1)); weights (K,); rates (K, D).
log p(x_n | k) = sum_d [x_nd log lambda_kd - lambda_kd - log x_nd!], log x! included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from em_reference import config  # noqa: F401  (float64)
from em_reference.family import FamilyBase, nk_guard, weights_update
from em_reference.priors import PoissonMixturePrior

# a rate of exactly zero is the MLE of a component that only saw zeros; it is kept a hair above
# zero so that a later non-zero count gets a finite (very low) density instead of -inf for all
MIN_RATE = 1e-10


class PoissonParams(NamedTuple):
    """weights (K,), rates (K, D)."""

    weights: jax.Array
    rates: jax.Array


class PoissonStats(NamedTuple):
    """nk (K,) = sum_n w_n r_nk; sx (K, D) = sum_n w_n r_nk x_n."""

    nk: jax.Array
    sx: jax.Array


def log_poisson_prob(x, rates):
    """log Poisson(x_n | rates_k) summed over dimensions: (N, K). x (N, D), rates (K, D)."""
    log_factorial = jnp.sum(gammaln(x + 1.0), axis=1)
    return x @ jnp.log(rates).T - jnp.sum(rates, axis=1)[None, :] - log_factorial[:, None]


def log_joint_matrix(x, params):
    """log pi_k + log p(x_n | rates_k): (N, K)."""
    return jnp.log(params.weights)[None, :] + log_poisson_prob(x, params.rates)


def log_likelihood(x, params, sample_weight=None):
    """log p(x | params) = sum_n w_n log sum_k pi_k Poisson(x_n | rates_k), with log x!."""
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    x = x[:, None] if x.ndim == 1 else x
    params = PoissonParams(jnp.asarray(params[0]), jnp.asarray(params[1]).reshape(-1, x.shape[1]))
    per_sample = jax.scipy.special.logsumexp(log_joint_matrix(x, params), axis=1)
    if sample_weight is None:
        return jnp.sum(per_sample)
    return jnp.sum(jnp.asarray(sample_weight) * per_sample)


def rate_update(nk, sx, prior):
    """lambda_kd = S_kd / N_k (MLE) or (S_kd + a_d - 1) / (N_k + b_d) (Gamma(a, b) mode),
    kept at least MIN_RATE."""
    if prior is None:
        rates = sx / nk[:, None]
    else:
        rates = (sx + prior.rate_shape - 1.0) / (nk[:, None] + prior.rate_rate)
    return jnp.maximum(rates, MIN_RATE)


def m_step(stats: PoissonStats, prior: PoissonMixturePrior | None):
    """Closed-form (MAP-)M-step: weights by family.weights_update, rates by ``rate_update``
    (with Dirichlet(alpha) x Gamma(a, b): pi_k = (N_k + alpha_k - 1) / (N + sum(alpha) - K),
    lambda_kd = (S_kd + a_d - 1) / (N_k + b_d))."""
    nk = stats.nk + nk_guard(stats.nk.dtype)
    return PoissonParams(weights_update(stats.nk, prior), rate_update(nk, stats.sx, prior))


def features(x):
    """Sufficient-statistic features T(x) (N, D + 2): a constant 1, the counts x, and
    -sum_d log x_d! (the per-row term, whose coefficient is always 1)."""
    ones = jnp.ones((x.shape[0], 1), x.dtype)
    return jnp.concatenate([ones, x, -jnp.sum(gammaln(x + 1.0), axis=1, keepdims=True)], axis=1)


def natural_parameters(params):
    """eta (D + 2, K) with log pi_k + log Poisson(x | rates_k) = T(x) @ eta[:, k] for
    T = ``features``: eta_k = (log pi_k - sum_d lambda_kd, log lambda_k, 1)."""
    const = jnp.log(params.weights) - jnp.sum(params.rates, axis=1)
    ones = jnp.ones_like(const)
    return jnp.concatenate([const[:, None], jnp.log(params.rates), ones[:, None]], axis=1).T


def stats_from_moments(moments):
    """PoissonStats from moments (K, D + 2) = sum_n w_n r_nk T(x_n) (``features`` order); the
    last column (sum of -log x! ) is not a statistic of the M-step."""
    return PoissonStats(moments[:, 0], moments[:, 1:-1])


def n_parameters(n_components, n_features):
    """Free parameters: K * D rates + K - 1 weights."""
    return int(n_components * n_features + n_components - 1)


@dataclass(frozen=True)
class PoissonFamily(FamilyBase):
    """Poisson mixtures for em_reference.family.MixtureFamily (hashable: jit-static). The log
    joint is linear in the features [1, x, -sum_d log x_d!], so restarts share one product."""

    fixed: tuple = ()

    params_class: ClassVar[type] = PoissonParams
    prior_class: ClassVar[type] = PoissonMixturePrior

    def log_component_densities(self, x, params):
        return log_poisson_prob(x, params.rates)

    def component_m_step(self, x, weighted_resp, nk, prior):
        return {"rates": rate_update(nk, weighted_resp.T @ x, prior)}

    def features(self, x):
        return features(x)

    def feature_width(self, n_features):
        """F: 1, the D counts, -log prod_d x_d!."""
        return n_features + 2

    def natural_parameters(self, params):
        return natural_parameters(params)

    def component_m_step_from_moments(self, moments, nk, prior):
        return {"rates": rate_update(nk, moments[:, 1:-1], prior)}

    def to_unconstrained(self, params, scale):
        return PoissonParams(self._weights_to_unconstrained(params.weights),
                             jnp.log(params.rates))

    def from_unconstrained(self, u, scale):
        return PoissonParams(self._weights_from_unconstrained(u.weights), jnp.exp(u.rates))

    def n_parameters(self, n_components, n_features):
        return n_parameters(n_components, n_features)
