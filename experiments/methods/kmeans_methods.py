"""kmeans: k-means as hard EM (PRML 9.3.2), with scikit-learn's KMeans beside it as the check.

em_reference's hard (classification) EM on a Gaussian mixture whose weights are held at 1/K
and whose components share one fixed spherical variance: its E-step assigns every point to
the nearest mean, its M-step moves every mean to the average of its points, which is Lloyd's
algorithm. The row reports that fit; the same cell also runs scikit-learn's
``KMeans(init=<the shared start's means>, n_init=1, algorithm="lloyd", tol=0)`` and stores how
far the two ended apart (labels that differ, the largest centre difference, the inertias), so
the table shows the claim "k-means is hard EM" as numbers, cell by cell.

The fixed variance is the shared start's pooled spherical variance (the mean of its
per-component variances): it changes the objective's scale, not the assignments. The row's
covariances are that variance laid out in the cell's covariance type, so every plug-in metric
(held-out log-likelihood, BIC) is that of the k-means mixture.
"""

from __future__ import annotations

import warnings

import numpy as np

from em_reference.config import one_native_thread

from ..specs import Count
from .em_methods import certificate_columns, timed_fit
from .registry import make_fit, register_method


def pooled_variance(covariances, covariance_type, n_features) -> float:
    """Mean over components of trace(Sigma_k) / D, from sklearn-shaped covariances."""
    c = np.asarray(covariances, float)
    per_component = {"full": lambda: np.trace(c, axis1=-2, axis2=-1) / n_features,
                     "tied": lambda: np.trace(c) / n_features,
                     "diag": lambda: c.mean(-1),
                     "spherical": lambda: c}[covariance_type]()
    return float(np.mean(per_component))


def as_covariance_type(variance, n_components, n_features, covariance_type):
    """One spherical variance as covariances of ``covariance_type`` (sklearn shapes)."""
    eye = np.eye(n_features)
    return {"full": lambda: np.broadcast_to(variance * eye, (n_components,) + eye.shape).copy(),
            "tied": lambda: variance * eye,
            "diag": lambda: np.full((n_components, n_features), variance),
            "spherical": lambda: np.full(n_components, variance)}[covariance_type]()


def sklearn_lloyd(X, centers, max_iter):
    """scikit-learn's KMeans run from ``centers`` (K, D) to label stability."""
    from sklearn.cluster import KMeans

    with warnings.catch_warnings(), one_native_thread():
        warnings.simplefilter("ignore")
        return KMeans(len(centers), init=centers, n_init=1, algorithm="lloyd", tol=0.0,
                      max_iter=max_iter).fit(X)


@register_method("kmeans", colour="#CC6677", models=("gaussian_mixture",), is_em=True,
                 description="k-means as hard EM (em_reference: equal fixed weights, one fixed "
                             "spherical variance), checked against scikit-learn's KMeans from "
                             "the same centres")
def fit_kmeans(problem, max_iter: Count = 10_000):
    from em_reference import GaussianMixtureEM

    X, k, ct = problem.X_train, problem.n_components, problem.covariance_type
    d = X.shape[1]
    variance = pooled_variance(problem.init["covariances"], ct, d)
    centers = np.asarray(problem.init["means"], float)

    def make():
        return GaussianMixtureEM(
            k, covariance_type="spherical", assignment="hard", max_iter=max_iter,
            reg_covar=0.0, weights_init=np.full(k, 1.0 / k), means_init=centers,
            precisions_init=np.full(k, 1.0 / variance), fixed_params=("weights", "covariances"))

    est, wall, compile_time = timed_fit(make, X)
    km = sklearn_lloyd(X, centers, max_iter)
    labels = est.predict(X)
    inertia = float(((X - est.means_[labels]) ** 2).sum())
    extra = certificate_columns(est) | {
        "kmeans_inertia": inertia,
        "sklearn_kmeans_inertia": float(km.inertia_),
        "sklearn_kmeans_label_mismatches": int(np.sum(labels != km.labels_)),
        "sklearn_kmeans_center_max_abs_diff": float(np.max(np.abs(est.means_
                                                                  - km.cluster_centers_))),
        "sklearn_kmeans_n_iter": int(km.n_iter_)}
    params = {"weights": np.asarray(est.weights_), "means": np.asarray(est.means_),
              "covariances": as_covariance_type(variance, k, d, ct)}
    return make_fit("kmeans", params, "classification_log_likelihood",
                    np.asarray(est.lower_bounds_), int(est.n_iter_), bool(est.converged_), wall,
                    compile_time, hard_assignment=True, extra=extra)
