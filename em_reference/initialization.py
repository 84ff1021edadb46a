"""Initial responsibilities, as scikit-learn's mixtures make them (host-side, numpy).

The estimator turns them into initial parameters with its own M-step (MLE), then overrides
whatever the user gave explicitly (weights_init, means_init, ...).
"""

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from em_reference import config

INIT_METHODS = ("kmeans", "k-means++", "random_from_data", "random")


def initial_responsibilities(X, n_components, init_params, rng, sample_weight):
    """(N, K) responsibilities. X (N, D); rng a numpy RandomState (advanced in place).

    kmeans: one-hot k-means labels (one k-means run, weighted); k-means++ / random_from_data:
    K seed points (chosen by k-means++ or uniformly), each the only member of its component;
    random: uniform random soft responsibilities.
    """
    # scikit-learn's OpenMP threads fight JAX's own pool for the cores: one thread is many
    # times faster here (benchmarks/README.md)
    with config.one_native_thread():
        return _responsibilities(X, n_components, init_params, rng, sample_weight)


def _responsibilities(X, n_components, init_params, rng, sample_weight):
    n = X.shape[0]
    resp = np.zeros((n, n_components))
    if init_params == "kmeans":
        # the RandomState itself, as scikit-learn's GaussianMixture passes it: the same
        # random_state gives its k-means start
        labels = KMeans(n_clusters=n_components, n_init=1, random_state=rng).fit(
            X, sample_weight=sample_weight).labels_
        resp[np.arange(n), labels] = 1.0
    elif init_params == "k-means++":
        _, idx = kmeans_plusplus(X, n_components, random_state=rng,
                                 sample_weight=sample_weight)
        resp[idx, np.arange(n_components)] = 1.0
    elif init_params == "random_from_data":
        candidates = np.flatnonzero(sample_weight > 0)
        idx = rng.choice(candidates, size=n_components, replace=False)
        resp[idx, np.arange(n_components)] = 1.0
    else:
        resp = rng.uniform(size=(n, n_components))
        resp /= resp.sum(axis=1, keepdims=True)
    return resp
