"""The Gaussian mixture's registration: prior, shared start, EM estimator, density, hints.

Parameters in em_reference's convention: weights (K,), means (K, D), covariances full
(K, D, D) | tied (D, D) | diag (K, D) | spherical (K,).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .. import densities
from ..models_registry import COVARIANCE_TYPES, register_model
from .common import kmeans_labels, override_prior, precisions_from_covariances

INIT_REG = 1e-6  # ridge on the initial covariances (scikit-learn's reg_covar default)
PRIOR_FIELDS = ("weight_concentration", "mean_prior", "mean_precision", "degrees_of_freedom",
                "covariance_prior")


def gaussian_init(X, labels, n_components, covariance_type, reg=INIT_REG):
    """Hard M-step from labels: weights (K,), means (K, D), covariances (sklearn shape)."""
    X = np.asarray(X, float)
    n, d = X.shape
    resp = np.zeros((n, n_components))
    resp[np.arange(n), labels] = 1.0
    nk = resp.sum(0) + 10 * np.finfo(float).eps
    means = resp.T @ X / nk[:, None]
    covs = np.empty((n_components, d, d))
    for k in range(n_components):
        diff = X - means[k]
        covs[k] = (resp[:, k, None] * diff).T @ diff / nk[k] + reg * np.eye(d)
    if covariance_type == "tied":
        cov = (X.T @ X - (nk[:, None] * means).T @ means) / n + reg * np.eye(d)
    elif covariance_type == "diag":
        cov = np.stack([np.diag(c) for c in covs])
    elif covariance_type == "spherical":
        cov = np.stack([np.diag(c).mean() for c in covs])
    else:
        cov = covs
    return {"weights": nk / n, "means": means, "covariances": cov}


def initial_values(X, n_components, covariance_type, seed):
    """One k-means run (KMeans(K, n_init=1, random_state=seed)) turned into parameters."""
    return gaussian_init(X, kmeans_labels(X, n_components, seed), n_components,
                         covariance_type)


def build_prior(X, n_components, covariance_type, overrides):
    """em_reference's default prior for the data (Fraley & Raftery 2007) with the grid's
    overrides, validated."""
    from em_reference.priors import GaussianMixturePrior

    prior = GaussianMixturePrior.default(X, n_components, covariance_type)
    return override_prior(prior, overrides).validate(X.shape[1], n_components)


def cavi_estimator(problem, *, tol, max_iter):
    """em_reference's GaussianMixtureCAVI with the cell's prior and Dirichlet weights, from
    the k-means partition the shared initialisation was built from (experiments/methods/
    vb_methods.py)."""
    from em_reference.cavi import GaussianMixtureCAVI

    return GaussianMixtureCAVI(
        problem.n_components, covariance_type=problem.covariance_type, tol=tol,
        max_iter=max_iter, n_init=1, init_params="kmeans",
        weight_concentration_prior_type="dirichlet_distribution", prior=problem.prior,
        random_state=problem.seed)


def em_estimator(problem, *, prior, assignment, tol, max_iter, reg_covar):
    """em_reference's GaussianMixtureEM started at the cell's shared initialisation."""
    from em_reference import GaussianMixtureEM

    init, ct = problem.init, problem.covariance_type
    return GaussianMixtureEM(
        problem.n_components, covariance_type=ct, tol=tol, reg_covar=reg_covar,
        max_iter=max_iter, n_init=1, weights_init=init["weights"], means_init=init["means"],
        precisions_init=precisions_from_covariances(init["covariances"], ct), prior=prior,
        assignment=assignment, random_state=problem.seed)


def n_params(k, d, covariance_type):
    cov = {"full": k * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": k * d,
           "spherical": k}[covariance_type]
    return int(k - 1 + k * d + cov)


def full_form(params, covariance_type, n_features):
    """Copy of params with covariances as (K, D, D), the form RMSEs compare."""
    k = len(np.asarray(params["weights"]))
    return {**params, "covariances": densities.full_covariances(
        params["covariances"], covariance_type, k, n_features)}


def marginal_density(grid, params, covariance_type, feature=0):
    """Density at ``grid`` (G,) of feature ``feature``'s marginal (a 1-D Gaussian mixture)."""
    w = np.asarray(params["weights"])
    means = np.asarray(params["means"]).reshape(len(w), -1)
    mu = means[:, feature]
    var = densities.full_covariances(params["covariances"], covariance_type, len(w),
                                     means.shape[1])[:, feature, feature]
    return (w[:, None] * stats.norm.pdf(grid[None, :], mu[:, None], np.sqrt(var)[:, None])).sum(0)


def forest_arrays(arrays, covariance_type):
    """``arrays`` as the estimates figure draws them: the covariances replaced by the
    variances (K, D) (point (K, ...) or draws (S, K, ...)), which every covariance type has
    and which share the data's units."""
    out = {k: v for k, v in arrays.items() if k != "covariances"}
    if "covariances" not in arrays or "means" not in arrays:
        return out
    means = np.asarray(arrays["means"])
    k, d = means.shape[-2:]

    def variances(c):
        return np.diagonal(densities.full_covariances(c, covariance_type, k, d), axis1=1,
                           axis2=2)

    covs = np.asarray(arrays["covariances"])
    out["variances"] = (np.stack([variances(c) for c in covs]) if means.ndim == 3
                        else variances(covs))
    return out


register_model(
    "gaussian_mixture", numpyro_model="models:gaussian_mixture", data_family="gaussian",
    description="Gaussian mixture, (weights, means, covariances), conjugate Dirichlet-NIW prior.",
    covariance_types=COVARIANCE_TYPES, param_names=("weights", "means", "covariances"),
    component_params=lambda ct: ("weights", "means") if ct == "tied" else (
        "weights", "means", "covariances"),
    align_param="means", comparable_params=full_form, prior_fields=PRIOR_FIELDS,
    build_prior=build_prior,
    initial_values=initial_values, em_estimator=em_estimator, cavi_estimator=cavi_estimator,
    log_joint_matrix=densities.gaussian_log_joint_matrix, n_params=n_params,
    figure_hints={"marginal": marginal_density, "ellipses": True,
                  "forest_arrays": forest_arrays}, default_for_family=True)
