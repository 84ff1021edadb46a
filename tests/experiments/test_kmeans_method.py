"""The kmeans method: hard EM with equal fixed weights and one fixed spherical variance ends
where Lloyd's algorithm ends (scikit-learn's KMeans, and a plain NumPy loop written here)."""

import numpy as np
import pytest

from experiments.cells import Cell
from experiments.methods import METHODS
from experiments.methods.kmeans_methods import as_covariance_type, pooled_variance
from experiments.problem import build_problem
from experiments.report import Blocks, _kmeans_is_hard_em


def lloyd(X, centers):
    """Lloyd's algorithm to label stability: nearest centre, then the mean of its points."""
    labels = None
    while True:
        new = ((X[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
        if labels is not None and np.array_equal(new, labels):
            return centers, labels
        labels = new
        centers = np.stack([X[labels == k].mean(0) for k in range(len(centers))])


@pytest.mark.parametrize("dataset, k, ct", [("three_cluster_diag", 3, "full"),
                                            ("iris", 3, "full"), ("faithful", 2, "diag")])
def test_kmeans_ends_where_lloyd_ends_from_the_same_centres(dataset, k, ct):
    problem = build_problem(Cell(dataset, "gaussian_mixture", k, "kmeans", seed=0,
                                 covariance_type=ct))
    fit = METHODS["kmeans"].fit(problem)
    X = problem.X_train
    centers, labels = lloyd(X, np.asarray(problem.init["means"], float))
    np.testing.assert_allclose(fit.params["means"], centers, rtol=0, atol=1e-10)
    assert fit.converged and fit.status == "ok"
    assert fit.extra["sklearn_kmeans_label_mismatches"] == 0
    assert fit.extra["sklearn_kmeans_center_max_abs_diff"] < 1e-10
    inertia = float(((X - centers[labels]) ** 2).sum())
    assert fit.extra["kmeans_inertia"] == pytest.approx(inertia, rel=1e-12)
    assert fit.extra["sklearn_kmeans_inertia"] == pytest.approx(inertia, rel=1e-10)
    np.testing.assert_array_equal(fit.params["weights"], np.full(k, 1 / k))
    # hard EM's objective: the classification log-likelihood, monotone, and at the end
    # -N log K - N D/2 log(2 pi s) - inertia / (2 s) for the fixed variance s
    trace = fit.objective_trace
    assert np.all(np.diff(trace) >= -1e-9 * abs(trace[-1]))
    n, d = X.shape
    s = pooled_variance(problem.init["covariances"], ct, d)
    expected = -n * np.log(k) - 0.5 * n * d * np.log(2 * np.pi * s) - inertia / (2 * s)
    assert trace[-1] == pytest.approx(expected, rel=1e-10)
    # the covariances are laid out in the cell's covariance type
    np.testing.assert_allclose(fit.params["covariances"],
                               as_covariance_type(s, k, d, ct), rtol=0, atol=0)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_one_variance_round_trips_through_every_covariance_type(ct):
    cov = as_covariance_type(0.37, 4, 3, ct)
    assert pooled_variance(cov, ct, 3) == pytest.approx(0.37, rel=1e-15)
    if ct == "full":
        assert cov.shape == (4, 3, 3) and np.allclose(cov[2], 0.37 * np.eye(3))


def _record(mismatches, dataset="iris"):
    return {"method": "kmeans", "dataset": dataset, "n_components": 3,
            "covariance_type": "full", "seed": 0, "n_steps": 7,
            "sklearn_kmeans_label_mismatches": mismatches,
            "sklearn_kmeans_center_max_abs_diff": 0.0 if not mismatches else 0.4,
            "kmeans_inertia": 78.85, "sklearn_kmeans_inertia": 78.85,
            "sklearn_kmeans_n_iter": 7}


def test_report_states_the_claim_from_the_rows():
    blocks = Blocks()
    _kmeans_is_hard_em(blocks, [_record(0), _record(0, "faithful")])
    text = " ".join(x for kind, x in blocks.items if kind == "p")
    assert "Same partition in all 2 cell(s)." in text
    blocks = Blocks()
    _kmeans_is_hard_em(blocks, [_record(0), _record(5, "faithful")])
    text = " ".join(x for kind, x in blocks.items if kind == "p")
    assert "Same partition in 1 of 2 cell(s)" in text and "faithful" in text
    body = next(x for kind, x in blocks.items if kind == "table")[1]
    assert [row[3] for row in body] == ["0", "5"]
