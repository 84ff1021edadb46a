"""Gaussian components of variational Bayes (CAVI): Normal-Wishart factors, Bishop PRML 10.2.

The prior is em_reference.priors.GaussianMixturePrior (m0, kappa0, nu0, Psi0), read as a prior
on precisions Lambda = Sigma^-1:

    full:  Lambda_k ~ W(nu0, Psi0^-1)        (= Sigma_k ~ InverseWishart(nu0, Psi0))
           mu_k | Lambda_k ~ N(m0, (kappa0 Lambda_k)^-1)            (Bishop 10.40)
    tied:  one Lambda ~ W(nu0, Psi0^-1), mu_k | Lambda ~ N(m0, (kappa0 Lambda)^-1) for every k
    diag:  lambda_kd ~ Gamma(nu0/2, rate Psi0_d/2)  (= var_kd ~ InverseGamma(nu0/2, Psi0_d/2))
           mu_kd | lambda_kd ~ N(m0_d, 1/(kappa0 lambda_kd))
    sph.:  lambda_k ~ Gamma(nu0/2, rate Psi0/2)     (= var_k ~ InverseGamma(nu0/2, Psi0/2))
           mu_k | lambda_k ~ N(m0, I/(kappa0 lambda_k))

Each is conjugate, so the optimal q(mu, Lambda) given q(Z) has the prior's form: ``NormalWishart``
(mean_precision kappa_k, means m_k, degrees_of_freedom nu_k, scale Psi_k), with
q(Lambda_k) = W(nu_k, Psi_k^-1) (Gamma(nu_k/2, rate Psi_k/2) per precision for diag and
spherical) and q(mu_k | Lambda_k) = N(m_k, (kappa_k Lambda_k)^-1). Psi_k is Bishop's W_k^-1.
The update (``update``) is Bishop 10.60-10.63 from the statistics 10.51-10.53, with, for
x̄_k the weighted mean and C_k = N_k S_k the weighted scatter about it:

    kappa_k = kappa0 + N_k,   m_k = (kappa0 m0 + N_k x̄_k) / kappa_k
    full:  nu_k = nu0 + N_k,     Psi_k = Psi0 + C_k + kappa0 N_k / kappa_k (x̄_k - m0)(..)^T
    tied:  nu   = nu0 + N,       Psi   = Psi0 + sum_k [C_k + kappa0 N_k / kappa_k (x̄_k - m0)(..)^T]
    diag:  nu_k = nu0 + N_k,     Psi_kd = Psi0_d + C_k,dd + kappa0 N_k / kappa_k (x̄_kd - m0_d)^2
    sph.:  nu_k = nu0 + D N_k,   Psi_k = Psi0 + tr C_k + kappa0 N_k / kappa_k ||x̄_k - m0||^2

(N = sum_k N_k; the K mean priors and the K factors q(mu_k | Lambda) cancel in the tied
Lambda's degrees of freedom; a spherical precision sees D numbers per sample).

Expected log-likelihood of a sample (Bishop 10.64-10.65, all constants):

    E_q[log N(x | mu_k, Lambda_k^-1)] = E[log|Lambda_k|]/2 - D log(2 pi)/2 - D/(2 kappa_k)
                                        - (x - m_k)^T E[Lambda_k] (x - m_k)/2,
    E[Lambda_k] = nu_k Psi_k^-1 (diag: nu_k / Psi_kd, sph.: nu_k / Psi_k I).

How this relates to scikit-learn's BayesianGaussianMixture: the same model and the same updates
for "full" (and, trivially, "tied" with K = 1 and "diag" / "spherical" with D = 1). For D > 1
scikit-learn's "diag" and "spherical" evaluate E[log|Lambda_k|] and the bound with the
D-dimensional Wishart formulas (sum_i psi((nu_k - i + 1)/2), Gamma_D) although their precisions
are independent Gammas, and its "spherical" update counts each sample once (nu_k = nu0 + N_k,
Psi_k = Psi0 + tr C_k / D + ...) instead of D times; its "tied" is the full model with q(Lambda_k)
constrained to one shared factor (nu = nu0 + N/K, Psi = Psi0 + (C + ...)/K, the Wishart KL
counted K times), not the tied model above. Those are not coordinate-ascent steps on the ELBO of
the prior em_reference and the NumPyro models share, so the four types here follow the prior.

Shapes: X (N, D); statistics and factors as in ``GaussianStats`` / ``NormalWishart``. Loops
over components are ``lax.map``s: (N, D) temporaries, never (K, N, D).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from em_reference import config  # noqa: F401  (float64)
from em_reference.cavi import distributions as dists

LOG_2PI = math.log(2.0 * math.pi)


class GaussianStats(NamedTuple):
    """Bishop 10.51-10.53 with sample weights w_n: nk (K,) = sum_n w_n r_nk; means (K, D) = x̄_k;
    scatter C_k = sum_n w_n r_nk (x_n - x̄_k)(x_n - x̄_k)^T = N_k S_k as (K, D, D) for full,
    summed over k (D, D) for tied, the diagonal (K, D) for diag and spherical."""

    nk: jax.Array
    means: jax.Array
    scatter: jax.Array


class NormalWishart(NamedTuple):
    """q(mu_k, Lambda_k): mean_precision kappa (K,), means m (K, D), degrees_of_freedom nu (K,)
    (a scalar for tied), scale Psi: (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical."""

    mean_precision: jax.Array
    means: jax.Array
    degrees_of_freedom: jax.Array
    scale: jax.Array


def guarded_counts(nk):
    # scikit-learn's guard: an emptied component keeps a finite mean (multiplied by N_k ~ 0
    # wherever it enters the updates)
    return nk + 10.0 * jnp.finfo(nk.dtype).eps


def statistics(X, weighted_resp, covariance_type):
    """GaussianStats from X (N, D) and weighted responsibilities w_n r_nk (N, K); the scatter
    about each component's mean in a second pass (no cancellation)."""
    nk = jnp.sum(weighted_resp, axis=0)
    means = (weighted_resp.T @ X) / guarded_counts(nk)[:, None]

    def full_scatter(args):
        mean, wr = args
        diff = X - mean
        return (diff * wr[:, None]).T @ diff

    def diag_scatter(args):
        mean, wr = args
        return wr @ (X - mean) ** 2

    if covariance_type in ("full", "tied"):
        scatter = jax.lax.map(full_scatter, (means, weighted_resp.T))
        if covariance_type == "tied":
            scatter = jnp.sum(scatter, axis=0)
    else:
        scatter = jax.lax.map(diag_scatter, (means, weighted_resp.T))
    return GaussianStats(nk, means, scatter)


def update(stats, prior, covariance_type):
    """The optimal q(mu, Lambda) given the statistics of q(Z) (module docstring)."""
    m0, kappa0 = prior.mean_prior, prior.mean_precision
    nu0, psi0 = prior.degrees_of_freedom, prior.covariance_prior
    nk = stats.nk
    kappa = kappa0 + nk
    means = (kappa0 * m0 + nk[:, None] * stats.means) / kappa[:, None]
    diff = stats.means - m0
    coef = kappa0 * nk / kappa
    d = means.shape[1]
    if covariance_type == "full":
        nu = nu0 + nk
        scale = psi0 + stats.scatter + coef[:, None, None] * diff[:, :, None] * diff[:, None, :]
        scale = 0.5 * (scale + jnp.swapaxes(scale, 1, 2))
    elif covariance_type == "tied":
        nu = nu0 + jnp.sum(nk)
        scale = psi0 + stats.scatter + (coef[:, None] * diff).T @ diff
        scale = 0.5 * (scale + scale.T)
    elif covariance_type == "diag":
        nu = nu0 + nk
        scale = psi0 + stats.scatter + coef[:, None] * diff**2
    else:
        nu = nu0 + d * nk
        scale = psi0 + jnp.sum(stats.scatter, axis=1) + coef * jnp.sum(diff**2, axis=1)
    return NormalWishart(kappa, means, nu, scale)


# ---------------------------------------------------------------- expectations under q
class PrecisionExpectations(NamedTuple):
    """What the expectations need of q(Lambda): e_log_det (K,) = E[log|Lambda_k|];
    mean: E[Lambda_k] as (K, D, D) (full, tied broadcast) or its diagonal (K, D) (diag, sph.);
    root: R_k with E[Lambda_k] = R_k R_k^T, (K, D, D) upper triangular, or (K, D) diagonal."""

    e_log_det: jax.Array
    mean: jax.Array
    root: jax.Array


def _log_det_and_inverse_root(scale):
    """log|Psi| and P = L^-T (Psi = L L^T, so Psi^-1 = P P^T) for (..., D, D) scales."""
    chol = jnp.linalg.cholesky(scale)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    eye = jnp.broadcast_to(jnp.eye(scale.shape[-1], dtype=scale.dtype), scale.shape)
    inv_root = jnp.swapaxes(jax.scipy.linalg.solve_triangular(chol, eye, lower=True), -1, -2)
    return log_det, inv_root


def expected_precision(q, covariance_type):
    k, d = q.means.shape
    nu = q.degrees_of_freedom
    if covariance_type in ("full", "tied"):
        log_det, inv_root = _log_det_and_inverse_root(q.scale)
        e_log_det = dists.wishart_expected_log_det(nu, log_det, d)
        root = jnp.sqrt(nu)[..., None, None] * inv_root
        mean = root @ jnp.swapaxes(root, -1, -2)
        if covariance_type == "tied":
            e_log_det = jnp.broadcast_to(e_log_det, (k,))
            root, mean = (jnp.broadcast_to(a, (k, d, d)) for a in (root, mean))
        return PrecisionExpectations(e_log_det, mean, root)
    scale = q.scale if covariance_type == "diag" else jnp.broadcast_to(q.scale[:, None], (k, d))
    # per precision: a one-dimensional Wishart, i.e. Gamma(nu/2, rate Psi/2)
    e_log = dists.wishart_expected_log_det(nu[:, None], jnp.log(scale), 1)
    mean = nu[:, None] / scale
    return PrecisionExpectations(jnp.sum(e_log, axis=1), mean, jnp.sqrt(mean))


def _quadratic_forms(X, means, root, covariance_type):
    """(x_n - m_k)^T E[Lambda_k] (x_n - m_k) for every sample and component: (N, K)."""
    if covariance_type in ("full", "tied"):
        def one(args):
            mean, r = args
            return jnp.sum(((X - mean) @ r) ** 2, axis=1)
    else:
        def one(args):
            mean, r = args
            return jnp.sum(((X - mean) * r) ** 2, axis=1)
    return jax.lax.map(one, (means, root)).T


def expected_log_likelihood(X, q, covariance_type):
    """E_q[log N(x_n | mu_k, Lambda_k^-1)] for every sample and component: (N, K)."""
    d = X.shape[1]
    prec = expected_precision(q, covariance_type)
    const = 0.5 * prec.e_log_det - 0.5 * d * LOG_2PI - 0.5 * d / q.mean_precision
    return const[None, :] - 0.5 * _quadratic_forms(X, q.means, prec.root, covariance_type)


def _trace(mean_precision, matrix, covariance_type):
    """tr(E[Lambda_k] A_k) per component for A_k (K, D, D) (full/tied) or its diagonal (K, D)."""
    if covariance_type in ("full", "tied"):
        return jnp.sum(mean_precision * matrix, axis=(1, 2))
    return jnp.sum(mean_precision * matrix, axis=1)


def _outer(v, covariance_type):
    """v v^T per component (K, D, D) for full/tied, v^2 (K, D) for diag/spherical."""
    if covariance_type in ("full", "tied"):
        return v[:, :, None] * v[:, None, :]
    return v**2


def expected_log_likelihood_total(stats, q, covariance_type):
    """sum_n w_n sum_k r_nk E_q[log N(x_n | mu_k, Lambda_k^-1)] from the statistics of r
    (Bishop 10.71):

    sum_k N_k/2 (E[log|Lambda_k|] - D/kappa_k - D log 2 pi)
          - tr(E[Lambda_k] (C_k + N_k (x̄_k - m_k)(x̄_k - m_k)^T))/2
    """
    k, d = q.means.shape
    prec = expected_precision(q, covariance_type)
    nk = stats.nk
    spread = _outer(stats.means - q.means, covariance_type) * nk.reshape((k,) + (1,) * (
        2 if covariance_type in ("full", "tied") else 1))
    scatter_term = _trace(prec.mean, spread, covariance_type)
    if covariance_type == "tied":
        # the pooled scatter meets the one shared E[Lambda] once
        scatter_term = jnp.sum(scatter_term) + jnp.sum(prec.mean[0] * stats.scatter)
    else:
        scatter_term = jnp.sum(scatter_term + _trace(prec.mean, stats.scatter, covariance_type))
    return (0.5 * jnp.sum(nk * (prec.e_log_det - d / q.mean_precision - d * LOG_2PI))
            - 0.5 * scatter_term)


def kl(q, prior, covariance_type):
    """KL(q(mu, Lambda) || p(mu, Lambda)) summed over components:
    KL(q(Lambda) || p(Lambda)) + E_q(Lambda)[KL(q(mu | Lambda) || p(mu | Lambda))], the latter
    (D kappa0/kappa_k - D + D log(kappa_k/kappa0) + kappa0 (m_k - m0)^T E[Lambda_k] (m_k - m0))/2.
    """
    k, d = q.means.shape
    m0, kappa0 = prior.mean_prior, prior.mean_precision
    nu0, psi0 = prior.degrees_of_freedom, prior.covariance_prior
    nu, kappa = q.degrees_of_freedom, q.mean_precision
    prec = expected_precision(q, covariance_type)
    if covariance_type in ("full", "tied"):
        log_det, _ = _log_det_and_inverse_root(q.scale)
        log_det0, _ = _log_det_and_inverse_root(psi0)
        # tr(Psi0 E[Lambda]) for the (one or K) Wishart factors
        mean = prec.mean[0] if covariance_type == "tied" else prec.mean
        kl_precision = jnp.sum(dists.wishart_kl(nu, log_det, nu0, log_det0,
                                                jnp.sum(psi0 * mean, axis=(-2, -1)), d))
    else:
        # independent one-dimensional factors: (K, D) for diag, (K,) for spherical
        mean = prec.mean if covariance_type == "diag" else prec.mean[:, 0]
        nu_b = nu[:, None] if covariance_type == "diag" else nu
        kl_precision = jnp.sum(dists.wishart_kl(nu_b, jnp.log(q.scale), nu0, jnp.log(psi0),
                                                psi0 * mean, 1))
    offset = _trace(prec.mean, _outer(q.means - m0, covariance_type), covariance_type)
    kl_means = 0.5 * jnp.sum(d * kappa0 / kappa - d + d * jnp.log(kappa / kappa0)
                             + kappa0 * offset)
    return kl_precision + kl_means


def covariances(q, covariance_type):
    """Psi_k / nu_k = E[Lambda_k]^-1 (scikit-learn's covariances_), the shapes of q.scale."""
    nu = q.degrees_of_freedom
    if covariance_type == "full":
        return q.scale / nu[:, None, None]
    if covariance_type == "diag":
        return q.scale / nu[:, None]
    return q.scale / nu
