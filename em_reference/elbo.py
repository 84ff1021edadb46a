"""The ELBO view of EM (Bishop, PRML sec. 9.4): log p(X | theta) = elbo_em(q, theta) + KL.

Every function takes the log joint matrix ``log_joint`` (N, K), entry [n, k] =
log p(x_n, z_n = k | theta) = log pi_k + log p(x_n | theta_k) (an estimator's
``log_joint_matrix(X)`` gives it), and responsibilities q (N, K) with rows on the simplex.
sample_weight (N,) are frequency weights (default 1). All results are sums over samples.
"""

from functools import partial

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp, xlogy

from em_reference import config  # noqa: F401  (float64)


def _weights(log_joint, sample_weight):
    if sample_weight is None:
        return jnp.ones(log_joint.shape[0], dtype=log_joint.dtype)
    return jnp.asarray(sample_weight, dtype=log_joint.dtype)


def elbo_em(log_joint, q, sample_weight=None):
    """E_q[log p(X, Z | theta)] + H(q): EM's lower bound on log p(X | theta)."""
    w = _weights(log_joint, sample_weight)
    # xlogy: a zero responsibility contributes nothing, even where log_joint is -inf
    expected = jnp.sum(jnp.where(q > 0, q * log_joint, 0.0), axis=1)
    entropy = -jnp.sum(xlogy(q, q), axis=1)
    return jnp.sum(w * (expected + entropy))


def kl_to_posterior(log_joint, q, sample_weight=None):
    """KL(q || p(Z | X, theta)) = sum_n sum_k q_nk (log q_nk - log p(z_n = k | x_n, theta))."""
    w = _weights(log_joint, sample_weight)
    log_post = log_joint - logsumexp(log_joint, axis=1, keepdims=True)
    kl = jnp.sum(jnp.where(q > 0, xlogy(q, q) - q * log_post, 0.0), axis=1)
    return jnp.sum(w * kl)


def log_marginal(log_joint, sample_weight=None):
    """log p(X | theta) = sum_n log sum_k p(x_n, z_n = k | theta)."""
    w = _weights(log_joint, sample_weight)
    return jnp.sum(w * logsumexp(log_joint, axis=1))


def posterior_responsibilities(log_joint):
    """p(z_n = k | x_n, theta): the E-step's q, which makes the KL zero. (N, K)."""
    return jnp.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


def em_decomposition(X, sample_weight, params, family, n_steps):
    """PRML fig. 9.14 as numbers: n_steps iterations of plain EM (no prior, no regulariser)
    from ``params`` = theta_0, each split into what its M-step and its E-step gain.

    Iteration t: the E-step sets q_t = p(Z | X, theta_t), so ELBO(q_t, theta_t) = log p(X |
    theta_t) (the KL is zero); the M-step raises the ELBO to ELBO(q_t, theta_t+1); the KL
    KL(q_t || p(Z | X, theta_t+1)) opened by moving theta is what the next E-step closes:
    log p(X | theta_t+1) = ELBO(q_t, theta_t+1) + KL. X (N, D), sample_weight (N,).

    Returns {"log_likelihood": (n_steps + 1,) log p(X | theta_t), "elbo": (n_steps,)
    ELBO(q_t, theta_t+1), "kl": (n_steps,) that KL}, as Python floats.
    """
    family = family.unregularised()
    X = jnp.asarray(X)
    w = jnp.asarray(sample_weight, dtype=X.dtype)
    log_lik, elbo, kl = [], [], []
    for _ in range(n_steps):
        log_lik_t, params, elbo_t, kl_t = _decomposition_step(X, w, params, family)
        log_lik.append(log_lik_t)
        elbo.append(elbo_t)
        kl.append(kl_t)
    log_lik.append(log_marginal(family.log_joint(X, params), w))
    as_floats = lambda values: [float(v) for v in jax.device_get(values)]  # noqa: E731
    return {"log_likelihood": as_floats(log_lik), "elbo": as_floats(elbo), "kl": as_floats(kl)}


@partial(jax.jit, static_argnames="family")
def _decomposition_step(X, w, params, family):
    """One iteration of em_decomposition: (log p(X | theta_t), theta_t+1, ELBO(q_t, theta_t+1),
    KL(q_t || p(Z | X, theta_t+1))). One compiled program per data shape and family (op by op,
    every small array operation of a step was dispatched, and compiled, on its own)."""
    from em_reference.textbook import m_step

    log_joint = family.log_joint(X, params)
    q = posterior_responsibilities(log_joint)                        # E-step: q_t
    new_params = m_step(X, q * w[:, None], params, family, None)     # M-step: theta_t+1
    new_log_joint = family.log_joint(X, new_params)
    return (log_marginal(log_joint, w), new_params, elbo_em(new_log_joint, q, w),
            kl_to_posterior(new_log_joint, q, w))
