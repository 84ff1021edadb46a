"""Poisson mixture: log densities, sufficient statistics and the (MAP-)EM M-step, by hand.

Shapes: x (N, D) non-negative integer counts (independent Poisson per dimension; (N,) is taken
as (N, 1)); weights (K,); rates (K, D).
log p(x_n | k) = sum_d [x_nd log lambda_kd - lambda_kd - log x_nd!], log x! included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from em_reference import config  # noqa: F401  (float64)
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


@dataclass(frozen=True)
class PoissonFamily:
    """What the generic EM loop needs to know about Poisson mixtures (hashable: jit-static)."""

    fixed: tuple = ()

    def log_joint_matrix(self, x, params):
        return log_joint_matrix(x, params)

    def sufficient_stats(self, x, weighted_resp):
        return PoissonStats(jnp.sum(weighted_resp, axis=0), weighted_resp.T @ x)

    # the EM loop's interface: prepare once per E-step, then block by block. The log joint is
    # linear in the features [1, x, -sum_d log x_d!], so restarts share one product per chunk
    def linear_log_joint(self, dtype):
        """True: ``block_log_joint(feats, prepared)`` is ``feats @ prepared`` (natural
        parameters (D + 2, K)) and the stats are ``stats_from_moments(R^T feats)``."""
        return True

    def prepare(self, params):
        return natural_parameters(params)

    def block_features(self, x):
        """T(x) (C, D + 2) for a block of counts x (C, D): ``features``."""
        return features(x)

    def block_log_joint(self, feats, eta):
        return feats @ eta

    def stats_from_moments(self, moments):
        """PoissonStats from moments (K, D + 2) = R^T T(x)."""
        return stats_from_moments(moments)

    def feature_width(self, n_features):
        """F, the number of features per row: 1, the D counts, -log prod_d x_d!."""
        return n_features + 2

    def log_prior(self, params, prior):
        return prior.log_prob(params)

    def m_step(self, stats, old, prior):
        new = m_step(stats, prior)
        if old is None:  # nothing to hold fixed (the initial M-step)
            return new
        return PoissonParams(*(getattr(old, name) if name in self.fixed else getattr(new, name)
                               for name in PoissonParams._fields))


def m_step(stats: PoissonStats, prior: PoissonMixturePrior | None):
    """Closed-form (MAP-)M-step.

    MLE: pi_k = N_k / N, lambda_kd = S_kd / N_k. With Dirichlet(alpha) x Gamma(a, b):
    pi_k = (N_k + alpha_k - 1) / (N + sum(alpha) - K), lambda_kd = (S_kd + a_d - 1) / (N_k + b_d).
    """
    eps = 10.0 * jnp.finfo(stats.nk.dtype).eps
    nk = stats.nk + eps
    if prior is None:
        weights = nk / jnp.sum(nk)
        rates = stats.sx / nk[:, None]
    else:
        alpha = jnp.broadcast_to(prior.weight_concentration, nk.shape)
        numer = jnp.maximum(stats.nk + alpha - 1.0, eps)
        weights = numer / jnp.sum(numer)
        rates = (stats.sx + prior.rate_shape - 1.0) / (nk[:, None] + prior.rate_rate)
    return PoissonParams(weights, jnp.maximum(rates, MIN_RATE))


def n_parameters(n_components, n_features):
    """Free parameters: K * D rates + K - 1 weights."""
    return int(n_components * n_features + n_components - 1)
