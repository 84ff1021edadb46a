"""The fast kernel of the Gaussian CAVI E-step: the same numbers as gaussian.py, computed as the
EM's fast path does (em_reference.gaussian.features).

The expected log joint of a sample is linear in the sufficient-statistic features
T(x) = (1, x, x_i x_j for i <= j) (diag / spherical: (1, x, x_d^2)):

    E[log pi_k] + E_q[log N(x | mu_k, Lambda_k^-1)] = T(x) . eta_k,
    eta_k = (c_k, M_k m_k, -M_k,ii / 2 and -M_k,ij for i < j),   M_k = E[Lambda_k],
    c_k = E[log pi_k] + E[log|Lambda_k|]/2 - D log(2 pi)/2 - D/(2 kappa_k) - m_k^T M_k m_k / 2,

so the E-step is one (N, F) x (F, K) product and the statistics come from one (K, N) x (N, F)
product R^T T(X) (the raw moments N_k, sum r x, sum r x x^T). T(X) is computed once per fit.
The raw second moments lose digits when the data's mean is far from the origin compared with
their spread: the estimator centres the data first (the ELBO does not change when the data and
the prior's mean move together). tests/em_reference/test_cavi_fast_path.py proves the two paths
equal. Measured (benchmarks/cavi_speed.py, the commit message) against gaussian.py's E-step.
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from em_reference import gaussian as em_gaussian
from em_reference.cavi import gaussian
from em_reference.cavi.gaussian import GaussianStats


def features(X, covariance_type):
    """T(X) (N, F): F = 1 + D + D(D+1)/2 (full, tied) or 1 + 2D (diag, spherical)."""
    return em_gaussian.features(X, covariance_type)


def natural_parameters(q, e_log_weights, covariance_type):
    """eta (F, K) with E[log pi_k] + E_q[log N(x | mu_k, Lambda_k^-1)] = T(x) @ eta[:, k]."""
    k, d = q.means.shape
    prec = gaussian.expected_precision(q, covariance_type)
    if covariance_type in ("full", "tied"):
        rows, cols = np.triu_indices(d)
        quad = prec.mean[:, rows, cols] * np.where(rows == cols, -0.5, -1.0)
        linear = jnp.einsum("kde,ke->kd", prec.mean, q.means)
    else:
        quad = -0.5 * prec.mean
        linear = prec.mean * q.means
    const = (e_log_weights + 0.5 * prec.e_log_det - 0.5 * d * gaussian.LOG_2PI
             - 0.5 * d / q.mean_precision - 0.5 * jnp.sum(linear * q.means, axis=1))
    return jnp.concatenate([const[:, None], linear, quad], axis=1).T


def stats_from_moments(moments, covariance_type):
    """GaussianStats (weighted means and scatter about them) from the raw moments
    (K, F) = R^T T(X) (features' order)."""
    raw = em_gaussian.stats_from_moments(moments, covariance_type)
    nk = raw.nk
    means = raw.sx / gaussian.guarded_counts(nk)[:, None]
    if covariance_type == "full":
        scatter = raw.sxx - nk[:, None, None] * means[:, :, None] * means[:, None, :]
    elif covariance_type == "tied":
        scatter = raw.sxx - (means * nk[:, None]).T @ means
    else:
        # a (near-)constant column can round its scatter below zero
        scatter = jnp.maximum(raw.sxx - nk[:, None] * means**2, 0.0)
    return GaussianStats(nk, means, scatter)
