"""Synthetic data sets with known parameters and labels (the theory examples), and a generator.

Each sample is drawn with a fixed ``data_seed`` so that every method and every fit seed of a grid
sees the same data. Truth is stored in em_reference's convention with full covariances (K, D, D).
"""

from __future__ import annotations

import numpy as np

from ..specs import Count, NonNegative, NonNegativeInt, Positive
from .registry import Dataset, register_dataset


def _sample_gaussian_mixture(rng, counts, means, covariances):
    """Exactly ``counts[k]`` points from component k, shuffled. Returns X (N, D), labels (N,)."""
    parts, labels = [], []
    for k, (n, mu, cov) in enumerate(zip(counts, means, covariances, strict=True)):
        parts.append(rng.multivariate_normal(mu, cov, size=int(n)))
        labels.append(np.full(int(n), k))
    X, labels = np.concatenate(parts), np.concatenate(labels)
    order = rng.permutation(len(X))
    return X[order], labels[order]


def _truth(counts, means, covariances):
    counts = np.asarray(counts, dtype=float)
    return {"weights": counts / counts.sum(), "means": np.asarray(means, float),
            "covariances": np.asarray(covariances, float)}


@register_dataset(
    "three_cluster_diag", family="gaussian",
    description="2-D, three Gaussian clusters with diagonal covariances: means (0.5,0.5), "
                "(5.5,2.5), (1,7); variances (1,3), (2,2), (6,2); 400/600/1000 points.",
    provenance="Synthetic (the theory notes' three-cluster example), numpy seed data_seed.")
def three_cluster_diag(data_seed: NonNegativeInt = 0):
    means = [[0.5, 0.5], [5.5, 2.5], [1.0, 7.0]]
    covs = [np.diag(v) for v in ([1.0, 3.0], [2.0, 2.0], [6.0, 2.0])]
    counts = [400, 600, 1000]
    X, y = _sample_gaussian_mixture(np.random.default_rng(data_seed), counts, means, covs)
    return Dataset(X, y, _truth(counts, means, covs), ("x1", "x2"), ("a.u.", "a.u."))


@register_dataset(
    "blobs", family="gaussian",
    description="2-D, three isotropic Gaussian blobs (unit variance) centred at (0,0), (5,0), "
                "(2.5,4); 300 points each.",
    provenance="Synthetic (isotropic blobs in the style of sklearn.datasets.make_blobs), "
               "numpy seed data_seed.")
def blobs(data_seed: NonNegativeInt = 0, n_per_blob: Count = 300, std: Positive = 1.0):
    means = [[0.0, 0.0], [5.0, 0.0], [2.5, 4.0]]
    covs = [np.eye(2) * std**2] * 3
    counts = [n_per_blob] * 3
    X, y = _sample_gaussian_mixture(np.random.default_rng(data_seed), counts, means, covs)
    return Dataset(X, y, _truth(counts, means, covs), ("x1", "x2"), ("a.u.", "a.u."))


@register_dataset(
    "height", family="gaussian",
    description="1-D heights: 80% N(162 cm, 6.5^2) and 20% N(176 cm, 7^2); 1000 people.",
    provenance="Synthetic (the theory notes' two-normal height mixture), numpy seed data_seed.")
def height(data_seed: NonNegativeInt = 0, n: Count = 1000):
    counts = [int(round(0.8 * n)), n - int(round(0.8 * n))]
    means = [[162.0], [176.0]]
    covs = [[[6.5**2]], [[7.0**2]]]
    X, y = _sample_gaussian_mixture(np.random.default_rng(data_seed), counts, means, covs)
    return Dataset(X, y, _truth(counts, means, covs), ("height",), ("cm",))


@register_dataset(
    "poisson_two_rates", family="poisson",
    description="1-D counts: 60% Poisson(2) and 40% Poisson(6); 1000 draws.",
    provenance="Synthetic (the theory notes' two-rate Poisson mixture), numpy seed data_seed.")
def poisson_two_rates(data_seed: NonNegativeInt = 0, n: Count = 1000):
    rng = np.random.default_rng(data_seed)
    counts = [int(round(0.6 * n)), n - int(round(0.6 * n))]
    rates = np.array([[2.0], [6.0]])
    y = np.repeat([0, 1], counts)
    x = rng.poisson(rates[y])
    order = rng.permutation(n)
    truth = {"weights": np.asarray(counts, float) / n, "rates": rates}
    return Dataset(x[order], y[order], truth, ("events per observation",), ("count",))


@register_dataset(
    "generated", family="gaussian",
    description="Generator for scaling studies: N points in D dimensions from K Gaussians with "
                "random means (spread `separation` x the cluster scale), random full covariances "
                "and Dirichlet(5) weights.",
    provenance="Synthetic, numpy seed data_seed; parameters n, d, k, separation.")
def generated(n: Count = 1000, d: Count = 2, k: Count = 3, separation: NonNegative = 4.0,
              data_seed: NonNegativeInt = 0):
    rng = np.random.default_rng(data_seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    counts = rng.multinomial(n, weights)
    means = rng.normal(scale=separation, size=(k, d))
    covs = []
    for _ in range(k):
        a = rng.normal(size=(d, d)) / np.sqrt(d)
        covs.append(a @ a.T + 0.5 * np.eye(d))
    X, y = _sample_gaussian_mixture(rng, counts, means, covs)
    truth = {"weights": counts / n, "means": means, "covariances": np.asarray(covs)}
    return Dataset(X, y, truth, tuple(f"x{i + 1}" for i in range(d)), ("a.u.",) * d)
