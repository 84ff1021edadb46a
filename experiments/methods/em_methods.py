"""em, map_em, hard_em: the hand-written EM of em_reference, started from the shared init.

They apply to every model whose registration gives an EM estimator factory
(``ModelEntry.em_estimator``): the built-in Gaussian and Poisson mixtures, and any family
registered the same way.

Their defaults are em_reference's research defaults (tol on Aitken's distance to the
optimum, the gradient certificate, 10,000 E-steps) with SQUAREM for soft EM: a cell either
reaches a certified optimum (fit_status "ok") or says it did not ("not_converged"). Every
row carries the certificate (``gradient_norm``, per sample) and the estimated distance to
the optimum. ``em`` also runs a census of local optima: ``n_restarts`` further fits from
random starts (``restart_init``), whose final objectives and certificates are stored in the
row (``restart_objectives``, ``restart_certified``) for the report's table of distinct
optima; the fit the row reports stays the one from the shared start, so that every method
of a cell is compared from the same point. ``em`` also stores ``decomposition_steps``
iterations of plain EM from that start split as in PRML fig. 9.14 (``em_decomposition``:
log p(X | theta_t), the ELBO after each M-step and the KL each E-step closes).

All three pad the rows with zero-weight rows to ``row_bucket`` * 2**j rows (default
ROW_BUCKET; 0 lays the data out at their own size): a zero-weight row changes no sum, and
cells of the same D, K and options then share one compiled EM loop whatever their N.
"""

from __future__ import annotations

import inspect
import json
import time
import warnings
from typing import Literal

import numpy as np

from ..specs import Count, NonNegative, NonNegativeInt
from .registry import make_fit, register_method

Acceleration = Literal["squarem", "none"]
RestartInit = Literal["random_from_data", "k-means++", "kmeans", "random"]


def has_em(model) -> bool:
    return model.em_estimator is not None


# the grid's EM fits pad their rows (zero weights) to ROW_BUCKET, 2 * ROW_BUCKET, ...: every
# data set of the default grid (120-1,600 rows) then shares one compiled loop per D, K and
# options, at a run cost of microseconds per E-step
ROW_BUCKET = 2048


def layout_options(method, row_bucket=ROW_BUCKET) -> dict:
    """{"row_bucket": row_bucket} for an estimator method that takes it (em_reference's fit
    and em_decomposition), else {} (a family registered with an estimator of its own);
    row_bucket 0: {} (data laid out at their own size)."""
    try:
        accepted = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return {}
    return {"row_bucket": row_bucket} if row_bucket and "row_bucket" in accepted else {}


