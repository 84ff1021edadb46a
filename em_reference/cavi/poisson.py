"""Poisson components of variational Bayes (CAVI): Gamma factors on the rates.

Prior (em_reference.priors.PoissonMixturePrior): lambda_kd ~ Gamma(shape a0_d, rate b0_d).
Given q(Z), the optimal q(lambda_kd) is Gamma(a_kd, b_kd) (conjugacy):

    a_kd = a0_d + sum_n w_n r_nk x_nd,        b_kd = b0_d + N_k

and a sample's expected log-likelihood (all constants, log x! included) is

    E_q[log Poisson(x | lambda_k)] = sum_d x_d (psi(a_kd) - log b_kd) - a_kd / b_kd - log x_d!

Shapes: X (N, D) counts; ``GammaRates`` shape and rate (K, D).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from em_reference import config  # noqa: F401  (float64)
from em_reference.cavi import distributions as dists


class PoissonStats(NamedTuple):
    """nk (K,) = sum_n w_n r_nk; counts (K, D) = sum_n w_n r_nk x_n;
    log_factorials (K,) = sum_n w_n r_nk sum_d log x_nd!."""

    nk: jax.Array
    counts: jax.Array
    log_factorials: jax.Array


class GammaRates(NamedTuple):
    """q(lambda_kd) = Gamma(shape_kd, rate_kd): both (K, D)."""

    shape: jax.Array
    rate: jax.Array


def statistics(X, weighted_resp):
    return PoissonStats(jnp.sum(weighted_resp, axis=0), weighted_resp.T @ X,
                        weighted_resp.T @ jnp.sum(gammaln(X + 1.0), axis=1))


def update(stats, prior):
    return GammaRates(prior.rate_shape + stats.counts, prior.rate_rate + stats.nk[:, None])


def expected_log_likelihood(X, q):
    """(N, K): x_n . E[log lambda_k] - sum_d E[lambda_kd] - sum_d log x_nd!."""
    e_log = dists.gamma_expected_log(q.shape, q.rate)
    e_rate = q.shape / q.rate
    return (X @ e_log.T - jnp.sum(e_rate, axis=1)[None, :]
            - jnp.sum(gammaln(X + 1.0), axis=1)[:, None])


def expected_log_likelihood_total(stats, q):
    """sum_n w_n sum_k r_nk E_q[log Poisson(x_n | lambda_k)] from the statistics."""
    e_log = dists.gamma_expected_log(q.shape, q.rate)
    return (jnp.sum(stats.counts * e_log) - jnp.sum(stats.nk[:, None] * q.shape / q.rate)
            - jnp.sum(stats.log_factorials))


def kl(q, prior):
    return jnp.sum(dists.gamma_kl(q.shape, q.rate, prior.rate_shape, prior.rate_rate))
