"""Coordinate-ascent variational inference (CAVI) for mixtures, written once for every family.

Mean-field q(Z, pi, theta) = q(Z) q(pi) q(theta) (Bishop PRML 10.42). One iteration is

    E-step   r_nk ∝ exp(E[log pi_k] + E[log p(x_n | theta_k)])     (10.46-10.49)
    M-step   q(pi), q(theta) = the conjugate updates from the statistics of r (10.51-10.63)
    bound    L(q(Z) = r, q(pi), q(theta)) from the same statistics (10.70-10.77)

each step maximising the ELBO in its block, so the recorded bound never decreases. The bound is
the full ELBO over (Z, pi, theta), every constant kept:

    L = sum_n w_n sum_k r_nk (E[log pi_k] + E[log p(x_n | theta_k)] - log r_nk)
        - KL(q(pi) || p(pi)) - KL(q(theta) || p(theta))

(E[log p(X, Z, pi, theta)] - E[log q(Z, pi, theta)] rearranged), a lower bound on the evidence
log p(X). It is evaluated after the M-step, at the responsibilities that produced q(pi, theta)
(scikit-learn's convention), without a second pass over the data: the data enter only through
the statistics of r and its entropy.

A family (em_reference.cavi.families: Gaussian, Poisson, Bernoulli) supplies
statistics(X, w r), update(stats, prior), expected_log_likelihood(X, q) -> (N, K),
expected_log_likelihood_total(stats, q) and kl(q, prior); the weights' factor is
``em_reference.cavi.weights`` (``kind``: "dirichlet_distribution" | "dirichlet_process").

The fit is one jitted ``lax.while_loop``; restarts are a ``vmap`` over initial factors. It
stops when the ELBO changed by less than tol per unit of sample weight (em_reference's
convention; scikit-learn's BayesianGaussianMixture compares the change of its total bound with
tol), or after max_iter iterations.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp, xlogy

from em_reference import config  # noqa: F401  (float64)
from em_reference.cavi import weights as weights_lib
from em_reference.fast.elementwise import exp_nonpositive, log_positive


class Variational(NamedTuple):
    """q(pi, theta): weights = q(pi)'s concentration ((K,) or (2, K), see weights.py);
    components = the family's factor (NormalWishart, GammaRates, BetaProbs)."""

    weights: jax.Array
    components: Any


class CAVIState(NamedTuple):
    """q: current factors; elbo: the ELBO at q and the responsibilities that produced it;
    n_iter: iterations done; converged / failed flags; trace (max_iter + 1,): the ELBO after
    each iteration (entry 0: at the initial q(pi, theta) and its E-step's responsibilities),
    -inf where not reached."""

    q: Variational
    elbo: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    failed: jax.Array
    trace: jax.Array


def log_responsibilities(X, q, family, kind):
    """E-step: log r_nk = log rho_nk - log sum_j rho_nj,
    log rho_nk = E[log pi_k] + E[log p(x_n | theta_k)] (Bishop 10.46): (N, K)."""
    log_rho = (weights_lib.expected_log_weights(q.weights, kind)[None, :]
               + family.expected_log_likelihood(X, q.components))
    return log_rho - logsumexp(log_rho, axis=1, keepdims=True)


def _entropy(sample_weight, resp):
    """-sum_n w_n sum_k r_nk log r_nk (0 log 0 = 0)."""
    return -jnp.sum(sample_weight * jnp.sum(xlogy(resp, resp), axis=1))


def e_step(X, sample_weight, q, family, kind):
    """(statistics of r, entropy of r) for the responsibilities r of q (r itself is dropped)."""
    log_resp = log_responsibilities(X, q, family, kind)
    resp = jnp.exp(log_resp)
    entropy = -jnp.sum(sample_weight * jnp.sum(resp * log_resp, axis=1))
    return family.statistics(X, resp * sample_weight[:, None]), entropy


def e_step_features(feats, sample_weight, q, family, kind):
    """``e_step`` by the family's fast kernel, from the features T(X) (N, F): the log joints are
    one product T(X) @ eta, the statistics come from the moments R^T T(X)."""
    eta = family.natural_parameters(q.components,
                                    weights_lib.expected_log_weights(q.weights, kind))
    log_rho = feats @ eta
    # one exp per value (the EM's float64 polynomial): r = e^(l - max) / sum, and the entropy
    # -sum_k r_k log r_k = log sum_k e^(l_k) - sum_k r_k l_k (rows of r sum to 1)
    top = jax.lax.stop_gradient(jnp.max(log_rho, axis=1, keepdims=True))
    unnorm = exp_nonpositive(log_rho - top)
    total = jnp.sum(unnorm, axis=1, keepdims=True)
    resp = unnorm / total
    lse = top[:, 0] + log_positive(total[:, 0])
    entropy = jnp.sum(sample_weight * (lse - jnp.sum(resp * log_rho, axis=1)))
    # the barrier keeps (w r)^T materialised, so that XLA CPU emits a plain row-major product
    # (em_reference.loop.block_stats measured its fast kernel)
    moments = jax.lax.optimization_barrier((resp * sample_weight[:, None]).T) @ feats
    return family.stats_from_moments(moments), entropy


