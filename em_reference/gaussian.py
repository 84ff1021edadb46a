"""Gaussian mixture: log densities, sufficient statistics and the (MAP-)EM M-step, by hand.

Shapes: X (N, D); weights (K,); means (K, D); covariances full (K, D, D), tied (D, D),
diag (K, D), spherical (K,) (scikit-learn's conventions); precisions_cholesky the same shapes
(for full/tied the upper-triangular P with P P^T = Sigma^-1, for diag/spherical 1/sqrt(var)).

Two ways to the (N, K) log densities, checked against each other in the tests:

* ``log_joint_matrix`` (the public function, used by predict/score): the Cholesky factor of the
  precision makes the Mahalanobis term ||X P_k - mu_k P_k||^2, with no matrix inverse and no
  cancellation.
* the EM loop's fast path (``GaussianFamily.block_log_joint``): a Gaussian is an exponential
  family, log pi_k + log N(x | mu_k, Sigma_k) = T(x) . eta_k with features T(x) = (1, x, the
  quadratic terms), so the E-step is one (C, F) x (F, K) product and the sufficient statistics
  (N_k from the constant feature) are one (K, C) x (C, F) product against the same T(X) chunk
  (``features``). The expansion x'Lx - 2 mu'Lx + mu'L mu cancels for tight components far
  from the data's centre, harmlessly in float64 (the estimator centres the data) but not in
  float32: full and tied covariances in float32 keep the Cholesky form (as scikit-learn and
  gmmx do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from em_reference import config  # noqa: F401  (float64)
from em_reference.priors import GaussianMixturePrior

LOG_2PI = math.log(2.0 * math.pi)


class GaussianParams(NamedTuple):
    """weights (K,), means (K, D), covariances (shape by covariance type)."""

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array


class GaussianStats(NamedTuple):
    """Weighted sufficient statistics of one E-step: sums over samples, so chunks add up.

    nk (K,) = sum_n w_n r_nk; sx (K, D) = sum_n w_n r_nk x_n; sxx = sum_n w_n r_nk x_n x_n^T
    as (K, D, D) for full, (D, D) summed over components for tied, and its diagonal (K, D) for
    diag and spherical.
    """

    nk: jax.Array
    sx: jax.Array
    sxx: jax.Array


def precisions_cholesky(covariances, covariance_type):
    """Cholesky factors of the precisions (same shapes as covariances)."""
    if covariance_type in ("full", "tied"):
        chol = jnp.linalg.cholesky(covariances)
        eye = jnp.broadcast_to(jnp.eye(covariances.shape[-1], dtype=covariances.dtype),
                               covariances.shape)
        return jnp.swapaxes(jax.scipy.linalg.solve_triangular(chol, eye, lower=True), -1, -2)
    return 1.0 / jnp.sqrt(covariances)


def log_gaussian_prob(X, means, prec_chol, covariance_type):
    """log N(x_n | mu_k, Sigma_k) for every sample and component: (N, K)."""
    n, d = X.shape
    if covariance_type == "full":
        cols = []
        for k in range(means.shape[0]):
            y = X @ prec_chol[k] - means[k] @ prec_chol[k]
            cols.append(jnp.sum(y * y, axis=1))
        maha = jnp.stack(cols, axis=1)
        log_det = jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)
    elif covariance_type == "tied":
        xp, mp = X @ prec_chol, means @ prec_chol
        maha = (jnp.sum(xp * xp, axis=1)[:, None] - 2.0 * xp @ mp.T
                + jnp.sum(mp * mp, axis=1)[None, :])
        log_det = jnp.sum(jnp.log(jnp.diag(prec_chol)))
    elif covariance_type == "diag":
        prec = prec_chol**2
        maha = ((X * X) @ prec.T - 2.0 * X @ (means * prec).T
                + jnp.sum(means**2 * prec, axis=1)[None, :])
        log_det = jnp.sum(jnp.log(prec_chol), axis=1)
    else:  # spherical
        prec = prec_chol**2
        maha = (jnp.sum(X * X, axis=1)[:, None] - 2.0 * X @ means.T
                + jnp.sum(means**2, axis=1)[None, :]) * prec[None, :]
        log_det = d * jnp.log(prec_chol)
    # the expanded forms can round a true zero to a tiny negative number
    maha = jnp.maximum(maha, 0.0)
    return -0.5 * (d * LOG_2PI + maha) + log_det


def log_joint_matrix(X, params, covariance_type):
    """log pi_k + log N(x_n | mu_k, Sigma_k): (N, K). X (N, D)."""
    prec_chol = precisions_cholesky(params.covariances, covariance_type)
    return jnp.log(params.weights)[None, :] + log_gaussian_prob(
        X, params.means, prec_chol, covariance_type)


def log_likelihood(X, params, covariance_type, sample_weight=None):
    """log p(X | params) = sum_n w_n log sum_k pi_k N(x_n | mu_k, Sigma_k) (all constants)."""
    X = jnp.atleast_2d(jnp.asarray(X).T).T  # (N,) -> (N, 1)
    params = GaussianParams(*map(jnp.asarray, params))
    per_sample = jax.scipy.special.logsumexp(log_joint_matrix(X, params, covariance_type), axis=1)
    if sample_weight is None:
        return jnp.sum(per_sample)
    return jnp.sum(jnp.asarray(sample_weight) * per_sample)


def sufficient_stats(X, weighted_resp, covariance_type):
    """Sufficient statistics from responsibilities already multiplied by sample weights.

    X (N, D); weighted_resp (N, K) = w_n r_nk. Second moments are weighted Gram matrices.
    The EM loop calls this on chunks of rows (loop.e_pass), which bounds the temporaries.
    """
    nk = jnp.sum(weighted_resp, axis=0)
    sx = weighted_resp.T @ X
    if covariance_type == "full":
        # one (N, K*D) x (N, D) product: fast, and only (K, N, D)-sized on a chunk of rows
        n, k = weighted_resp.shape
        z = (weighted_resp[:, :, None] * X[:, None, :]).reshape(n, -1)
        sxx = (z.T @ X).reshape(k, X.shape[1], X.shape[1])
    elif covariance_type == "tied":
        sxx = (X * jnp.sum(weighted_resp, axis=1, keepdims=True)).T @ X
    else:
        sxx = weighted_resp.T @ (X * X)
    return GaussianStats(nk, sx, sxx)


def features(X, covariance_type):
    """Sufficient-statistic features T(X): (N, 1 + D + Q).

    Columns: a constant 1, X, then x_i x_j for i <= j (Q = D(D+1)/2) for full and tied
    covariances, or x_d^2 (Q = D) for diag and spherical.
    """
    ones = jnp.ones((X.shape[0], 1), X.dtype)
    if covariance_type in ("full", "tied"):
        # row by row of the upper triangle (np.triu_indices order): static slices times a
        # column, which XLA vectorises; a gather X[:, rows] * X[:, cols] runs ~2x slower
        d = X.shape[1]
        return jnp.concatenate([ones, X] + [X[:, i:i + 1] * X[:, i:] for i in range(d)], axis=1)
    return jnp.concatenate([ones, X, X * X], axis=1)


def natural_parameters(params, covariance_type):
    """eta (1 + D + Q, K) with log pi_k + log N(x | mu_k, Sigma_k) = T(x) @ eta[:, k] for
    T = ``features``: eta_k = (c_k, Lambda_k mu_k, the quadratic coefficients -Lambda_ii / 2 and
    -Lambda_ij for i < j), c_k = log pi_k + log|P_k| - D log(2 pi) / 2 - mu_k' Lambda_k mu_k / 2."""
    k, d = params.means.shape
    prec_chol = precisions_cholesky(params.covariances, covariance_type)
    if covariance_type in ("full", "tied"):
        prec = prec_chol @ jnp.swapaxes(prec_chol, -1, -2)
        prec = jnp.broadcast_to(prec, (k, d, d))  # tied: one matrix for every component
        rows, cols = np.triu_indices(d)
        quad = prec[:, rows, cols] * np.where(rows == cols, -0.5, -1.0)
        linear = jnp.einsum("kde,ke->kd", prec, params.means)
        log_det = jnp.sum(jnp.log(jnp.diagonal(jnp.broadcast_to(prec_chol, (k, d, d)),
                                               axis1=1, axis2=2)), axis=1)
    else:
        prec = jnp.broadcast_to((prec_chol**2).reshape(k, -1), (k, d))  # spherical: (K, 1)
        quad = -0.5 * prec
        linear = prec * params.means
        log_det = 0.5 * jnp.sum(jnp.log(prec), axis=1)
    const = (jnp.log(params.weights) + log_det - 0.5 * d * LOG_2PI
             - 0.5 * jnp.sum(linear * params.means, axis=1))
    return jnp.concatenate([const[:, None], linear, quad], axis=1).T


