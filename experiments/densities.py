"""Mixture log densities evaluated with scipy.stats, independently of em_reference and models.

The metrics use these so that every method, whatever produced its parameters, is scored by the
same code, and so that the suite has a third, plain implementation of the densities to check the
other two against. Parameters follow em_reference's convention:
Gaussian weights (K,), means (K, D), covariances full (K, D, D) | tied (D, D) | diag (K, D) |
spherical (K,); Poisson weights (K,), rates (K, D); Bernoulli weights (K,), probs (K, D).
Data X (N, D).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import logsumexp


def full_covariances(covariances, covariance_type, n_components, n_features):
    """Any sklearn-shaped covariance -> (K, D, D) full matrices."""
    c = np.asarray(covariances, dtype=float)
    if covariance_type == "full":
        return c.reshape(n_components, n_features, n_features)
    if covariance_type == "tied":
        return np.broadcast_to(c.reshape(n_features, n_features),
                               (n_components, n_features, n_features)).copy()
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in c.reshape(n_components, n_features)])
    if covariance_type == "spherical":
        return c.reshape(n_components)[:, None, None] * np.eye(n_features)[None]
    raise ValueError(f"unknown covariance_type {covariance_type!r}")


def gaussian_log_joint_matrix(X, params, covariance_type):
    """(N, K) matrix of log w_k + log N(x_n | mu_k, Sigma_k)."""
    X = np.asarray(X, dtype=float)
    w = np.asarray(params["weights"], dtype=float)
    mu = np.asarray(params["means"], dtype=float).reshape(len(w), X.shape[1])
    covs = full_covariances(params["covariances"], covariance_type, len(w), X.shape[1])
    out = np.empty((len(X), len(w)))
    for k in range(len(w)):
        out[:, k] = np.log(w[k]) + stats.multivariate_normal.logpdf(
            X, mean=mu[k], cov=covs[k], allow_singular=False).reshape(len(X))
    return out


def poisson_log_joint_matrix(X, params):
    """(N, K) matrix of log w_k + sum_d log Poisson(x_nd | rate_kd), log x! included."""
    X = np.asarray(X)
    w = np.asarray(params["weights"], dtype=float)
    rates = np.asarray(params["rates"], dtype=float).reshape(len(w), X.shape[1])
    out = np.empty((len(X), len(w)))
    for k in range(len(w)):
        out[:, k] = np.log(w[k]) + stats.poisson.logpmf(X, rates[k][None, :]).sum(axis=1)
    return out


def bernoulli_log_joint_matrix(X, params):
    """(N, K) matrix of log w_k + sum_d log Bernoulli(x_nd | p_kd) (binary X), by scipy's
    xlogy so that a probability of exactly 0 or 1 costs nothing where it is not contradicted."""
    from scipy.special import xlog1py, xlogy

    X = np.asarray(X, dtype=float)
    w = np.asarray(params["weights"], dtype=float)
    p = np.asarray(params["probs"], dtype=float).reshape(len(w), X.shape[1])
    out = np.empty((len(X), len(w)))
    for k in range(len(w)):  # (N, D) temporaries per component, never (N, K, D)
        out[:, k] = np.log(w[k]) + (xlogy(X, p[k]) + xlog1py(1.0 - X, -p[k])).sum(axis=1)
    return out


def log_likelihood(log_joint_matrix):
    """Total log p(X | theta) = sum_n logsumexp_k of the (N, K) log joint matrix."""
    return float(np.sum(logsumexp(log_joint_matrix, axis=1)))


def responsibilities(log_joint_matrix):
    """(N, K) posterior p(z_n = k | x_n, theta)."""
    return np.exp(log_joint_matrix - logsumexp(log_joint_matrix, axis=1, keepdims=True))


def elbo_em(log_joint_matrix, q):
    """EM's bound sum_n sum_k q_nk (log p(x_n, z_n=k | theta) - log q_nk) <= log p(X | theta).

    Equal to the log-likelihood when q is the posterior (tight after an E-step); below it for
    one-hot q (hard EM), by KL(q || posterior) = -sum_n log p(z_n = zhat_n | x_n, theta).
    """
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * (log_joint_matrix - np.log(q)), 0.0)
    return float(terms.sum())
