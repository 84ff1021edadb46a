"""sklearn_em and sklearn_vb: scikit-learn's GaussianMixture and BayesianGaussianMixture.

sklearn_em starts from the shared initial parameters. BayesianGaussianMixture takes no initial
parameters; with init_params="kmeans" and random_state=seed it runs the very k-means
(KMeans(n_clusters=K, n_init=1, random_state=seed)) that built the shared initialisation, so it
starts from the same partition. Its prior is set to the cell's prior (same Dirichlet and
Normal-inverse-Wishart hyper-parameters).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy import stats

from em_reference.config import one_native_thread

from ..mixtures.common import precisions_from_covariances
from ..specs import Count, NonNegative
from .registry import make_fit, register_method


def _params(est):
    return {"weights": np.asarray(est.weights_), "means": np.asarray(est.means_),
            "covariances": np.asarray(est.covariances_)}


@register_method("sklearn_em", colour="#CC79A7", models=("gaussian_mixture",), is_em=True,
                 description="scikit-learn GaussianMixture (EM, maximum likelihood)")
def fit_sklearn_em(problem, tol: NonNegative = 1e-6, max_iter: Count = 1000,
                   reg_covar: NonNegative = 1e-6):
    from sklearn.mixture import GaussianMixture

    init, ct = problem.init, problem.covariance_type
    est = GaussianMixture(problem.n_components, covariance_type=ct, tol=tol, reg_covar=reg_covar,
                          max_iter=max_iter, n_init=1, weights_init=init["weights"],
                          means_init=init["means"],
                          precisions_init=precisions_from_covariances(init["covariances"], ct),
                          random_state=problem.seed)
    with warnings.catch_warnings(), one_native_thread():  # see problem.kmeans_labels
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        est.fit(problem.X_train)
        wall = time.perf_counter() - start
    # GaussianMixture keeps no per-iteration trace; lower_bound_ is the mean log-likelihood at
    # the last E-step, i.e. before the final M-step.
    return make_fit("sklearn_em", _params(est), "log_likelihood", np.array([]),
                    int(est.n_iter_), bool(est.converged_), wall, 0.0)


def vb_posterior_samples(est, covariance_type, n_samples, seed):
    """Draws {weights (S, K), means (S, K, D), covariances (S, sklearn shape)} from the fitted
    variational posterior q(weights) q(precision) q(means | precision) of sklearn's VB."""
    rng = np.random.default_rng(seed)
    k, d = est.means_.shape
    w = rng.dirichlet(est.weight_concentration_, size=n_samples)
    nu, beta = np.atleast_1d(est.degrees_of_freedom_), est.mean_precision_
    prec = np.asarray(est.precisions_)
    covs, means = [], np.empty((n_samples, k, d))
    if covariance_type in ("full", "tied"):
        blocks = prec[None] if covariance_type == "tied" else prec
        dofs = np.broadcast_to(nu, (len(blocks),))
        draws = np.stack([stats.wishart(df=df, scale=p / df).rvs(n_samples, random_state=rng)
                          .reshape(n_samples, d, d) for p, df in zip(blocks, dofs, strict=True)],
                         axis=1)  # (S, K or 1, D, D) precisions
        cov_draws = np.linalg.inv(draws)
        for j in range(k):
            c = cov_draws[:, 0 if covariance_type == "tied" else j]
            chol = np.linalg.cholesky(c / beta[j])
            means[:, j] = est.means_[j] + (chol @ rng.standard_normal((n_samples, d, 1)))[..., 0]
        covs = cov_draws[:, 0] if covariance_type == "tied" else cov_draws
    else:
        shape = nu / 2.0
        p = prec.reshape(k, -1)  # (K, D) or (K, 1)
        draws = rng.gamma(shape[:, None], p / shape[:, None], size=(n_samples,) + p.shape)
        var = 1.0 / draws
        means = est.means_[None] + rng.standard_normal((n_samples, k, d)) * np.sqrt(
            var / beta[None, :, None])
        covs = var if covariance_type == "diag" else var[..., 0]
    return {"weights": w, "means": means, "covariances": np.asarray(covs)}


@register_method("sklearn_vb", colour="#332288",
                 models=("gaussian_mixture",), kind="posterior", uses_prior=True,
                 description="scikit-learn BayesianGaussianMixture (variational Bayes)")
def fit_sklearn_vb(problem, tol: NonNegative = 1e-6, max_iter: Count = 1000,
                   reg_covar: NonNegative = 1e-6, num_samples: Count = 1000):
    from sklearn.mixture import BayesianGaussianMixture

    prior, ct = problem.prior, problem.covariance_type
    alpha = np.asarray(prior.weight_concentration, float)
    if alpha.ndim:
        if not np.allclose(alpha, alpha[0]):
            raise ValueError("sklearn_vb needs a symmetric Dirichlet prior on the weights")
        alpha = alpha[0]
    psi = np.asarray(prior.covariance_prior, float)
    est = BayesianGaussianMixture(
        n_components=problem.n_components, covariance_type=ct, tol=tol, reg_covar=reg_covar,
        max_iter=max_iter, n_init=1, init_params="kmeans",
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=float(alpha), mean_precision_prior=float(prior.mean_precision),
        mean_prior=np.asarray(prior.mean_prior, float),
        degrees_of_freedom_prior=float(prior.degrees_of_freedom),
        covariance_prior=float(psi) if ct == "spherical" else psi, random_state=problem.seed)
    with warnings.catch_warnings(), one_native_thread():  # see problem.kmeans_labels
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        est.fit(problem.X_train)
        wall = time.perf_counter() - start
    samples = vb_posterior_samples(est, ct, num_samples, problem.seed)
    return make_fit("sklearn_vb", _params(est), "sklearn_vb_lower_bound", np.array([]),
                    int(est.n_iter_), bool(est.converged_), wall, 0.0, samples=samples,
                    extra={"sklearn_vb_lower_bound": float(est.lower_bound_)})