def stats_from_moments(moments, covariance_type):
    """GaussianStats from moments (K, 1 + D + Q) = sum_n w_n r_nk T(x_n) (``features`` order)."""
    n_feat = moments.shape[1] - 1
    d = n_feat // 2 if covariance_type in ("diag", "spherical") else int(
        (math.isqrt(8 * n_feat + 9) - 3) // 2)  # n_feat = D + D(D+1)/2
    nk, sx, quad = moments[:, 0], moments[:, 1:d + 1], moments[:, d + 1:]
    if covariance_type in ("full", "tied"):
        if covariance_type == "tied":
            quad = jnp.sum(quad, axis=0, keepdims=True)
        rows, cols = np.triu_indices(d)
        sxx = jnp.zeros((quad.shape[0], d, d), quad.dtype).at[:, rows, cols].set(quad)
        sxx = sxx.at[:, cols, rows].set(quad)
        if covariance_type == "tied":
            sxx = sxx[0]
    else:
        sxx = quad
    return GaussianStats(nk, sx, sxx)


@dataclass(frozen=True)
class GaussianFamily:
    """What the generic EM loop needs to know about Gaussian mixtures (hashable: jit-static).

    covariance_type: "full" | "tied" | "diag" | "spherical"; reg_covar: added to covariance
    diagonals after every M-step; fixed: names of parameters the M-step leaves unchanged
    (e.g. ("weights", "covariances") turns hard EM into k-means).
    """

    covariance_type: str = "full"
    reg_covar: float = 1e-6
    fixed: tuple = ()

    def log_joint_matrix(self, X, params):
        return log_joint_matrix(X, params, self.covariance_type)

    def sufficient_stats(self, X, weighted_resp):
        return sufficient_stats(X, weighted_resp, self.covariance_type)

    # the EM loop's fast path: prepare once per E-step, then block by block
    def linear_log_joint(self, dtype):
        """True when ``block_log_joint(feats, prepared)`` is ``feats @ prepared`` (prepared:
        the natural parameters (F, K)) and the stats are ``stats_from_moments(R^T feats)``:
        always in float64; float32 full and tied keep the Cholesky form (module docstring)."""
        return self.covariance_type in ("diag", "spherical") or dtype == jnp.float64

    def prepare(self, params):
        """Parameter-only quantities of one E-step, computed once outside the chunk loop."""
        if self.linear_log_joint(params.means.dtype):
            return natural_parameters(params, self.covariance_type)
        return (jnp.log(params.weights), params.means,
                precisions_cholesky(params.covariances, self.covariance_type))

    def block_features(self, X):
        """T(X) (C, 1 + D + Q) for a block of rows X (C, D)."""
        return features(X, self.covariance_type)

    def block_log_joint(self, feats, prepared):
        """log joint (C, K) for a block of rows, from their features T(X) (C, 1 + D + Q)."""
        if self.linear_log_joint(feats.dtype):
            return feats @ prepared
        log_weights, means, prec_chol = prepared
        X = feats[:, 1: means.shape[1] + 1]  # the Cholesky form works on x itself
        return log_weights[None, :] + log_gaussian_prob(X, means, prec_chol,
                                                        self.covariance_type)

    def stats_from_moments(self, moments):
        """GaussianStats (the same as ``sufficient_stats``) from moments (K, F) = R^T T(X)."""
        return stats_from_moments(moments, self.covariance_type)

    def feature_width(self, n_features):
        """F, the number of features T(x) per row: 1 + D + D(D+1)/2, or 1 + 2D (diag, sph.)."""
        d = n_features
        return 1 + d + (d * (d + 1) // 2 if self.covariance_type in ("full", "tied") else d)

    def log_prior(self, params, prior):
        return prior.log_prob(params)

    def m_step(self, stats, old, prior):
        """Maximise E_q[log p(X, Z | theta)] (+ log p(theta) when prior is given)."""
        new = m_step(stats, self.covariance_type, self.reg_covar, prior)
        if old is None:  # nothing to hold fixed (the initial M-step)
            return new
        return GaussianParams(*(getattr(old, name) if name in self.fixed else getattr(new, name)
                                for name in GaussianParams._fields))


def m_step(stats: GaussianStats, covariance_type, reg_covar, prior: GaussianMixturePrior | None):
    """Closed-form (MAP-)M-step from sufficient statistics.

    MLE: pi_k = N_k / N, mu_k = S_x / N_k, Sigma_k = weighted scatter / N_k (+ reg_covar), as
    scikit-learn. With the prior of em_reference.priors (alpha, m0, kappa0, nu0, Psi0):
      pi_k    = (N_k + alpha_k - 1) / (N + sum(alpha) - K)
      mu_k    = (S_x + kappa0 m0) / (N_k + kappa0)
      full:   Sigma_k = (Psi0 + C_k + kappa0 (mu_k - m0)(mu_k - m0)^T) / (N_k + nu0 + D + 2)
      tied:   Sigma   = (Psi0 + sum_k [C_k + kappa0 (mu_k - m0)(..)^T]) / (N + K + nu0 + D + 1)
      diag:   var_kd  = (Psi0_d + C_kd + kappa0 (mu_kd - m0_d)^2) / (N_k + nu0 + 3)
      sph.:   var_k   = (Psi0 + tr C_k + kappa0 ||mu_k - m0||^2) / (D N_k + D + nu0 + 2)
    where C_k = sum_n w_n r_nk (x_n - mu_k)(x_n - mu_k)^T is the scatter about the new mean.
    """
    # sklearn's guard: an emptied component keeps a finite mean and a reg_covar covariance
    nk = stats.nk + 10.0 * jnp.finfo(stats.nk.dtype).eps
    n_total = jnp.sum(stats.nk)
    k, d = stats.sx.shape
    if prior is None:
        weights = nk / jnp.sum(nk)
        means = stats.sx / nk[:, None]
    else:
        alpha = jnp.broadcast_to(prior.weight_concentration, nk.shape)
        # with alpha < 1 the mode can sit on the simplex boundary; keep it just inside
        numer = jnp.maximum(stats.nk + alpha - 1.0, 10.0 * jnp.finfo(nk.dtype).eps)
        weights = numer / jnp.sum(numer)
        means = (stats.sx + prior.mean_precision * prior.mean_prior) / (
            nk + prior.mean_precision)[:, None]

    if covariance_type == "full":
        # C_k = Sxx - Sx mu^T - mu Sx^T + N_k mu mu^T
        outer_sx_mu = stats.sx[:, :, None] * means[:, None, :]
        scatter = (stats.sxx - outer_sx_mu - jnp.swapaxes(outer_sx_mu, 1, 2)
                   + nk[:, None, None] * means[:, :, None] * means[:, None, :])
        if prior is None:
            cov = scatter / nk[:, None, None]
        else:
            dm = means - prior.mean_prior
            cov = (prior.covariance_prior + scatter
                   + prior.mean_precision * dm[:, :, None] * dm[:, None, :]) / (
                nk + prior.degrees_of_freedom + d + 2.0)[:, None, None]
        cov = cov + reg_covar * jnp.eye(d, dtype=cov.dtype)
        cov = 0.5 * (cov + jnp.swapaxes(cov, 1, 2))
    elif covariance_type == "tied":
        # sum_k C_k about the new means
        sx_mu = stats.sx.T @ means
        scatter = stats.sxx - sx_mu - sx_mu.T + (means * nk[:, None]).T @ means
        if prior is None:
            cov = scatter / n_total
        else:
            dm = means - prior.mean_prior
            cov = (prior.covariance_prior + scatter + prior.mean_precision * dm.T @ dm) / (
                n_total + k + prior.degrees_of_freedom + d + 1.0)
        cov = cov + reg_covar * jnp.eye(d, dtype=cov.dtype)
        cov = 0.5 * (cov + cov.T)
    else:  # diag and spherical share the per-dimension scatter
        scatter = stats.sxx - 2.0 * means * stats.sx + nk[:, None] * means**2
        if covariance_type == "diag":
            if prior is None:
                cov = scatter / nk[:, None]
            else:
                dm = means - prior.mean_prior
                cov = (prior.covariance_prior + scatter + prior.mean_precision * dm**2) / (
                    nk + prior.degrees_of_freedom + 3.0)[:, None]
        else:
            if prior is None:
                cov = jnp.mean(scatter / nk[:, None], axis=1)
            else:
                dm = means - prior.mean_prior
                cov = (prior.covariance_prior + jnp.sum(scatter, axis=1)
                       + prior.mean_precision * jnp.sum(dm**2, axis=1)) / (
                    d * nk + d + prior.degrees_of_freedom + 2.0)
        # expanded moments can round a variance below zero for a (near-)constant column
        cov = jnp.maximum(cov, 0.0) + reg_covar
    return GaussianParams(weights, means, cov)


def n_parameters(n_components, n_features, covariance_type):
    """Number of free parameters (for BIC/AIC), as scikit-learn counts them."""
    k, d = n_components, n_features
    cov = {"full": k * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": k * d,
           "spherical": k}[covariance_type]
    return int(cov + k * d + k - 1)
