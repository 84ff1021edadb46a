"""The EM loop, written once for every mixture family (BlackJAX-style pure functions).

A family (GaussianFamily, PoissonFamily) supplies ``prepare(params)`` (what one E-step needs
of the parameters, computed once), ``block_features(X_block) -> (C, F)`` (the sufficient-
statistic features T(x)), ``block_log_joint(features, prepared) -> (C, K)``,
``stats_from_moments(R^T T(X))`` (the sufficient statistics from the responsibility-weighted
feature sums, which the loop forms: ``block_stats``), ``m_step(stats, old_params, prior)`` and
``log_prior(params, prior)``; when its log joint is linear in the features
(``linear_log_joint(dtype)``: natural parameters times T(x)), restarts share one product. The
loop is

    state = em_init(params)
    state = em_step(state, data, ...)      # E-step -> objective at state.params, M-step
    ... inside one jitted lax.while_loop, restarts as a vmap over initial params.

The E-step never keeps the (N, K) responsibilities: it reduces them at once to the objective
and the sufficient statistics. With data laid out as chunks (n_chunks, C, D) it does so chunk
by chunk in a ``lax.scan``, so memory is O(C K) whatever N is (streaming EM). Sums over samples
are plain ``jnp.sum``s, so the same code runs on data sharded over devices (sharded EM).
``fit_em(..., cache_features=True)`` computes T(X) once before the loop instead of once per
iteration (faster, at N x F values of memory: the estimator does so when they fit a budget).
A single restart then keeps a few chunks' features as separate arrays and unrolls the E-step
over them (``UNROLL_MAX_CHUNKS``), since the scan would copy each chunk out of the cache.
Restarts run as a vmap of one restart's loop; its E-step has its own batching rule
(``e_pass``: jax.custom_batching) that computes every restart's log joints in one product.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from em_reference import config  # noqa: F401  (float64)
from em_reference.elementwise import exp_nonpositive, log_positive

# cached features of at most this many chunks are unrolled rather than scanned: the scan
# copies each chunk's slice of the cache in every E-step (3.4 of 18 ms per iteration at
# (100,000, 32, 16, diag)); unrolled, one iteration took 5.0 -> 3.9 ms at (100,000, 8, 8, diag),
# 8.2 -> 6.8 ms (full), 14.6 -> 12.4 ms at (100,000, 32, 16, diag). Compilation grows by
# ~0.1 s per chunk, hence the cap. Restarts keep the scan: unrolled, 16 restarts at
# (100,000, 8, 8, full) ran 62 -> 84 ms per iteration under a plain vmap, 56 -> 64 in one
# product (restarts_e_pass; diag 42 -> 59).
UNROLL_MAX_CHUNKS = 8


class EMState(NamedTuple):
    """params: current parameters; objective: objective at the params of the previous
    iteration (-inf before the first); n_iter: M-steps done; converged / failed flags;
    trace (max_iter + 1,): objective per iteration, -inf where not reached."""

    params: Any
    objective: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    failed: jax.Array
    trace: jax.Array


def e_pass(X, sample_weight, params, family, hard, features_given=False):
    """One pass over the data at fixed params.

    X (N, D) with sample_weight (N,), or chunked X (n_chunks, C, D) with (n_chunks, C); with
    features_given, X holds the family's features instead ((N, F) or (n_chunks, C, F), or a
    tuple of (C, F) chunks with a tuple of (C,) weights: summed unrolled).
    Returns (objective, stats): objective = sum_n w_n log sum_k p(x_n, z=k) for soft EM, or the
    classification log-likelihood sum_n w_n max_k log p(x_n, z=k) for hard EM; stats are the
    family's weighted sufficient statistics.

    Under vmap over params alone (restarts, ``fit_em``), soft EM in a family whose log joint is
    linear in its features runs every restart in one product per chunk
    (``restarts_e_pass``); anything else is the plain vmap of this function.
    """

    def plain(X, sample_weight, params):
        return _e_pass(X, sample_weight, params, family, hard, features_given)

    batched = jax.custom_batching.custom_vmap(plain)

    @batched.def_vmap
    def rule(axis_size, in_batched, X, sample_weight, params):
        data_batched = any(jax.tree.leaves(in_batched[:2]))
        dtype = jax.tree.leaves(params)[0].dtype
        if (axis_size > 1 and not hard and not data_batched
                and all(jax.tree.leaves(in_batched[2])) and family.linear_log_joint(dtype)):
            out = restarts_e_pass(X, sample_weight, params, family, features_given)
        else:
            axes = jax.tree.map(lambda b: 0 if b else None, tuple(in_batched))
            out = jax.vmap(plain, in_axes=axes)(X, sample_weight, params)
        return out, jax.tree.map(lambda _: True, out)

    # custom_vmap alone has no reverse-mode rule: derivatives (forward and reverse) are those
    # of the plain pass, so the objective stays differentiable in the parameters
    @jax.custom_jvp
    def differentiable(X, sample_weight, params):
        return batched(X, sample_weight, params)

    @differentiable.defjvp
    def jvp(primals, tangents):
        return jax.jvp(plain, primals, tangents)

    return differentiable(X, sample_weight, params)


def _e_pass(X, sample_weight, params, family, hard, features_given):
    """``e_pass`` for one set of params."""
    prepared = family.prepare(params)

    def one_block(Xb, wb):
        feats = Xb if features_given else family.block_features(Xb)
        log_joint = family.block_log_joint(feats, prepared)
        if hard:
            per_sample = jnp.max(log_joint, axis=1)
            resp = jax.nn.one_hot(jnp.argmax(log_joint, axis=1), log_joint.shape[1],
                                  dtype=log_joint.dtype)
        else:
            lse, unnorm, total = _log_sum_exp(log_joint)
            per_sample = lse[:, 0]
            resp = unnorm / total
        return _weighted_sum(wb, per_sample), block_stats(family, feats, resp * wb[:, None])

    return _sum_blocks(one_block, X, sample_weight)


def block_stats(family, feats, weighted_resp):
    """The family's sufficient statistics of a block from its features T(X) (C, F) and
    weighted responsibilities (C, K): ``stats_from_moments`` of one (K, C) x (C, F) product."""
    # the barrier keeps R^T materialised (C x K, small) so that XLA CPU emits a plain
    # row-major (K, C) x (C, F) product (its fast YNNPACK kernel) rather than a dot that
    # contracts both operands' leading axes (Eigen, ~2x slower at these shapes)
    return family.stats_from_moments(jax.lax.optimization_barrier(weighted_resp.T) @ feats)


def restarts_e_pass(X, sample_weight, params, family, features_given):
    """Soft E-step of B restarts at once, for a family whose log joint is T(x) @ eta.

    params: batched over restarts (leading axis B). Per chunk of rows: one (C, F) x (F, K B)
    product gives every restart's log joints laid out (C, K, B), so the logsumexp over K
    reduces across contiguous (C, B) planes; the moments are one (F, C) x (C, K B) product.
    Under vmap each restart ran its own (C, F) x (F, K) product and its (K, C) x (C, F)
    moments, with a transposed copy of the (B, C, K) responsibilities in between: 16
    restarts at (100,000, 8, 8) took 61-65 ms per EM iteration that way, 56-57 this way
    (full; diag 49-53 -> 41-43). Returns (objective (B,), stats batched over B), as the
    vmap of ``e_pass`` would.
    """
    eta = jax.vmap(family.prepare)(params)  # (B, F, K)
    n_restarts, n_feat, k = eta.shape
    eta = jnp.transpose(eta, (1, 2, 0)).reshape(n_feat, k * n_restarts)  # columns (k, b)

    def one_block(Xb, wb):
        feats = Xb if features_given else family.block_features(Xb)
        log_joint = (feats @ eta).reshape(-1, k, n_restarts)
        lse, unnorm, total = _log_sum_exp(log_joint)  # (C, 1, B), (C, K, B), (C, 1, B)
        objective = _weighted_sum(wb, lse[:, 0, :])
        resp = (unnorm * (wb[:, None, None] / total)).reshape(-1, k * n_restarts)
        # T(X)^T materialised (C x F, one copy per chunk) makes the moments a plain row-major
        # product, not one contracting both operands' leading axes (XLA CPU: Eigen, slow)
        moments = jax.lax.optimization_barrier(feats.T) @ resp  # (F, K B)
        return objective, moments

    objective, moments = _sum_blocks(one_block, X, sample_weight)
    moments = jnp.transpose(moments.reshape(n_feat, k, n_restarts), (2, 1, 0))  # (B, K, F)
    return objective, jax.vmap(family.stats_from_moments)(moments)


def _log_sum_exp(log_joint):
    """The E-step's log-sum-exp over components (axis 1 of (C, K) or (C, K, B) log joints),
    from one exp per value: (log sum_k exp l_k, exp(l - max_k l), sum_k exp(l - max_k l)),
    the sums kept as a size-1 axis 1. Responsibilities are the middle over the last."""
    top = jax.lax.stop_gradient(jnp.max(log_joint, axis=1, keepdims=True))
    unnorm = exp_nonpositive(log_joint - top)
    total = jnp.sum(unnorm, axis=1, keepdims=True)
    return top + log_positive(total), unnorm, total


def _weighted_sum(wb, per_sample):
    """sum_n w_n per_sample_n over the rows (axis 0; per_sample (C,) or (C, B)), zero-weight
    rows (padding) contributing exactly nothing, even where their density is 0."""
    w = wb.reshape(wb.shape + (1,) * (per_sample.ndim - 1))
    return jnp.sum(jnp.where(w > 0, w * per_sample, 0.0), axis=0)


def _sum_blocks(one_block, X, sample_weight):
    """Sum of one_block over the data's blocks: a tuple of chunks (unrolled), one (N, .)
    block, or (n_chunks, C, .) chunks (scanned)."""
    if isinstance(X, tuple):
        total = one_block(X[0], sample_weight[0])
        for Xb, wb in zip(X[1:], sample_weight[1:]):
            total = jax.tree.map(jnp.add, total, one_block(Xb, wb))
        return total
    if X.ndim == 2:
        return one_block(X, sample_weight)
    return scan_sum(one_block, (X, sample_weight))


def scan_sum(fn, chunks):
    """sum over i of fn(*[c[i] for c in chunks]) (any pytree result), one chunk at a time.

    Starts from zeros rather than from chunk 0 so that no slice of the data (a full copy of
    it, inside a while_loop) is ever made.
    """
    shapes = jax.eval_shape(fn, *(c[0] for c in chunks))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def add(total, block):
        return jax.tree.map(jnp.add, total, fn(*block)), None

    return jax.lax.scan(add, zeros, chunks)[0]


def objective(X, sample_weight, params, family, prior, hard, features_given=False):
    """The objective EM increases: log-likelihood (+ log prior for MAP-EM)."""
    value, _ = e_pass(X, sample_weight, params, family, hard, features_given)
    if prior is not None:
        value = value + family.log_prior(params, prior)
    return value


def em_init(params, max_iter):
    dtype = jax.tree.leaves(params)[0].dtype
    return EMState(params, jnp.asarray(-jnp.inf, dtype), jnp.asarray(0, jnp.int32),
                   jnp.asarray(False), jnp.asarray(False),
                   jnp.full(max_iter + 1, -jnp.inf, dtype))


def em_step(state, X, sample_weight, family, prior, hard, tol, features_given=False):
    """One EM iteration: E-step at state.params, then the (MAP-)M-step.

    Converged when the objective per unit of sample weight changed by less than tol (the
    convention of scikit-learn). A non-finite objective or non-finite new parameters stop the
    loop with ``failed`` set and the last finite parameters kept.
    """
    value, stats = e_pass(X, sample_weight, state.params, family, hard, features_given)
    if prior is not None:
        value = value + family.log_prior(state.params, prior)
    new_params = family.m_step(stats, state.params, prior)
    finite = jnp.isfinite(value) & jnp.all(jnp.array(
        [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(new_params)]))
    n_total = sum(jnp.sum(w) for w in jax.tree.leaves(sample_weight))  # array or tuple
    converged = finite & (jnp.abs(value - state.objective) < tol * n_total)
    params = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_params, state.params)
    return EMState(params, value, state.n_iter + 1, converged, ~finite,
                   state.trace.at[state.n_iter].set(value))


@partial(jax.jit, static_argnames=("family", "hard", "max_iter", "cache_features"))
def fit_em(init_params, X, sample_weight, prior, tol, *, family, hard, max_iter,
           cache_features=False):
    """Run EM from a batch of initial parameters (leading axis: restarts), in parallel (vmap).

    cache_features: compute the features T(X) once, before the loop (N x F values held for the
    whole fit), rather than chunk by chunk in every E-step (memory O(chunk) whatever N is).
    Returns the final EMState with every field batched over restarts; ``trace[n_iter]`` holds
    the objective at the returned parameters.
    """
    n_restarts = jax.tree.leaves(init_params)[0].shape[0]
    if cache_features and X.ndim == 3 and n_restarts == 1 and X.shape[0] <= UNROLL_MAX_CHUNKS:
        X = tuple(family.block_features(X[i]) for i in range(X.shape[0]))
        sample_weight = tuple(sample_weight[i] for i in range(len(X)))
    elif cache_features:
        X = (jax.vmap(family.block_features) if X.ndim == 3 else family.block_features)(X)

    def run_one(params):
        def cond(state):
            return (state.n_iter < max_iter) & ~state.converged & ~state.failed

        def body(state):
            return em_step(state, X, sample_weight, family, prior, hard, tol, cache_features)

        state = jax.lax.while_loop(cond, body, em_init(params, max_iter))
        final = objective(X, sample_weight, state.params, family, prior, hard, cache_features)
        return state._replace(objective=final, trace=state.trace.at[state.n_iter].set(final))

    return jax.vmap(run_one)(init_params)
