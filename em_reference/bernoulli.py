"""Bernoulli mixture (binary data, e.g. binarized images): log densities, the (MAP-)M-step and
the fast kernel's features, by hand (Bishop, PRML sec. 9.3.3).

Shapes: x (N, D) of 0/1 (D pixels); weights (K,); probs (K, D), probs[k, d] = p(x_d = 1 | k).
log p(x_n | k) = sum_d [x_nd log p_kd + (1 - x_nd) log(1 - p_kd)]
             = x_n . logit(p_k) + sum_d log(1 - p_kd),
linear in the features T(x) = (1, x): the fast kernel's one-product E-step applies, restarts
included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from em_reference import config  # noqa: F401  (float64)
from em_reference.family import FamilyBase, nk_guard, weights_update
from em_reference.priors import BernoulliMixturePrior

# The MLE of a pixel a component never saw on (or never off) is exactly 0 (or 1). Kept there,
# log 0 = -inf would make every later image with that pixel on impossible under the component
# (a held-out log-likelihood of -inf), and logit(0) = -inf times a pixel that is off would
# make the fast E-step's T(x) @ eta NaN. Probabilities are therefore kept in
# [MIN_PROB, 1 - MIN_PROB] (float32: at least 4 ulps from 0 and 1, where 1 - 1e-10 rounds to
# 1): such a pixel then costs log(1e-10) = -23 nats, not -inf.
MIN_PROB = 1e-10


class BernoulliParams(NamedTuple):
    """weights (K,), probs (K, D)."""

    weights: jax.Array
    probs: jax.Array


def min_prob(dtype):
    return max(MIN_PROB, 4.0 * float(jnp.finfo(dtype).eps))


def log_bernoulli_prob(x, probs):
    """log p(x_n | p_k) summed over pixels: (N, K). x (N, D), probs (K, D); the two sums of
    Bishop's formula, x log p + (1 - x) log(1 - p), as two products."""
    return x @ jnp.log(probs).T + (1.0 - x) @ jnp.log1p(-probs).T


def log_joint_matrix(x, params):
    """log pi_k + log p(x_n | p_k): (N, K)."""
    return jnp.log(params.weights)[None, :] + log_bernoulli_prob(x, params.probs)


def log_likelihood(x, params, sample_weight=None):
    """log p(x | params) = sum_n w_n log sum_k pi_k prod_d Bernoulli(x_nd | p_kd)."""
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    x = x[:, None] if x.ndim == 1 else x
    params = BernoulliParams(jnp.asarray(params[0]), jnp.asarray(params[1]).reshape(-1, x.shape[1]))
    per_sample = jax.scipy.special.logsumexp(log_joint_matrix(x, params), axis=1)
    if sample_weight is None:
        return jnp.sum(per_sample)
    return jnp.sum(jnp.asarray(sample_weight) * per_sample)


def prob_update(nk, sx, prior):
    """p_kd = S_kd / N_k (MLE) or the Beta(a_d, b_d) posterior mode
    (S_kd + a_d - 1) / (N_k + a_d + b_d - 2), kept in [MIN_PROB, 1 - MIN_PROB].
    nk (K,) guarded from 0, sx (K, D) = sum_n w_n r_nk x_n."""
    if prior is None:
        probs = sx / nk[:, None]
    else:
        a, b = prior.probs_concentration1, prior.probs_concentration0
        probs = (sx + a - 1.0) / (nk[:, None] + a + b - 2.0)
    eps = min_prob(sx.dtype)
    return jnp.clip(probs, eps, 1.0 - eps)


def m_step(nk, sx, prior):
    """Closed-form (MAP-)M-step from N_k (K,) and S_x (K, D): weights by
    family.weights_update, probabilities by ``prob_update``."""
    guarded = nk + nk_guard(nk.dtype)
    return BernoulliParams(weights_update(nk, prior), prob_update(guarded, sx, prior))


def features(x):
    """T(x) (N, D + 1): a constant 1 and the pixels."""
    return jnp.concatenate([jnp.ones((x.shape[0], 1), x.dtype), x], axis=1)


def natural_parameters(params):
    """eta (D + 1, K) with log pi_k + log p(x | p_k) = T(x) @ eta[:, k]:
    eta_k = (log pi_k + sum_d log(1 - p_kd), logit(p_k))."""
    const = jnp.log(params.weights) + jnp.sum(jnp.log1p(-params.probs), axis=1)
    logits = jnp.log(params.probs) - jnp.log1p(-params.probs)
    return jnp.concatenate([const[:, None], logits], axis=1).T


def n_parameters(n_components, n_features):
    """Free parameters: K * D probabilities + K - 1 weights."""
    return int(n_components * n_features + n_components - 1)


@dataclass(frozen=True)
class BernoulliFamily(FamilyBase):
    """Bernoulli mixtures for em_reference.family.MixtureFamily (hashable: jit-static)."""

    fixed: tuple = ()

    params_class: ClassVar[type] = BernoulliParams
    prior_class: ClassVar[type] = BernoulliMixturePrior

    def log_component_densities(self, x, params):
        return log_bernoulli_prob(x, params.probs)

    def component_m_step(self, x, weighted_resp, nk, prior):
        return {"probs": prob_update(nk, weighted_resp.T @ x, prior)}

    def features(self, x):
        return features(x)

    def feature_width(self, n_features):
        """F: 1 and the D pixels."""
        return n_features + 1

    def natural_parameters(self, params):
        return natural_parameters(params)

    def component_m_step_from_moments(self, moments, nk, prior):
        return {"probs": prob_update(nk, moments[:, 1:], prior)}

    def to_unconstrained(self, params, scale):
        p = params.probs
        return BernoulliParams(self._weights_to_unconstrained(params.weights),
                               jnp.log(p) - jnp.log1p(-p))

    def from_unconstrained(self, u, scale):
        eps = min_prob(u.probs.dtype)
        return BernoulliParams(self._weights_from_unconstrained(u.weights),
                               jnp.clip(jax.nn.sigmoid(u.probs), eps, 1.0 - eps))

    def n_parameters(self, n_components, n_features):
        return n_parameters(n_components, n_features)
