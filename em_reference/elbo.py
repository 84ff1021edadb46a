"""The ELBO view of EM (Bishop, PRML sec. 9.4): log p(X | theta) = elbo_em(q, theta) + KL.

Every function takes the log joint matrix ``log_joint`` (N, K), entry [n, k] =
log p(x_n, z_n = k | theta) = log pi_k + log p(x_n | theta_k) (an estimator's
``log_joint_matrix(X)`` gives it), and responsibilities q (N, K) with rows on the simplex.
sample_weight (N,) are frequency weights (default 1). All results are sums over samples.
"""

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
