"""Gaussian mixture: log densities, the (MAP-)M-step and the fast kernel's features, by hand.

Shapes: X (N, D); weights (K,); means (K, D); covariances full (K, D, D), tied (D, D),
diag (K, D), spherical (K,) (scikit-learn's conventions); precisions_cholesky the same shapes
(for full/tied the upper-triangular P with P P^T = Sigma^-1, for diag/spherical 1/sqrt(var)).

The textbook path (Bishop, PRML sec. 9.2.2) reads the formulas directly:

* ``log_joint_matrix``: log pi_k + log N(x_n | mu_k, Sigma_k), the Mahalanobis term as
  ||(x_n - mu_k) P_k||^2 from the difference x_n - mu_k (no cancellation between large terms);
* ``GaussianFamily.component_m_step``: mu_k = sum_n r_nk x_n / N_k and
  Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k (+ the prior's terms), again from
  differences.

The fast kernel (em_reference.fast) uses that a Gaussian is an exponential family:
log pi_k + log N(x | mu_k, Sigma_k) = T(x) . eta_k with features T(x) = (1, x, the quadratic
terms) (``features``, ``natural_parameters``), and reads the M-step from the moments
R^T T(X) (``stats_from_moments``, ``m_step``). The expansion x'Lx - 2 mu'Lx + mu'L mu cancels
for tight components far from the data's centre: harmless in float64 on centred data, not in
float32, where full and tied covariances keep the Cholesky form (as scikit-learn and gmmx do).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from em_reference import config  # noqa: F401  (float64)
from em_reference import tuning
from em_reference.family import FamilyBase, nk_guard, weights_update
from em_reference.priors import COVARIANCE_TYPES, GaussianMixturePrior

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


def covariance_shape(covariance_type, n_components, n_features):
    k, d = n_components, n_features
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d),
            "spherical": (k,)}[covariance_type]


def precisions_cholesky(covariances, covariance_type):
    """Cholesky factors of the precisions (same shapes as covariances)."""
    if covariance_type in ("full", "tied"):
        chol = jnp.linalg.cholesky(covariances)
        eye = jnp.broadcast_to(jnp.eye(covariances.shape[-1], dtype=covariances.dtype),
                               covariances.shape)
        return jnp.swapaxes(jax.scipy.linalg.solve_triangular(chol, eye, lower=True), -1, -2)
    return 1.0 / jnp.sqrt(covariances)


# ------------------------------------------------------------------ the textbook formulas
def log_gaussian_prob(X, means, prec_chol, covariance_type):
    """log N(x_n | mu_k, Sigma_k) for every sample and component: (N, K).

    One component at a time (lax.map: no (K, N, D) temporary), from the differences
    x_n - mu_k, so points and means far from the origin lose nothing to cancellation.
    """
    d = X.shape[1]
    k = means.shape[0]
    if covariance_type == "tied":
        prec_chol = jnp.broadcast_to(prec_chol, (k, d, d))
    elif covariance_type == "spherical":
        prec_chol = jnp.broadcast_to(prec_chol[:, None], (k, d))

    def mahalanobis(mean_and_chol):
        mean, pc = mean_and_chol
        diff = X - mean
        y = diff @ pc if pc.ndim == 2 else diff * pc
        return jnp.sum(y * y, axis=1)

    maha = jax.lax.map(mahalanobis, (means, prec_chol)).T  # (N, K)
    if covariance_type in ("full", "tied"):
        log_det = jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)
    else:
        log_det = jnp.sum(jnp.log(prec_chol), axis=1)
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


def mean_update(nk, sx, prior, origin=0.0):
    """mu_k = S_x / N_k (MLE) or (S_x + kappa0 m0) / (N_k + kappa0) (MAP). sx (K, D).

    With sx = sum_n w_n r_nk (x_n - c_k) taken about per-component points origin = c (K, D),
    the same update returns mu_k - c_k (the fast kernel's moments about the current means)."""
    if prior is None:
        return sx / nk[:, None]
    return (sx + prior.mean_precision * (prior.mean_prior - origin)) / (
        nk + prior.mean_precision)[:, None]


def scatter(X, weighted_resp, means, covariance_type):
    """C_k = sum_n w_n r_nk (x_n - mu_k)(x_n - mu_k)^T about the given means, from the
    differences: (K, D, D) for full, the sum over k (D, D) for tied, the diagonal (K, D) for
    diag and spherical. One component at a time (no (K, N, D) temporary)."""

    def one(resp_and_mean):
        resp, mean = resp_and_mean
        diff = X - mean
        if covariance_type in ("full", "tied"):
            return (diff * resp[:, None]).T @ diff
        return resp @ (diff * diff)

    per_component = jax.lax.map(one, (weighted_resp.T, means))
    return jnp.sum(per_component, axis=0) if covariance_type == "tied" else per_component


def covariance_update(nk, scatter_about_means, means, covariance_type, reg_covar, prior):
    """The covariances maximising the expected complete-data log joint, given the new means
    and the scatter C_k about them, with the regulariser r = reg_covar counted as EM's
    objective counts it (``log_regulariser``: each point's log density is penalised by
    r tr(Sigma_k^-1) / 2, the expected Mahalanobis term of an isotropic N(0, r I) jitter),
    so that r N_k I joins the scatter.

    MLE: Sigma_k = (C_k + r N_k I) / N_k = C_k / N_k + r I, scikit-learn's update. With the
    prior of em_reference.priors (alpha, m0, kappa0, nu0, Psi0) and d_k = mu_k - m0:
      full:   Sigma_k = (Psi0 + C_k + kappa0 d_k d_k^T + r N_k I) / (N_k + nu0 + D + 2)
      tied:   Sigma   = (Psi0 + sum_k [C_k + kappa0 d_k d_k^T] + r N I) / (N + K + nu0 + D + 1)
      diag:   var_kd  = (Psi0_d + C_kd + kappa0 d_kd^2 + r N_k) / (N_k + nu0 + 3)
      sph.:   var_k   = (Psi0 + tr C_k + kappa0 ||d_k||^2 + r D N_k) / (D N_k + D + nu0 + 2)
    """
    k, d = means.shape
    c = scatter_about_means
    r = reg_covar
    if covariance_type == "full":
        if prior is None:
            cov = c / nk[:, None, None] + r * jnp.eye(d, dtype=c.dtype)
        else:
            dm = means - prior.mean_prior
            cov = (prior.covariance_prior + c
                   + prior.mean_precision * dm[:, :, None] * dm[:, None, :]
                   + r * nk[:, None, None] * jnp.eye(d, dtype=c.dtype)) / (
                nk + prior.degrees_of_freedom + d + 2.0)[:, None, None]
        return 0.5 * (cov + jnp.swapaxes(cov, 1, 2))
    if covariance_type == "tied":
        n_total = jnp.sum(nk)
        if prior is None:
            cov = c / n_total + r * jnp.eye(d, dtype=c.dtype)
        else:
            dm = means - prior.mean_prior
            cov = (prior.covariance_prior + c + prior.mean_precision * dm.T @ dm
                   + r * n_total * jnp.eye(d, dtype=c.dtype)) / (
                n_total + k + prior.degrees_of_freedom + d + 1.0)
        return 0.5 * (cov + cov.T)
    # moments expanded about the mean can round a scatter below zero (a constant column)
    c = jnp.maximum(c, 0.0)
    if covariance_type == "diag":
        if prior is None:
            return c / nk[:, None] + r
        dm = means - prior.mean_prior
        return (prior.covariance_prior + c + prior.mean_precision * dm**2 + r * nk[:, None]) / (
            nk + prior.degrees_of_freedom + 3.0)[:, None]
    if prior is None:
        return jnp.mean(c / nk[:, None], axis=1) + r
    dm = means - prior.mean_prior
    return (prior.covariance_prior + jnp.sum(c, axis=1)
            + prior.mean_precision * jnp.sum(dm**2, axis=1) + r * d * nk) / (
        d * nk + d + prior.degrees_of_freedom + 2.0)


# ------------------------------------------------------------------ raw moments (fast kernel)
def sufficient_stats(X, weighted_resp, covariance_type):
    """Sufficient statistics from responsibilities already multiplied by sample weights.

    X (N, D); weighted_resp (N, K) = w_n r_nk. Second moments are weighted Gram matrices.
    """
    nk = jnp.sum(weighted_resp, axis=0)
    sx = weighted_resp.T @ X
    if covariance_type == "full":
        # one (N, K*D) x (N, D) product: only (K, N, D)-sized on a chunk of rows
        n, k = weighted_resp.shape
        z = (weighted_resp[:, :, None] * X[:, None, :]).reshape(n, -1)
        sxx = (z.T @ X).reshape(k, X.shape[1], X.shape[1])
    elif covariance_type == "tied":
        sxx = (X * jnp.sum(weighted_resp, axis=1, keepdims=True)).T @ X
    else:
        sxx = weighted_resp.T @ (X * X)
    return GaussianStats(nk, sx, sxx)


def scatter_from_stats(stats, means, nk, covariance_type):
    """C_k about ``means`` from raw moments: Sxx - Sx mu^T - mu Sx^T + N_k mu mu^T (the
    fast kernel's form of ``scatter``; it loses ~(|mu| / sd)^2 eps, so data are centred)."""
    if covariance_type == "full":
        outer_sx_mu = stats.sx[:, :, None] * means[:, None, :]
        return (stats.sxx - outer_sx_mu - jnp.swapaxes(outer_sx_mu, 1, 2)
                + nk[:, None, None] * means[:, :, None] * means[:, None, :])
    if covariance_type == "tied":
        sx_mu = stats.sx.T @ means
        return stats.sxx - sx_mu - sx_mu.T + (means * nk[:, None]).T @ means
    return stats.sxx - 2.0 * means * stats.sx + nk[:, None] * means**2


def m_step(stats: GaussianStats, covariance_type, reg_covar, prior: GaussianMixturePrior | None):
    """Closed-form (MAP-)M-step from sufficient statistics (weights by
    family.weights_update, means by ``mean_update``, covariances by ``covariance_update``)."""
    nk = stats.nk + nk_guard(stats.nk.dtype)
    means = mean_update(nk, stats.sx, prior)
    cov = covariance_update(nk, scatter_from_stats(stats, means, nk, covariance_type), means,
                            covariance_type, reg_covar, prior)
    return GaussianParams(weights_update(stats.nk, prior), means, cov)


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


def feature_width(n_features, covariance_type):
    """F: 1 + D + D(D+1)/2 (full, tied) or 1 + 2D (diag, spherical)."""
    d = n_features
    return 1 + d + (d * (d + 1) // 2 if covariance_type in ("full", "tied") else d)


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


def n_parameters(n_components, n_features, covariance_type):
    """Number of free parameters (for BIC/AIC), as scikit-learn counts them."""
    k, d = n_components, n_features
    cov = {"full": k * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": k * d,
           "spherical": k}[covariance_type]
    return int(cov + k * d + k - 1)


# ------------------------------------------------------------------ log-Cholesky coordinates
def _log_cholesky(cov):
    """Lower Cholesky factor of (..., D, D) with its diagonal replaced by its log."""
    low = jnp.linalg.cholesky(cov)
    diag = jnp.diagonal(low, axis1=-2, axis2=-1)
    return low + (jnp.log(diag) - diag)[..., None] * jnp.eye(cov.shape[-1], dtype=cov.dtype)


def _from_log_cholesky(u):
    """Inverse of ``_log_cholesky`` (reads the lower triangle only)."""
    low = jnp.tril(u)
    diag = jnp.diagonal(low, axis1=-2, axis2=-1)
    low = low + (jnp.exp(diag) - diag)[..., None] * jnp.eye(u.shape[-1], dtype=u.dtype)
    return low @ jnp.swapaxes(low, -1, -2)


@dataclass(frozen=True)
class GaussianFamily(FamilyBase):
    """Gaussian mixtures for em_reference.family.MixtureFamily (hashable: jit-static).

    covariance_type: "full" | "tied" | "diag" | "spherical"; reg_covar: added to covariance
    diagonals by every M-step; fixed: names of parameters the M-step leaves unchanged
    (e.g. ("weights", "covariances") turns hard EM into k-means).
    """

    covariance_type: str = "full"
    reg_covar: float = 1e-6
    fixed: tuple = ()

    params_class: ClassVar[type] = GaussianParams
    prior_class: ClassVar[type] = GaussianMixturePrior

    def __post_init__(self):
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                             f"got {self.covariance_type!r}")

    # ---- the textbook path
    def log_regulariser(self, params):
        """-reg_covar tr(Sigma_k^-1) / 2 per component: with it in EM's log joint, the M-step
        Sigma_k = C_k / N_k + reg_covar I (scikit-learn's) is the exact maximiser of EM's
        objective, which then never decreases; it is sum_n log sum_k pi_k N(x_n | mu_k,
        Sigma_k) exp(-reg_covar tr(Sigma_k^-1) / 2), a lower bound on the log-likelihood equal
        to it at reg_covar = 0."""
        if self.reg_covar == 0.0:
            return jnp.zeros_like(params.weights)
        k = params.weights.shape[0]
        pc = precisions_cholesky(params.covariances, self.covariance_type)
        d = params.means.shape[1]
        if self.covariance_type == "full":
            trace = jnp.sum(pc**2, axis=(1, 2))
        elif self.covariance_type == "tied":
            trace = jnp.full(k, jnp.sum(pc**2))
        elif self.covariance_type == "diag":
            trace = jnp.sum(pc**2, axis=1)
        else:
            trace = d * pc**2
        return -0.5 * self.reg_covar * trace

    def unregularised(self):
        return dataclasses.replace(self, reg_covar=0.0)

    def log_component_densities(self, X, params):
        prec_chol = precisions_cholesky(params.covariances, self.covariance_type)
        return log_gaussian_prob(X, params.means, prec_chol, self.covariance_type)

    def component_m_step(self, X, weighted_resp, nk, prior):
        means = mean_update(nk, weighted_resp.T @ X, prior)
        c = scatter(X, weighted_resp, means, self.covariance_type)
        return {"means": means, "covariances": covariance_update(
            nk, c, means, self.covariance_type, self.reg_covar, prior)}

    # ---- the fast kernel
    def features(self, X):
        return features(X, self.covariance_type)

    def feature_width(self, n_features):
        return feature_width(n_features, self.covariance_type)

    def natural_parameters(self, params):
        return natural_parameters(params, self.covariance_type)

    def component_m_step_from_moments(self, moments, nk, prior, centres=None):
        """centres (K, D): the points the moments were taken about (``moment_centres``);
        None: the origin. The scatter is then read about mu_k - c_k, which is small."""
        stats = stats_from_moments(moments, self.covariance_type)
        origin = 0.0 if centres is None else centres
        shift = mean_update(nk, stats.sx, prior, origin)  # mu_k - c_k
        c = scatter_from_stats(stats, shift, nk, self.covariance_type)
        means = shift + origin
        return {"means": means, "covariances": covariance_update(
            nk, c, means, self.covariance_type, self.reg_covar, prior)}

    def expansion_condition(self, params):
        """max_k mu_k' Sigma_k^-1 mu_k: how many of its own variances the farthest component
        mean is from the origin (the data's centre); the expanded quadratic and the scatter
        from raw moments lose about eps times this (tuning.EXPANSION_MAX_LOSS_POWER)."""
        k, d = params.means.shape
        pc = precisions_cholesky(params.covariances, self.covariance_type)
        if self.covariance_type in ("full", "tied"):
            y = jnp.einsum("kd,kde->ke", params.means, jnp.broadcast_to(pc, (k, d, d)))
        else:
            y = params.means * jnp.broadcast_to(pc.reshape(k, -1), (k, d))
        return jnp.max(jnp.sum(y * y, axis=1))

    def moment_centres(self, params):
        """(K, D) the points the fast kernel takes each component's moments about: zeros (the
        origin: the one-product expanded form) while ``expansion_condition`` keeps the loss
        below eps ** tuning.EXPANSION_MAX_LOSS_POWER, else the current means (the E-step in
        the difference form, moments of x - mu_k). Non-finite parameters count as
        ill-conditioned (a scatter that cancelled below zero gives a NaN factor)."""
        eps = jnp.finfo(params.means.dtype).eps
        limit = eps ** (tuning.EXPANSION_MAX_LOSS_POWER - 1.0)
        well = self.expansion_condition(params) <= limit  # False for NaN
        return jnp.where(well, 0.0, jax.lax.stop_gradient(params.means))

    def rows_from_features(self, feats, n_features):
        """x itself from its features T(x) (C, F): columns 1 .. D."""
        return feats[:, 1: n_features + 1]

    def linear_log_joint(self, dtype):
        """The expanded quadratic T(x) @ eta always in float64; float32 full and tied keep
        the Cholesky form (module docstring)."""
        return self.covariance_type in ("diag", "spherical") or dtype == jnp.float64

    def prepare(self, params):
        if self.linear_log_joint(params.means.dtype):
            return self.em_natural_parameters(params)
        return (jnp.log(params.weights) + self.log_regulariser(params), params.means,
                precisions_cholesky(params.covariances, self.covariance_type))

    def block_log_joint(self, feats, prepared):
        if self.linear_log_joint(feats.dtype):
            return feats @ prepared
        log_weights, means, prec_chol = prepared
        X = self.rows_from_features(feats, means.shape[1])  # the Cholesky form works on x
        return log_weights[None, :] + log_gaussian_prob(X, means, prec_chol,
                                                        self.covariance_type)

    # ---- geometry: weights as log pi, means in units of the data's spread, covariances as
    # the log-Cholesky factor of the covariance in those units
    def to_unconstrained(self, params, scale):
        ct, cov = self.covariance_type, params.covariances
        if ct in ("full", "tied"):
            u_cov = _log_cholesky(cov / jnp.outer(scale, scale))
        elif ct == "diag":
            u_cov = jnp.log(cov / scale**2)
        else:
            u_cov = jnp.log(cov / jnp.mean(scale**2))
        return GaussianParams(self._weights_to_unconstrained(params.weights),
                              params.means / scale, u_cov)

    def from_unconstrained(self, u, scale):
        ct = self.covariance_type
        if ct in ("full", "tied"):
            cov = _from_log_cholesky(u.covariances) * jnp.outer(scale, scale)
        elif ct == "diag":
            cov = jnp.exp(u.covariances) * scale**2
        else:
            cov = jnp.exp(u.covariances) * jnp.mean(scale**2)
        return GaussianParams(self._weights_from_unconstrained(u.weights), u.means * scale, cov)

    # ---- bookkeeping
    def n_parameters(self, n_components, n_features):
        return n_parameters(n_components, n_features, self.covariance_type)

    def data_center(self, X, sample_weight):
        # EM runs on data relative to their mean: scatter matrices from raw moments lose
        # digits when the mean is far from zero compared with the spread. A matrix-vector
        # product: np.average would make an (N, D) temporary X * w
        return (sample_weight @ X) / np.sum(sample_weight)

    def data_scale(self, X, sample_weight):
        """The weighted standard deviation per feature (1 where a feature is constant), from
        differences to the mean, a block of rows at a time (no full-size temporary)."""
        w = sample_weight / np.sum(sample_weight)
        mean = w @ X
        var = sum(w[i:i + 2**16] @ (X[i:i + 2**16] - mean) ** 2
                  for i in range(0, X.shape[0], 2**16))
        return np.where(var > 0, np.sqrt(var), 1.0)

    def translate(self, obj, shift):
        """Move means (GaussianParams, or a dict of some of its fields) or mean_prior
        (GaussianMixturePrior) by shift (D,)."""
        if isinstance(obj, GaussianMixturePrior):
            return dataclasses.replace(obj, mean_prior=obj.mean_prior + shift)
        if isinstance(obj, dict):
            return {**obj, "means": obj["means"] + shift} if "means" in obj else obj
        return obj._replace(means=obj.means + shift)
