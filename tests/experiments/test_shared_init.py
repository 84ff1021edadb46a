"""Every method of a cell starts from the same initialisation."""

import numpy as np
import pytest
from sklearn.mixture import BayesianGaussianMixture

from experiments.cells import Cell
from experiments.methods.sklearn_methods import fit_sklearn_vb
from experiments.mixtures import kmeans_labels
from experiments.problem import build_problem


def test_problem_init_is_deterministic_and_shared():
    cell = Cell("three_cluster_diag", "gaussian_mixture", 3, "em", seed=4, covariance_type="diag")
    a, b = build_problem(cell), build_problem(Cell(**{**cell.__dict__, "method": "map"}))
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(a.init[name], b.init[name])
    assert a.init["covariances"].shape == (3, 2)
    np.testing.assert_array_equal(a.X_test, b.X_test)


def test_sklearn_vb_starts_from_the_shared_kmeans_partition(monkeypatch):
    problem = build_problem(Cell("blobs", "gaussian_mixture", 3, "sklearn_vb", seed=7,
                                 covariance_type="full"))
    seen = {}
    original = BayesianGaussianMixture._initialize

    def spy(self, X, resp):
        seen["labels"] = resp.argmax(1)
        return original(self, X, resp)

    monkeypatch.setattr(BayesianGaussianMixture, "_initialize", spy)
    fit_sklearn_vb(problem, max_iter=5, num_samples=10)
    expected = kmeans_labels(problem.X_train, 3, 7)
    np.testing.assert_array_equal(seen["labels"], expected)
    assert pytest.approx(np.bincount(expected) / len(expected)) == problem.init["weights"]
