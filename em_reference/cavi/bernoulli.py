"""Bernoulli components of variational Bayes (CAVI): Beta factors on the pixel probabilities.

Prior (em_reference.priors.BernoulliMixturePrior): p_kd ~ Beta(a0_d, b0_d), density
p^(a0 - 1) (1 - p)^(b0 - 1) / B(a0, b0). Given q(Z), the optimal q(p_kd) is Beta(a_kd, b_kd)
(conjugacy; Bishop PRML 9.3.3 for the model, 10.4.1 for the exponential-family update):

    a_kd = a0_d + sum_n w_n r_nk x_nd,        b_kd = b0_d + sum_n w_n r_nk (1 - x_nd)

and a sample's expected log-likelihood (no constant: a Bernoulli pmf has none) is

    E_q[log Bern(x | p_k)] = sum_d x_d E[log p_kd] + (1 - x_d) E[log(1 - p_kd)],
    E[log p] = psi(a) - psi(a + b),   E[log(1 - p)] = psi(b) - psi(a + b).

Shapes: X (N, D) of 0/1; ``BetaProbs`` concentrations (K, D).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from em_reference import config  # noqa: F401  (float64)
from em_reference.cavi import distributions as dists


class BernoulliStats(NamedTuple):
    """nk (K,) = sum_n w_n r_nk; ones (K, D) = sum_n w_n r_nk x_n (each pixel's weighted count
    of ones; its count of zeros is nk - ones)."""

    nk: jax.Array
    ones: jax.Array


class BetaProbs(NamedTuple):
    """q(p_kd) = Beta(concentration1_kd, concentration0_kd): both (K, D) (NumPyro's
    Beta(concentration1, concentration0) order: the first counts ones)."""

    concentration1: jax.Array
    concentration0: jax.Array


def statistics(X, weighted_resp):
    return BernoulliStats(jnp.sum(weighted_resp, axis=0), weighted_resp.T @ X)


def update(stats, prior):
    return BetaProbs(prior.probs_concentration1 + stats.ones,
                     prior.probs_concentration0 + (stats.nk[:, None] - stats.ones))


def expected_log_likelihood(X, q):
    """(N, K): x_n . E[log p_k] + (1 - x_n) . E[log(1 - p_k)]."""
    e_log_p, e_log_1mp = dists.beta_expected_logs(q.concentration1, q.concentration0)
    return X @ (e_log_p - e_log_1mp).T + jnp.sum(e_log_1mp, axis=1)[None, :]


def expected_log_likelihood_total(stats, q):
    """sum_n w_n sum_k r_nk E_q[log Bern(x_n | p_k)] from the statistics."""
    e_log_p, e_log_1mp = dists.beta_expected_logs(q.concentration1, q.concentration0)
    return (jnp.sum(stats.ones * e_log_p)
            + jnp.sum((stats.nk[:, None] - stats.ones) * e_log_1mp))


def kl(q, prior):
    return jnp.sum(dists.beta_kl(q.concentration1, q.concentration0,
                                 prior.probs_concentration1, prior.probs_concentration0))