def m_step(stats, prior, family, kind):
    """The optimal q(pi) and q(theta) given the statistics of q(Z)."""
    return Variational(weights_lib.update(stats.nk, prior.weight_concentration, kind),
                       family.update(stats, prior))


def elbo_from_statistics(stats, entropy, q, prior, family, kind):
    """The full ELBO at (q(Z) with these statistics and entropy, q(pi, theta) = q)."""
    e_log_weights = weights_lib.expected_log_weights(q.weights, kind)
    return (family.expected_log_likelihood_total(stats, q.components)
            + jnp.sum(stats.nk * e_log_weights) + entropy
            - weights_lib.kl(q.weights, prior.weight_concentration, kind)
            - family.kl(q.components, prior))


def elbo(X, sample_weight, resp, q, prior, family, kind):
    """The full ELBO at any responsibilities resp (N, K) and factors q."""
    stats = family.statistics(X, resp * sample_weight[:, None])
    return elbo_from_statistics(stats, _entropy(sample_weight, resp), q, prior, family, kind)


@partial(jax.jit, static_argnames=("family", "kind"))
def init_from_responsibilities(X, sample_weight, resp, prior, *, family, kind):
    """q(pi, theta) = the M-step of initial responsibilities resp (N, K), and the ELBO at it
    and its own E-step's responsibilities. (Initial responsibilities need not be a q(Z): k-means++
    and random_from_data give K one-hot rows and zeros elsewhere, as scikit-learn's.)"""
    q = m_step(family.statistics(X, resp * sample_weight[:, None]), prior, family, kind)
    stats, entropy = e_step(X, sample_weight, q, family, kind)
    return q, elbo_from_statistics(stats, entropy, q, prior, family, kind)


def cavi_step(state, X, sample_weight, prior, family, kind, tol, fast=False):
    """One iteration: E-step, M-step, ELBO. A non-finite ELBO or factor stops the loop with
    ``failed`` set and the last finite factors (and iteration count) kept. fast: X holds the
    features T(X) and the E-step is the family's fast kernel."""
    stats, entropy = (e_step_features if fast else e_step)(X, sample_weight, state.q, family,
                                                           kind)
    q = m_step(stats, prior, family, kind)
    value = elbo_from_statistics(stats, entropy, q, prior, family, kind)
    finite = jnp.isfinite(value) & jnp.all(jnp.array(
        [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(q)]))
    converged = finite & (jnp.abs(value - state.elbo) < tol * jnp.sum(sample_weight))
    # a failed iteration is not counted: the state stays at the last finite iteration
    q = jax.tree.map(lambda new, old: jnp.where(finite, new, old), q, state.q)
    value = jnp.where(finite, value, state.elbo)
    n_iter = jnp.where(finite, state.n_iter + 1, state.n_iter)
    return CAVIState(q, value, n_iter, converged, ~finite, state.trace.at[n_iter].set(value))


@partial(jax.jit, static_argnames=("family", "kind", "max_iter", "fast"))
def fit_cavi(q0, elbo0, X, sample_weight, prior, tol, *, family, kind, max_iter, fast=False):
    """CAVI from a batch of initial factors q0 (leading axis: restarts) with their ELBOs
    elbo0 (B,), in parallel (vmap). Returns the final CAVIState, every field batched.
    fast: the E-step by the family's fast kernel (``family.has_fast_path``), from features
    T(X) computed once here (N x F values held for the fit)."""
    if fast:
        X = family.features(X)

    def run_one(q, value):
        trace = jnp.full(max_iter + 1, -jnp.inf, value.dtype).at[0].set(value)
        state = CAVIState(q, value, jnp.asarray(0, jnp.int32), jnp.asarray(False),
                          jnp.asarray(False), trace)

        def cond(s):
            return (s.n_iter < max_iter) & ~s.converged & ~s.failed

        def body(s):
            return cavi_step(s, X, sample_weight, prior, family, kind, tol, fast)

        return jax.lax.while_loop(cond, body, state)

    return jax.vmap(run_one)(q0, elbo0)
