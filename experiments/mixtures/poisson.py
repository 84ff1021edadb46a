"""The Poisson mixture's registration: prior, shared start, EM estimator, density, hints.

Parameters: weights (K,), rates (K, D); data: counts (N, D).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .. import densities
from ..models_registry import register_model
from .common import kmeans_labels, override_prior

PRIOR_FIELDS = ("weight_concentration", "rate_shape", "rate_rate")


def poisson_init(X, labels, n_components):
    """Weights (K,) and rates (K, D) = cluster fractions and cluster means (floored at 1e-3)."""
    X = np.asarray(X, float)
    counts = np.bincount(labels, minlength=n_components).astype(float)
    sums = np.stack([X[labels == k].sum(0) for k in range(n_components)])
    rates = np.maximum(sums / np.maximum(counts, 1.0)[:, None], 1e-3)
    weights = np.maximum(counts, 1e-3) / np.maximum(counts, 1e-3).sum()
    return {"weights": weights, "rates": rates}


def initial_values(X, n_components, covariance_type, seed):
    """One k-means run on the counts turned into weights and rates."""
    return poisson_init(X, kmeans_labels(X, n_components, seed), n_components)


def build_prior(X, n_components, covariance_type, overrides):
    """em_reference's default Dirichlet-Gamma prior with the grid's overrides, validated."""
    from em_reference.priors import PoissonMixturePrior

    prior = PoissonMixturePrior.default(X, n_components)
    return override_prior(prior, overrides).validate(X.shape[1], n_components)


def cavi_estimator(problem, *, tol, max_iter):
    """em_reference's PoissonMixtureCAVI (Gamma rates) with the cell's prior and Dirichlet
    weights, from the k-means partition of the shared initialisation."""
    from em_reference.cavi import PoissonMixtureCAVI

    return PoissonMixtureCAVI(
        problem.n_components, tol=tol, max_iter=max_iter, n_init=1, init_params="kmeans",
        weight_concentration_prior_type="dirichlet_distribution", prior=problem.prior,
        random_state=problem.seed)


def em_estimator(problem, *, prior, assignment, tol, max_iter, reg_covar):
    """em_reference's PoissonMixtureEM started at the cell's shared initialisation
    (reg_covar does not apply to counts)."""
    from em_reference import PoissonMixtureEM

    init = problem.init
    return PoissonMixtureEM(problem.n_components, tol=tol, max_iter=max_iter, n_init=1,
                            weights_init=init["weights"], rates_init=init["rates"],
                            prior=prior, assignment=assignment, random_state=problem.seed)


def marginal_pmf(grid, params, covariance_type, feature=0):
    """pmf at the integers ``grid`` (G,) of feature ``feature``'s counts (a 1-D Poisson
    mixture: the features are independent within a component)."""
    w = np.asarray(params["weights"])
    r = np.asarray(params["rates"]).reshape(len(w), -1)[:, feature]
    return (w[:, None] * stats.poisson.pmf(grid[None, :], r[:, None])).sum(0)


register_model(
    "poisson_mixture", numpyro_model="models:poisson_mixture", data_family="poisson",
    description="Poisson mixture, (weights, rates), Dirichlet-Gamma prior.",
    param_names=("weights", "rates"), align_param="rates", align_log_scale=True,
    prior_fields=PRIOR_FIELDS, build_prior=build_prior, initial_values=initial_values,
    em_estimator=em_estimator, cavi_estimator=cavi_estimator,
    log_joint_matrix=lambda X, params, ct: densities.poisson_log_joint_matrix(X, params),
    n_params=lambda k, d, ct: int(k - 1 + k * d),
    figure_hints={"marginal": marginal_pmf, "discrete": True, "marginal_stem": "poisson"},
    default_for_family=True)
