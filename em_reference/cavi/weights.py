"""The factor q(pi) of the mixture weights: a Dirichlet, or the sticks of a Dirichlet process.

``kind`` (static) is scikit-learn's weight_concentration_prior_type:

"dirichlet_distribution"   pi ~ Dirichlet(alpha0), alpha0 (K,) (the prior's
                           weight_concentration, broadcast). q(pi) = Dirichlet(alpha),
                           alpha_k = alpha0_k + N_k (Bishop PRML 10.58); concentration (K,).
"dirichlet_process"        stick-breaking (Blei & Jordan 2006): v_k ~ Beta(1, gamma),
                           pi_k = v_k prod_{j<k} (1 - v_j), gamma = the prior's (scalar)
                           weight_concentration. q(v_k) = Beta(a_k, b_k) with a_k = 1 + N_k,
                           b_k = gamma + sum_{j>k} N_j (Blei & Jordan eq. 18-19); concentration
                           (2, K) = (a, b).

Truncation (DP): every one of the K sticks is a Beta factor, the last one included, and q puts
no mass on components beyond K, whose sticks keep their prior (KL 0) - the "nested" truncation
of Kurihara, Welling & Teh (2007), which is scikit-learn's. The bound is then a bound on the
evidence of the infinite DP mixture. (Blei & Jordan's truncation sets v_K = 1 instead, a bound
on a K-component model.) The mass 1 - sum_k E[pi_k] > 0 belongs to the components beyond K;
``mean_weights`` renormalises over the K, as scikit-learn's weights_ does.
"""

from __future__ import annotations

import jax.numpy as jnp

from em_reference.cavi import distributions as dists

WEIGHT_PRIOR_TYPES = ("dirichlet_distribution", "dirichlet_process")


def prior_concentration(weight_concentration, n_components, kind):
    """The prior factor's parameters in the layout of ``update``'s result: alpha0 (K,), or
    (a0, b0) = (1, gamma) per stick as (2, K)."""
    c = jnp.broadcast_to(jnp.asarray(weight_concentration), (n_components,))
    if kind == "dirichlet_distribution":
        return c
    return jnp.stack([jnp.ones_like(c), c])


def update(nk, weight_concentration, kind):
    """q(pi) from the expected counts nk (K,) = sum_n w_n r_nk."""
    prior = prior_concentration(weight_concentration, nk.shape[0], kind)
    if kind == "dirichlet_distribution":
        return prior + nk
    # counts of the components after k: sum_{j>k} N_j
    tail = jnp.cumsum(nk[::-1])[::-1] - nk
    return prior + jnp.stack([nk, tail])


def expected_log_weights(concentration, kind):
    """E_q[log pi_k] (K,): Bishop 10.66, or E[log v_k] + sum_{j<k} E[log(1 - v_j)]."""
    if kind == "dirichlet_distribution":
        return dists.dirichlet_expected_log(concentration)
    e_log_v, e_log_1mv = dists.beta_expected_logs(concentration[0], concentration[1])
    return e_log_v + jnp.cumsum(e_log_1mv) - e_log_1mv


def kl(concentration, weight_concentration, kind):
    """KL(q(pi) || p(pi)) (the sticks' KLs summed for the DP)."""
    prior = prior_concentration(weight_concentration, concentration.shape[-1], kind)
    if kind == "dirichlet_distribution":
        return dists.dirichlet_kl(concentration, prior)
    return jnp.sum(dists.beta_kl(concentration[0], concentration[1], prior[0], prior[1]))


def mean_weights(concentration, kind):
    """E_q[pi] (K,), renormalised over the K components for the DP."""
    if kind == "dirichlet_distribution":
        return concentration / jnp.sum(concentration)
    a, b = concentration
    mean_v = a / (a + b)
    w = mean_v * jnp.concatenate([jnp.ones(1, a.dtype), jnp.cumprod(1.0 - mean_v)[:-1]])
    return w / jnp.sum(w)