def timed_fit(make, X, row_bucket=ROW_BUCKET):
    """Fit once (wall time, compilation included), then once more from the same start: the
    difference is the compile time (0 when an earlier cell already compiled these shapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: recorded in the `fit_status` column
        est = make()
        start = time.perf_counter()
        est.fit(X, **layout_options(est.fit, row_bucket))
        wall = time.perf_counter() - start
        start = time.perf_counter()
        again = make()
        again.fit(X, **layout_options(again.fit, row_bucket))
        warm = time.perf_counter() - start
    return est, wall, max(wall - warm, 0.0)


def fitted_params(est, param_names) -> dict:
    """{name: est.<name>_} for the model's parameters (scikit-learn's fitted-attribute names)."""
    return {n: np.asarray(getattr(est, n + "_")) for n in param_names}


def _with_options(est, **options):
    """``est`` with those of ``options`` it has as parameters set (an estimator registered by
    a family without, e.g., acceleration keeps its own behaviour)."""
    known = est.get_params(deep=False) if hasattr(est, "get_params") else {}
    given = {k: v for k, v in options.items() if k in known}
    return est.set_params(**given) if given else est


def _factory(problem, use_prior, assignment, acceleration, tol, max_iter, reg_covar):
    model = problem.model
    prior = problem.prior if use_prior else None

    def make():
        est = model.em_estimator(problem, prior=prior, assignment=assignment, tol=tol,
                                 max_iter=max_iter, reg_covar=reg_covar)
        return _with_options(est, acceleration=None if acceleration == "none" else acceleration)
    return make


def certificate_columns(est) -> dict:
    """The evidence of the stopping point: the certificate (gradient norm of the objective
    w.r.t. the unconstrained parameters, per sample; nan for hard EM, certified as a fixed
    point instead), the gradient that rounding the parameters alone leaves (the threshold
    where it exceeds cert_tol), Aitken's estimated distance to the optimum per sample, and
    EM's own objective there (lower_bound_: the log-likelihood or log joint with reg_covar's
    term, the quantity restart_objectives holds)."""
    # what EM maximised, as its restarts' objectives (a family without lower_bound_: the
    # trace's last entry)
    objective = getattr(est, "lower_bound_", None)
    objective = np.asarray(est.lower_bounds_)[-1] if objective is None else objective
    return {"em_objective": float(objective),
            "gradient_norm": float(getattr(est, "gradient_norm_", np.nan)),
            "certificate_floor": float(getattr(est, "certificate_floor_", np.nan)),
            "distance_to_optimum": float(getattr(est, "distance_to_optimum_", np.nan))}


def restart_census(make, X, n_restarts, restart_init, seed, row_bucket=ROW_BUCKET) -> dict:
    """Columns of ``n_restarts`` EM fits from random starts (one vmapped fit): their final
    objectives (JSON list, EM's objective as lower_bound_), whether each is certified, and
    the seconds the census took (compilation included; not part of the row's wall_time,
    which times the fit from the shared start alone). Empty when the estimator cannot report
    restarts one by one."""
    est = make()
    params = est.get_params(deep=False) if hasattr(est, "get_params") else {}
    if n_restarts == 0 or not {"n_init", "init_params", "random_state"} <= set(params):
        return {}
    inits = {k: None for k in params if k.endswith("_init") and k != "n_init"}
    est = est.set_params(**inits, n_init=n_restarts, init_params=restart_init,
                         random_state=seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, **layout_options(est.fit, row_bucket))
    seconds = time.perf_counter() - start
    if not hasattr(est, "restart_lower_bounds_"):
        return {}
    return {"restart_objectives": json.dumps([float(v) for v in est.restart_lower_bounds_]),
            "restart_certified": json.dumps([bool(v) for v in est.restart_converged_]),
            "restart_census_time": seconds}


def decomposition_column(problem, n_steps, row_bucket=ROW_BUCKET) -> dict:
    """{"em_decomposition": JSON} of ``n_steps`` iterations of plain EM from the shared start,
    each split into the M-step's gain and the KL its E-step closes (PRML fig. 9.14;
    em_reference.elbo.em_decomposition), for the report's decomposition figure. Empty for
    n_steps 0 or an estimator without ``em_decomposition``."""
    if n_steps == 0:
        return {}
    est = problem.model.em_estimator(problem, prior=None, assignment="soft", tol=0.0,
                                     max_iter=0, reg_covar=0.0)
    if not hasattr(est, "em_decomposition"):
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=0: "not converged" by design
        est.fit(problem.X_train, **layout_options(est.fit, row_bucket))
    steps = est.em_decomposition(problem.X_train, n_steps,
                                 **layout_options(est.em_decomposition, row_bucket))
    return {"em_decomposition": json.dumps(steps)}


def _run(method, problem, objective_name, *, use_prior, assignment, acceleration, tol,
         max_iter, reg_covar, n_restarts=0, restart_init="random_from_data",
         decomposition_steps=0, row_bucket=ROW_BUCKET):
    model = problem.model
    make = _factory(problem, use_prior, assignment, acceleration, tol, max_iter, reg_covar)
    est, wall, compile_time = timed_fit(make, problem.X_train, row_bucket)
    extra = certificate_columns(est)
    extra.update(restart_census(make, problem.X_train, n_restarts, restart_init,
                                problem.seed, row_bucket))
    extra.update(decomposition_column(problem, decomposition_steps, row_bucket))
    diagnostics = {"gradient_norm": extra["gradient_norm"],
                   "distance_to_optimum": extra["distance_to_optimum"]}
    return make_fit(method, fitted_params(est, model.param_names), objective_name,
                    np.asarray(est.lower_bounds_), int(est.n_iter_), bool(est.converged_), wall,
                    compile_time, hard_assignment=assignment == "hard", extra=extra,
                    diagnostics=diagnostics)


@register_method("em", colour="#0072B2", models=has_em, is_em=True,
                 description="EM, maximum likelihood (em_reference), certified optimum; plus "
                             "a census of local optima from random restarts")
def fit_em(problem, tol: NonNegative = 1e-10, max_iter: Count = 10_000,
           reg_covar: NonNegative = 1e-6, acceleration: Acceleration = "squarem",
           n_restarts: NonNegativeInt = 10, restart_init: RestartInit = "random_from_data",
           decomposition_steps: NonNegativeInt = 12, row_bucket: NonNegativeInt = ROW_BUCKET):
    return _run("em", problem, "log_likelihood", use_prior=False, assignment="soft",
                acceleration=acceleration, tol=tol, max_iter=max_iter, reg_covar=reg_covar,
                n_restarts=n_restarts, restart_init=restart_init,
                decomposition_steps=decomposition_steps, row_bucket=row_bucket)


@register_method("map_em", colour="#D55E00", models=has_em, uses_prior=True, is_em=True,
                 description="MAP-EM with the cell's prior (em_reference), certified optimum")
def fit_map_em(problem, tol: NonNegative = 1e-10, max_iter: Count = 10_000,
               reg_covar: NonNegative = 1e-6, acceleration: Acceleration = "squarem",
               row_bucket: NonNegativeInt = ROW_BUCKET):
    return _run("map_em", problem, "log_joint", use_prior=True, assignment="soft",
                acceleration=acceleration, tol=tol, max_iter=max_iter, reg_covar=reg_covar,
                row_bucket=row_bucket)


@register_method("hard_em", colour="#009E73", models=has_em, is_em=True,
                 description="hard (classification) EM, maximum likelihood (em_reference), "
                             "to a fixed point of its assignment step")
def fit_hard_em(problem, tol: NonNegative = 1e-10, max_iter: Count = 10_000,
                reg_covar: NonNegative = 1e-6, row_bucket: NonNegativeInt = ROW_BUCKET):
    # SQUAREM extrapolates soft EM's smooth map; hard EM's is piecewise constant
    return _run("hard_em", problem, "classification_log_likelihood", use_prior=False,
                assignment="hard", acceleration="none", tol=tol, max_iter=max_iter,
                reg_covar=reg_covar, row_bucket=row_bucket)
