"""em, map_em, hard_em: the hand-written EM of em_reference, started from the shared init.

They apply to every model whose registration gives an EM estimator factory
(``ModelEntry.em_estimator``): the built-in Gaussian and Poisson mixtures, and any family
registered the same way.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..specs import Count, NonNegative
from .registry import make_fit, register_method


def has_em(model) -> bool:
    return model.em_estimator is not None


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


def fitted_params(est, param_names) -> dict:
    """{name: est.<name>_} for the model's parameters (scikit-learn's fitted-attribute names)."""
    return {n: np.asarray(getattr(est, n + "_")) for n in param_names}


def _run(method, problem, objective_name, *, use_prior, assignment, **options):
    model = problem.model
    prior = problem.prior if use_prior else None
    est, wall, compile_time = timed_fit(
        lambda: model.em_estimator(problem, prior=prior, assignment=assignment, **options),
        problem.X_train)
    return make_fit(method, fitted_params(est, model.param_names), objective_name,
                    np.asarray(est.lower_bounds_), int(est.n_iter_), bool(est.converged_), wall,
                    compile_time, hard_assignment=assignment == "hard")


@register_method("em", models=has_em, is_em=True,
                 description="EM, maximum likelihood (em_reference)")
def fit_em(problem, tol: NonNegative = 1e-6, max_iter: Count = 1000,
           reg_covar: NonNegative = 1e-6):
    return _run("em", problem, "log_likelihood", use_prior=False, assignment="soft", tol=tol,
                max_iter=max_iter, reg_covar=reg_covar)


@register_method("map_em", models=has_em, uses_prior=True, is_em=True,
                 description="MAP-EM with the cell's prior (em_reference)")
def fit_map_em(problem, tol: NonNegative = 1e-6, max_iter: Count = 1000,
               reg_covar: NonNegative = 1e-6):
    return _run("map_em", problem, "log_joint", use_prior=True, assignment="soft", tol=tol,
                max_iter=max_iter, reg_covar=reg_covar)


@register_method("hard_em", models=has_em, is_em=True,
                 description="hard (classification) EM, maximum likelihood (em_reference)")
def fit_hard_em(problem, tol: NonNegative = 1e-6, max_iter: Count = 1000,
                reg_covar: NonNegative = 1e-6):
    return _run("hard_em", problem, "classification_log_likelihood", use_prior=False,
                assignment="hard", tol=tol, max_iter=max_iter, reg_covar=reg_covar)
