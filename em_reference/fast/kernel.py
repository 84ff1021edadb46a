"""The fast E-step: one pass over the data giving the objective and the moments R^T T(X).

For a family whose log joint is linear in features T(x) (log pi_k + log p(x | theta_k) =
T(x) . eta_k, em_reference.family), an E-step over a block of rows is

    log_joint = T(X_block) @ eta                 (C, F) x (F, K)
    lse, R    = log-sum-exp over k, responsibilities
    moments  += (w R)^T @ T(X_block)             (K, C) x (C, F)

so the E-step and the M-step's sufficient statistics are two matrix products against the
same features. It never keeps the (N, K) responsibilities: data laid out as chunks
(n_chunks, C, D) are reduced chunk by chunk in a ``lax.scan`` (memory O(C K) whatever N is:
streaming EM), and sums over samples are plain ``jnp.sum``s, so the same code runs on data
sharded over devices. Under ``vmap`` over restarts, ``e_pass`` has its own batching rule
(``restarts_e_pass``): one (C, F) x (F, K B) product gives all B restarts' log joints. Its
results equal the textbook E-step (em_reference.textbook) to rounding, which the tests check.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from em_reference import config  # noqa: F401  (float64)
from em_reference.fast.elementwise import exp_nonpositive, log_positive


def e_pass(X, sample_weight, params, family, hard, features_given=False, centres=None):
    """One pass over the data at fixed params: (objective, moments (K, F)).

    X (N, D) with sample_weight (N,), or chunked X (n_chunks, C, D) with (n_chunks, C); with
    features_given, X holds the family's features instead ((N, F) or (n_chunks, C, F), or a
    tuple of (C, F) chunks with a tuple of (C,) weights: summed unrolled).
    objective = sum_n w_n log sum_k p(x_n, z=k) for soft EM, or the classification
    log-likelihood sum_n w_n max_k log p(x_n, z=k) for hard EM; moments = sum_n w_n r_nk T(x_n).

    centres: None, or (K, D) from ``family.moment_centres(params)``: while every row is zero
    the pass is the expanded one above; otherwise (tight components far from the data's
    centre, where the expansion cancels) it is ``stable_e_pass``: the log joint in the
    difference form and moments = sum_n w_n r_nk T(x_n - c_k). The switch is one
    ``lax.cond`` per pass, taken for all restarts at once (so a batch of restarts never runs
    both forms).

    Under vmap over params alone (restarts), soft EM in a family whose log joint is linear in
    its features runs every restart in one product per chunk (``restarts_e_pass``); anything
    else is the plain vmap of this function.
    """

    def linear(X, sample_weight, params):
        return _e_pass(X, sample_weight, params, family, hard, features_given)

    def linear_batched(axis_size, in_batched, X, sample_weight, params):
        """The vmap of ``linear`` over a batch of axis_size (outputs batched)."""
        data_batched = any(jax.tree.leaves(in_batched[:2]))
        dtype = jax.tree.leaves(params)[0].dtype
        if (axis_size > 1 and not hard and not data_batched
                and all(jax.tree.leaves(in_batched[2])) and family.linear_log_joint(dtype)):
            return restarts_e_pass(X, sample_weight, params, family, features_given)
        axes = jax.tree.map(lambda b: 0 if b else None, tuple(in_batched[:3]))
        return jax.vmap(linear, in_axes=axes)(X, sample_weight, params)

    if centres is None:
        plain = linear
    else:
        def plain(X, sample_weight, params, centres):
            return jax.lax.cond(
                jnp.any(centres != 0),
                lambda: stable_e_pass(X, sample_weight, params, centres, family, hard,
                                      features_given),
                lambda: linear(X, sample_weight, params))

    batched = jax.custom_batching.custom_vmap(plain)

    @batched.def_vmap
    def rule(axis_size, in_batched, X, sample_weight, params, *maybe_centres):
        if not maybe_centres:
            out = linear_batched(axis_size, in_batched, X, sample_weight, params)
        else:
            (c,) = maybe_centres
            axes = jax.tree.map(lambda b: 0 if b else None, tuple(in_batched))

            def stable_all():
                return jax.vmap(lambda *a: stable_e_pass(*a, family, hard, features_given),
                                in_axes=axes)(X, sample_weight, params, c)

            out = jax.lax.cond(jnp.any(c != 0), stable_all,
                               lambda: linear_batched(axis_size, in_batched, X, sample_weight,
                                                      params))
        return out, jax.tree.map(lambda _: True, out)

    # custom_vmap alone has no reverse-mode rule: derivatives (forward and reverse) are those
    # of the plain pass, so the objective stays differentiable in the parameters
    @jax.custom_jvp
    def differentiable(*args):
        return batched(*args)

    @differentiable.defjvp
    def jvp(primals, tangents):
        return jax.jvp(plain, primals, tangents)

    args = (X, sample_weight, params) + (() if centres is None
                                         else (jax.lax.stop_gradient(centres),))
    return differentiable(*args)


def stable_e_pass(X, sample_weight, params, centres, family, hard, features_given):
    """``e_pass`` for one set of params in the form that does not cancel: the log joint from
    the differences x_n - mu_k (``family.log_joint``, the textbook form, with the regulariser)
    and the moments about per-component points, sum_n w_n r_nk T(x_n - c_k) (K, F), one
    component at a time (no (K, C, F) temporary). centres (K, D)."""
    n_features = centres.shape[1]

    def one_block(Xb, wb):
        rows = family.rows_from_features(Xb, n_features) if features_given else Xb
        log_joint = family.log_joint(rows, params) + family.log_regulariser(params)[None, :]
        per_sample, resp = _assign(log_joint, hard)
        weighted = resp * wb[:, None]
        moments = jax.lax.map(lambda rc: rc[0] @ family.features(rows - rc[1]),
                              (weighted.T, centres))
        return _weighted_sum(wb, per_sample), moments

    return _sum_blocks(one_block, X, sample_weight)


def _assign(log_joint, hard):
    """(per-sample objective (C,), responsibilities (C, K)) from a block's log joint."""
    if hard:
        return jnp.max(log_joint, axis=1), jax.nn.one_hot(
            jnp.argmax(log_joint, axis=1), log_joint.shape[1], dtype=log_joint.dtype)
    lse, unnorm, total = _log_sum_exp(log_joint)
    return lse[:, 0], unnorm / total


