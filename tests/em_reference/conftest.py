"""Data shared by the em_reference tests: the textbook examples (PRML-style)."""

import numpy as np
import pytest

THREE_CLUSTER_MEANS = np.array([[0.5, 0.5], [5.5, 2.5], [1.0, 7.0]])
THREE_CLUSTER_VARS = np.array([[1.0, 3.0], [2.0, 2.0], [6.0, 2.0]])
THREE_CLUSTER_SIZES = (400, 600, 1000)


def make_three_cluster(seed=0):
    """The three-cluster 2-D data with diagonal covariances; returns (X (2000, 2), labels)."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(m, np.sqrt(v), size=(n, 2))
             for m, v, n in zip(THREE_CLUSTER_MEANS, THREE_CLUSTER_VARS, THREE_CLUSTER_SIZES)]
    labels = np.repeat(np.arange(3), THREE_CLUSTER_SIZES)
    return np.concatenate(parts), labels


@pytest.fixture(scope="session")
def three_cluster():
    return make_three_cluster()


@pytest.fixture(scope="session")
def three_cluster_truth():
    """(means (3, 2), variances (3, 2), weights (3,)) of the three-cluster data."""
    return THREE_CLUSTER_MEANS, THREE_CLUSTER_VARS, np.array(THREE_CLUSTER_SIZES) / 2000
