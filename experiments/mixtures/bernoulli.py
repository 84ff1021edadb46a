"""The Bernoulli mixture's registration: prior, shared start, EM and CAVI estimators, density.

Parameters: weights (K,), probs (K, D); data: binary images (N, D) of 0/1. K = 1 is the
independent-pixels model (the bottom rung of the log p(x) ladder of the VAE figures).
"""

from __future__ import annotations

import numpy as np

from .. import densities
from ..models_registry import register_model
from .common import kmeans_labels, override_prior

PRIOR_FIELDS = ("weight_concentration", "probs_concentration1", "probs_concentration0")
START_CLIP = 0.02  # the start's probabilities stay in [0.02, 0.98]: no pixel starts impossible


def bernoulli_init(X, labels, n_components):
    """Weights (K,) and probs (K, D) = cluster fractions and cluster pixel means (clipped)."""
    X = np.asarray(X, float)
    counts = np.bincount(labels, minlength=n_components).astype(float)
    sums = np.stack([X[labels == k].sum(0) for k in range(n_components)])
    means = (sums + X.mean(0)) / (counts + 1.0)[:, None]  # an empty cluster: the data's mean
    weights = np.maximum(counts, 1e-3) / np.maximum(counts, 1e-3).sum()
    return {"weights": weights, "probs": np.clip(means, START_CLIP, 1.0 - START_CLIP)}


def initial_values(X, n_components, covariance_type, seed):
    """One k-means run on the pixels turned into weights and pixel probabilities."""
    return bernoulli_init(X, kmeans_labels(X, n_components, seed), n_components)


def build_prior(X, n_components, covariance_type, overrides):
    """em_reference's default Dirichlet-Beta prior with the grid's overrides, validated."""
    from em_reference import BernoulliMixturePrior

    prior = BernoulliMixturePrior.default(X, n_components)
    return override_prior(prior, overrides).validate(X.shape[1], n_components)


ZERO_NOTE = (
    "A Bernoulli mixture's maximum-likelihood pixel probability is exactly 0 (or 1) wherever "
    "the images a component is responsible for all have that pixel off (on). A held-out image "
    "with such a pixel the other way has probability zero under that component, and when that "
    "happens under every component its log-likelihood is -inf. em_reference keeps the "
    "probabilities at 1e-10 from 0 and 1, so the number in the table is finite, but it "
    "charges log(1e-10) = -23 nats per such pixel and depends on that floor: it is not a "
    "held-out log-likelihood of the MLE, which is -inf. MAP-EM's Beta prior keeps every "
    "probability inside (0, 1) and has no such images; compare held-out numbers between "
    "methods with a prior.")


def zero_probability_images(params, X_test):
    """How many held-out images (N, D) of 0/1 the point estimate gives probability zero with
    em_reference's floor taken away: in every component of positive weight, some pixel whose
    probability is at the floor (within 2 x MIN_PROB of 0 or 1) has the other value."""
    from em_reference.bernoulli import MIN_PROB

    probs, weights = np.asarray(params["probs"], float), np.asarray(params["weights"], float)
    X = np.asarray(X_test, float)
    at_zero, at_one = probs <= 2 * MIN_PROB, probs >= 1 - 2 * MIN_PROB
    impossible = (X @ at_zero.T + (1 - X) @ at_one.T) > 0  # (N, K)
    impossible |= (weights <= 0)[None, :]
    return int(np.count_nonzero(impossible.all(axis=1)))


def em_estimator(problem, *, prior, assignment, tol, max_iter, reg_covar):
    """em_reference's BernoulliMixtureEM started at the cell's shared initialisation
    (reg_covar does not apply to binary data)."""
    from em_reference import BernoulliMixtureEM

    init = problem.init
    return BernoulliMixtureEM(problem.n_components, tol=tol, max_iter=max_iter, n_init=1,
                              weights_init=init["weights"], probs_init=init["probs"],
                              prior=prior, assignment=assignment, random_state=problem.seed)


def cavi_estimator(problem, *, tol, max_iter):
    """em_reference's BernoulliMixtureCAVI (Beta pixel probabilities) with the cell's prior and
    Dirichlet weights, from the k-means partition of the shared initialisation."""
    from em_reference.cavi import BernoulliMixtureCAVI

    return BernoulliMixtureCAVI(
        problem.n_components, tol=tol, max_iter=max_iter, n_init=1, init_params="kmeans",
        weight_concentration_prior_type="dirichlet_distribution", prior=problem.prior,
        random_state=problem.seed)


register_model(
    "bernoulli_mixture", numpyro_model="models:bernoulli_mixture", data_family="bernoulli",
    description="Bernoulli mixture (binary images), (weights, probs), Dirichlet-Beta prior.",
    param_names=("weights", "probs"), align_param="probs",
    prior_fields=PRIOR_FIELDS, build_prior=build_prior, initial_values=initial_values,
    em_estimator=em_estimator, cavi_estimator=cavi_estimator,
    log_joint_matrix=lambda X, params, ct: densities.bernoulli_log_joint_matrix(X, params),
    n_params=lambda k, d, ct: int(k - 1 + k * d),
    held_out_zero=zero_probability_images, held_out_zero_note=ZERO_NOTE,
    table_columns=(("rmse_probs_vs_truth", "RMSE probs vs truth"),
                   ("rmse_probs_vs_em", "RMSE probs vs EM"),
                   ("posterior_sd_probs", "posterior sd probs"),
                   ("held_out_zero_probability", "held-out points of probability 0")),
    default_for_family=True)