def _e_pass(X, sample_weight, params, family, hard, features_given):
    """``e_pass`` for one set of params."""
    prepared = family.prepare(params)

    def one_block(Xb, wb):
        feats = Xb if features_given else family.features(Xb)
        per_sample, resp = _assign(family.block_log_joint(feats, prepared), hard)
        return _weighted_sum(wb, per_sample), block_moments(feats, resp * wb[:, None])

    return _sum_blocks(one_block, X, sample_weight)


def block_moments(feats, weighted_resp):
    """The moments R^T T(X) (K, F) of a block: features (C, F), weighted responsibilities
    (C, K), as one row-major (K, C) x (C, F) product."""
    # the barrier keeps R^T materialised (C x K, small) so that XLA CPU emits a plain
    # row-major (K, C) x (C, F) product (its fast YNNPACK kernel) rather than a dot that
    # contracts both operands' leading axes (Eigen, about 2x slower at these shapes)
    return jax.lax.optimization_barrier(weighted_resp.T) @ feats


def restarts_e_pass(X, sample_weight, params, family, features_given):
    """Soft E-step of B restarts at once, for a family whose log joint is T(x) @ eta.

    params: batched over restarts (leading axis B). Per chunk of rows: one (C, F) x (F, K B)
    product gives every restart's log joints laid out (C, K, B), so the logsumexp over K
    reduces across contiguous (C, B) planes; the moments are one (F, C) x (C, K B) product.
    (Under a plain vmap each restart ran its own two products, with a transposed copy of the
    (B, C, K) responsibilities in between.) Returns (objective (B,), moments (B, K, F)), as
    the vmap of ``e_pass`` would.
    """
    eta = jax.vmap(family.prepare)(params)  # (B, F, K)
    n_restarts, n_feat, k = eta.shape
    eta = jnp.transpose(eta, (1, 2, 0)).reshape(n_feat, k * n_restarts)  # columns (k, b)

    def one_block(Xb, wb):
        feats = Xb if features_given else family.features(Xb)
        log_joint = (feats @ eta).reshape(-1, k, n_restarts)
        lse, unnorm, total = _log_sum_exp(log_joint)  # (C, 1, B), (C, K, B), (C, 1, B)
        objective = _weighted_sum(wb, lse[:, 0, :])
        resp = (unnorm * (wb[:, None, None] / total)).reshape(-1, k * n_restarts)
        # T(X)^T materialised (C x F, one copy per chunk) makes the moments a plain row-major
        # product, not one contracting both operands' leading axes (XLA CPU: Eigen, slow)
        moments = jax.lax.optimization_barrier(feats.T) @ resp  # (F, K B)
        return objective, moments

    objective, moments = _sum_blocks(one_block, X, sample_weight)
    return objective, jnp.transpose(moments.reshape(n_feat, k, n_restarts), (2, 1, 0))


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
