"""The benchmark problems: synthetic Gaussian-mixture data, the initial parameters every
contender starts from, the FLOP model of one EM iteration and a common log-likelihood.

Everything is a deterministic function of (N, D, K, seed), so every contender in every
subprocess sees the same data and starts from the same parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.linalg import solve_triangular

REG_COVAR = 1e-6
GENERATE_BLOCK = 1_000_000  # rows generated at a time: bounds the generator's temporaries


@dataclass(frozen=True)
class Case:
    """One benchmark problem: N samples, D features, K components, covariance type, dtype."""

    n: int
    d: int
    k: int
    covariance_type: str = "full"
    dtype: str = "float64"

    @property
    def label(self) -> str:
        return f"({self.n:,}, {self.d}, {self.k}) {self.covariance_type} {self.dtype}"

    def to_dict(self) -> dict:
        return asdict(self)


def truth(d: int, k: int, seed: int = 0):
    """True mixture: weights (K,), means (K, D), covariance Cholesky factors (K, D, D)."""
    rng = np.random.default_rng([seed, d, k])
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(0.0, 4.0, (k, d))
    a = rng.normal(size=(k, d, d)) / np.sqrt(d)
    cov = 0.5 * a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    return weights, means, np.linalg.cholesky(cov)


def make_data(n: int, d: int, k: int, seed: int = 0, out: np.ndarray | None = None):
    """(N, D) float64 draws from the true mixture, written block by block (into ``out`` if
    given, e.g. a view of a chunked (n_chunks, C, D) array), so that generating 10^7 rows
    costs the array itself plus one block of temporaries."""
    weights, means, chol = truth(d, k, seed)
    X = np.empty((n, d)) if out is None else out
    rng = np.random.default_rng([seed, n, d, k, 1])
    for start in range(0, n, GENERATE_BLOCK):
        stop = min(n, start + GENERATE_BLOCK)
        z = rng.choice(k, size=stop - start, p=weights)
        block = rng.standard_normal((stop - start, d))
        for j in range(k):
            rows = z == j
            block[rows] = means[j] + block[rows] @ chol[j].T
        X[start:stop] = block
    return X


def initial_params(X: np.ndarray, k: int, covariance_type: str, seed: int = 0) -> dict:
    """The starting point shared by every contender: equal weights, K distinct data points as
    means, the pooled data covariance (full) or variances (diag) for every component.
    Returns weights (K,), means (K, D), covariances and precisions (full (K, D, D), diag (K, D)),
    all float64."""
    n, d = X.shape
    rng = np.random.default_rng([seed, n, d, k, 2])
    idx = rng.choice(n, size=k, replace=False)
    means = np.asarray(X[np.sort(idx)], dtype=np.float64)
    mu, cov = _moments(X)
    if covariance_type == "full":
        cov = cov + REG_COVAR * np.eye(d)
        covariances = np.broadcast_to(cov, (k, d, d)).copy()
        precisions = np.linalg.inv(covariances)
        precisions = 0.5 * (precisions + np.swapaxes(precisions, 1, 2))
    elif covariance_type == "diag":
        covariances = np.broadcast_to(np.diag(cov) + REG_COVAR, (k, d)).copy()
        precisions = 1.0 / covariances
    else:
        raise ValueError(f"benchmarks cover 'full' and 'diag', not {covariance_type!r}")
    return {"weights": np.full(k, 1.0 / k), "means": means, "covariances": covariances,
            "precisions": precisions}


def _moments(X):
    """Mean and (biased) covariance in float64, a block of rows at a time (no copy of X)."""
    n, d = X.shape
    mu = np.zeros(d)
    for start in range(0, n, GENERATE_BLOCK):
        mu += X[start:start + GENERATE_BLOCK].sum(axis=0, dtype=np.float64)
    mu /= n
    cov = np.zeros((d, d))
    for start in range(0, n, GENERATE_BLOCK):
        block = np.asarray(X[start:start + GENERATE_BLOCK], dtype=np.float64) - mu
        cov += block.T @ block
    return mu, cov / n


def flops_per_iteration(n: int, d: int, k: int, covariance_type: str) -> float:
    """Floating-point operations one EM iteration needs (the same count for every contender).

    full: E-step Mahalanobis terms X P_k - mu_k P_k, squared and summed (2ND^2 + 3ND per
    component); statistics S_x = R^T X (2NKD) and the weighted Gram matrices X^T diag(r_k) X
    (2ND^2 + ND per component). diag: (X*X) P^T and X (mu P)^T in the E-step, R^T X and
    R^T (X*X) for the statistics (8NKD). Both: about 8NK for log-sum-exp and responsibilities.
    The M-step is O(K D^3), negligible at these sizes.
    """
    if covariance_type == "full":
        return float(n * k * (4 * d * d + 6 * d + 8))
    return float(n * k * (8 * d + 8) + 2 * n * d)


def restarts_floor_s(n: int, d: int, k: int, covariance_type: str, n_init: int,
                     peak_gflops: float, exp_ns: float) -> float:
    """A lower bound on one em_reference EM iteration of n_init restarts, in seconds: its
    two products (E-step T(X) eta, statistics R^T T(X): 2 N F K flops each per restart, F =
    the family's feature count) at peak_gflops, plus one exp per sample, component and
    restart at exp_ns, and nothing else (no reduction, copy or M-step)."""
    from em_reference.gaussian import GaussianFamily

    width = GaussianFamily(covariance_type).feature_width(d)
    per_restart = n * k * n_init
    return 4.0 * per_restart * width / (peak_gflops * 1e9) + per_restart * exp_ns * 1e-9


def mean_log_likelihood(X: np.ndarray, weights, means, covariances, covariance_type) -> float:
    """(1/N) sum_n log sum_k pi_k N(x_n | mu_k, Sigma_k), in float64 with numpy/scipy: one
    yardstick for the parameters every contender returns."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    weights, means, covariances = (np.asarray(a, dtype=np.float64)
                                   for a in (weights, means, covariances))
    cols = []
    for j in range(len(weights)):
        diff = X - means[j]
        if covariance_type == "full":
            chol = np.linalg.cholesky(covariances[j])
            y = solve_triangular(chol, diff.T, lower=True)
            maha = np.einsum("ij,ij->j", y, y)
            log_det = 2.0 * np.sum(np.log(np.diag(chol)))
        else:
            maha = np.sum(diff * diff / covariances[j], axis=1)
            log_det = np.sum(np.log(covariances[j]))
        cols.append(np.log(weights[j]) - 0.5 * (d * np.log(2 * np.pi) + log_det + maha))
    log_joint = np.stack(cols, axis=1)
    top = log_joint.max(axis=1, keepdims=True)
    per_sample = top[:, 0] + np.log(np.exp(log_joint - top).sum(axis=1))
    return float(per_sample.mean())
