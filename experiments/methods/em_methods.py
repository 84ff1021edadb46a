"""em, map_em, hard_em: the hand-written EM of em_reference, started from the shared init."""

from __future__ import annotations

import time
import warnings

import numpy as np

from .registry import MethodFit, register_method

EM_MODELS = ("gaussian_mixture", "poisson_mixture")


def precisions_from_covariances(covariances, covariance_type):
    """sklearn-shaped covariances -> the precisions_init that em_reference/sklearn take."""
    c = np.asarray(covariances, dtype=float)
    return np.linalg.inv(c) if covariance_type in ("full", "tied") else 1.0 / c


def make_estimator(problem, *, prior, assignment, tol, max_iter, reg_covar):
    """The em_reference estimator of the cell, with the shared initial parameters."""
    from em_reference import GaussianMixtureEM, PoissonMixtureEM

    k, init = problem.n_components, problem.init
    if problem.model.name == "poisson_mixture":
        return PoissonMixtureEM(k, tol=tol, max_iter=max_iter, n_init=1,
                                weights_init=init["weights"], rates_init=init["rates"],
                                prior=problem.prior if prior else None, assignment=assignment,
                                random_state=problem.seed)
    ct = problem.covariance_type
    return GaussianMixtureEM(
        k, covariance_type=ct, tol=tol, reg_covar=reg_covar, max_iter=max_iter, n_init=1,
        weights_init=init["weights"], means_init=init["means"],
        precisions_init=precisions_from_covariances(init["covariances"], ct),
        prior=problem.prior if prior else None, assignment=assignment,
        random_state=problem.seed)


def timed_fit(make, X):
    """Fit once (wall time, compilation included), then once more from the same start: the
    difference is the compile time (0 when an earlier cell already compiled these shapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: recorded in the `converged` column
        est = make()
        start = time.perf_counter()
        est.fit(X)
        wall = time.perf_counter() - start
        start = time.perf_counter()
        make().fit(X)
        warm = time.perf_counter() - start
    return est, wall, max(wall - warm, 0.0)


def em_params(est, model_name):
    if model_name == "poisson_mixture":
        return {"weights": est.weights_, "rates": est.rates_}
    return {"weights": est.weights_, "means": est.means_, "covariances": est.covariances_}


def _run(problem, objective_name, hard=False, **kw):
    est, wall, compile_time = timed_fit(lambda: make_estimator(problem, **kw), problem.X_train)
    return MethodFit(params=em_params(est, problem.model.name), objective_name=objective_name,
                     objective_trace=np.asarray(est.lower_bounds_), n_steps=int(est.n_iter_),
                     converged=bool(est.converged_), wall_time=wall, compile_time=compile_time,
                     hard_assignment=hard)


@register_method("em", models=EM_MODELS, is_em=True,
                 description="EM, maximum likelihood (em_reference)")
def fit_em(problem, tol=1e-6, max_iter=1000, reg_covar=1e-6):
    return _run(problem, "log_likelihood", prior=False, assignment="soft", tol=tol,
                max_iter=max_iter, reg_covar=reg_covar)


@register_method("map_em", models=EM_MODELS, uses_prior=True, is_em=True,
                 description="MAP-EM with the cell's prior (em_reference)")
def fit_map_em(problem, tol=1e-6, max_iter=1000, reg_covar=1e-6):
    return _run(problem, "log_joint", prior=True, assignment="soft", tol=tol,
                max_iter=max_iter, reg_covar=reg_covar)


@register_method("hard_em", models=EM_MODELS, is_em=True,
                 description="hard (classification) EM, maximum likelihood (em_reference)")
def fit_hard_em(problem, tol=1e-6, max_iter=1000, reg_covar=1e-6):
    return _run(problem, "classification_log_likelihood", hard=True, prior=False,
                assignment="hard", tol=tol, max_iter=max_iter, reg_covar=reg_covar)
