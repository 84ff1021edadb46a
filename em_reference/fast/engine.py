"""The fast kernel as an engine of em_reference.loop: the E-step is kernel.e_pass over chunks
(or over features computed once and kept), the M-step reads the moments R^T T(X)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from em_reference import tuning
from em_reference.fast import kernel


@dataclass(frozen=True)
class FastEngine:
    """family: an em_reference.family.MixtureFamily; hard: classification EM;
    cache_features: T(X) is computed once before the loop (N x F values held for the whole
    fit) rather than chunk by chunk in every E-step (hashable: jit-static).

    Data: (X, sample_weight) as one block (N, D), (N,) or as chunks (n_chunks, C, D),
    (n_chunks, C) with zero-weight padding rows.

    stable_fallback: where the expanded quadratic would cancel (tight components far from
    the data's centre: ``family.moment_centres`` has a non-zero row), True takes the
    difference form for that E-step (a branch in every E-step, which doubles the compiled
    program); False (default) returns a nan objective there instead, which ends the loop as
    failed. MixtureEM runs False first and refits with True only when a restart failed, so an
    ordinary fit compiles one form and an ill-conditioned one gets exactly the True fit."""

    family: object
    hard: bool = False
    cache_features: bool = False
    stable_fallback: bool = False
    batch_restarts = True  # restarts under vmap: one (C, F) x (F, K B) product per chunk

    def prepare(self, data, n_restarts):
        """The data the E-steps read: with cache_features, T(X) instead of X; a single
        restart over at most tuning.UNROLL_MAX_CHUNKS chunks gets them as a tuple of separate
        arrays (the E-step is then unrolled: a scan would copy each chunk out of the cache)."""
        X, w = data
        if not self.cache_features:
            return data
        features = self.family.features
        if X.ndim == 3 and n_restarts == 1 and X.shape[0] <= tuning.UNROLL_MAX_CHUNKS:
            return (tuple(features(X[i]) for i in range(X.shape[0])),
                    tuple(w[i] for i in range(X.shape[0])))
        return (jax.vmap(features)(X) if X.ndim == 3 else features(X)), w

    def total_weight(self, data):
        return sum(jnp.sum(w) for w in jax.tree.leaves(data[1]))

    def e_step(self, data, params):
        """(objective, (moments (K, F), centres)) at params: the moments are about the
        points ``family.moment_centres(params)`` ((K, D), or None: the origin)."""
        centres = self.family.moment_centres(params)
        if centres is None or self.stable_fallback:
            value, moments = kernel.e_pass(*data, params, self.family, self.hard,
                                           self.cache_features, centres)
            return value, (moments, centres)
        value, moments = kernel.e_pass(*data, params, self.family, self.hard,
                                       self.cache_features)
        return self._refuse_cancelling(value, centres), (moments, None)

    @staticmethod
    def _refuse_cancelling(value, centres):
        """value, or nan where the expanded form cancels (stable_fallback=False)."""
        return jnp.where(jnp.any(centres != 0), jnp.nan, value)

    def m_step(self, data, payload, old, prior):
        moments, centres = payload
        return self.family.m_step_from_moments(moments, old, prior, centres)

    def log_likelihood(self, data, params):
        """sum_n w_n log p(x_n | theta) (soft, no regulariser) at params."""
        family = self.family.unregularised()
        centres = family.moment_centres(params)
        if centres is None or self.stable_fallback:
            return kernel.e_pass(*data, params, family, False, self.cache_features, centres)[0]
        value = kernel.e_pass(*data, params, family, False, self.cache_features)[0]
        return self._refuse_cancelling(value, centres)

    def gradient(self, data, params, payload, prior, scale):
        """The gradient of the objective with respect to the unconstrained parameters, from
        the E-step's moments at params without another pass over the data: by Fisher's
        identity the log-likelihood's gradient at theta equals that of the expected
        complete-data log joint sum_nk w_n r_nk log p(x_n, z_n = k | theta') at theta' = theta
        with the responsibilities r held at theta, and that is sum_kf moments_kf eta_fk(theta')
        for the natural parameters eta (em_natural_parameters: regulariser included).
        Moments about centres c_k pair with the natural parameters of the components moved
        by -c_k (T(x - c_k) . eta_k(mu_k - c_k) is the same log joint)."""
        objective = self.unconstrained_objective(data, payload, prior, scale)
        return jax.grad(objective)(self.family.to_unconstrained(params, scale))

    def unconstrained_objective(self, data, payload, prior, scale):
        """u -> the expected complete-data log joint (+ log prior) at
        family.from_unconstrained(u, scale), the responsibilities held in the moments: its
        gradient is the objective's at the E-step's point (gradient's docstring), its
        Hessian the complete-data one."""
        family = self.family
        moments, centres = payload

        def expected_log_joint(u):
            p = family.from_unconstrained(u, scale)
            moved = p if centres is None else family.translate(p, -centres)
            value = jnp.sum(moments * family.em_natural_parameters(moved).T)
            return value if prior is None else value + family.log_prior(p, prior)

        return expected_log_joint

    def initial_m_step(self, data, weighted_resp):
        """The MLE M-step from given responsibilities times weights, laid out like the data
        (raw rows, not features: called before ``prepare``)."""
        X = data[0]
        family = self.family

        def sum_blocks(fn):
            return fn(X, weighted_resp) if X.ndim == 2 else kernel.scan_sum(
                fn, (X, weighted_resp))

        raw = family.m_step_from_moments(
            sum_blocks(lambda Xb, Rb: kernel.block_moments(family.features(Xb), Rb)), None,
            None)
        centres = family.moment_centres(raw)
        if centres is None:
            return raw

        def about_centres():
            # the means from the raw moments are accurate; the scatter about them is not
            # where moment_centres says so: take the moments again, about those means
            moments = sum_blocks(lambda Xb, Rb: jax.lax.map(
                lambda rc: rc[0] @ family.features(Xb - rc[1]), (Rb.T, centres)))
            return family.m_step_from_moments(moments, None, None, centres)

        return jax.lax.cond(jnp.any(centres != 0), about_centres, lambda: raw)
