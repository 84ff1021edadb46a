"""EM as the textbook writes it (Bishop, PRML sec. 9.2.2 and 9.3), for any family.

    E-step:  log_joint[n, k] = log pi_k + log p(x_n | theta_k) (+ r_k)     (N, K)
             log p(x_n | theta) = log sum_k exp log_joint[n, k]             (N,)
             gamma(z_nk) = exp(log_joint[n, k] - log p(x_n | theta))         responsibilities
    M-step:  theta = argmax_theta sum_nk gamma(z_nk) log p(x_n, z_n = k | theta) (+ log p(theta))
    objective: sum_n log p(x_n | theta) (+ log p(theta)), which neither step decreases

with frequency weights w_n multiplying every sum over n. The family supplies log p(x | theta_k)
and the M-step (em_reference.family); this module and em_reference.loop (the iteration) are
the whole algorithm. r_k = ``family.log_regulariser`` is zero except for a regularised M-step
(Gaussian reg_covar), whose objective it is: with it the M-step is the exact maximiser and
the objective never decreases. The fast kernel (em_reference.fast) computes the same E-step
and M-step in another order of operations; the tests prove the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from em_reference import config  # noqa: F401  (float64)


def e_step(X, sample_weight, params, family, hard=False):
    """Responsibilities at params and the objective they come with.

    X (N, D), sample_weight (N,). Returns (objective, weighted responsibilities (N, K) =
    w_n gamma(z_nk)). Soft EM: objective = sum_n w_n log sum_k exp(log_joint[n, k]), the
    log-likelihood when the family has no regulariser (a lower bound on it otherwise).
    Hard (classification) EM: every point goes to its most probable component and
    objective = sum_n w_n max_k log p(x_n, z_n = k | theta).
    """
    log_joint = family.log_joint(X, params) + family.log_regulariser(params)[None, :]
    if hard:
        per_sample = jnp.max(log_joint, axis=1)
        resp = jax.nn.one_hot(jnp.argmax(log_joint, axis=1), log_joint.shape[1],
                              dtype=log_joint.dtype)
    else:
        per_sample = logsumexp(log_joint, axis=1)          # log p(x_n | theta)
        resp = jnp.exp(log_joint - per_sample[:, None])     # gamma(z_nk)
    # a row of weight 0 contributes nothing, even where its density is 0
    objective = jnp.sum(jnp.where(sample_weight > 0, sample_weight * per_sample, 0.0))
    return objective, resp * sample_weight[:, None]


def m_step(X, weighted_resp, params, family, prior):
    """The (MAP-)M-step from responsibilities; parameters in ``family.fixed`` stay as in
    params."""
    return family.m_step(X, weighted_resp, params, prior)


def log_likelihood(X, sample_weight, params, family):
    """sum_n w_n log p(x_n | theta), all constants included (no regulariser)."""
    return e_step(X, sample_weight, params, family.unregularised())[0]


@dataclass(frozen=True)
class TextbookEngine:
    """The textbook E-step and M-step on data (X (N, D), sample_weight (N,)) held whole,
    for em_reference.loop (hashable: jit-static). Restarts run one after another
    (batch_restarts False): each is then the very computation a single fit makes, so restart 0
    of n_init equals the n_init=1 fit bitwise (a vmap reorders sums at rounding level)."""

    family: object
    hard: bool = False
    batch_restarts = False

    def prepare(self, data, n_restarts):
        return data

    def total_weight(self, data):
        return jnp.sum(data[1])

    def e_step(self, data, params):
        X, w = data
        return e_step(X, w, params, self.family, self.hard)

    def m_step(self, data, payload, old, prior):
        return m_step(data[0], payload, old, self.family, prior)

    def log_likelihood(self, data, params):
        """sum_n w_n log p(x_n | theta) (soft, no regulariser) at params."""
        X, w = data
        return e_step(X, w, params, self.family.unregularised())[0]

    def gradient(self, data, params, payload, prior, scale):
        """The gradient of the objective (log-likelihood with the family's regulariser, + log
        prior) with respect to the unconstrained parameters (family.to_unconstrained), by
        automatic differentiation through the textbook E-step."""
        objective = self.unconstrained_objective(data, payload, prior, scale)
        return jax.grad(objective)(self.family.to_unconstrained(params, scale))

    def unconstrained_objective(self, data, payload, prior, scale):
        """u -> the objective at family.from_unconstrained(u, scale), through the E-step."""
        family = self.family

        def objective(u):
            p = family.from_unconstrained(u, scale)
            value = self.e_step(data, p)[0]
            return value if prior is None else value + family.log_prior(p, prior)

        return objective

    def initial_m_step(self, data, weighted_resp):
        """The MLE M-step from given (initial) responsibilities (N, K) times weights."""
        return self.family.m_step(data[0], weighted_resp, None, None)
