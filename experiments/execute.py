"""Run one cell: build the problem, fit, align labels, compute metrics. Runs in a worker.

``run_cell(cell) -> CellOutcome`` never raises for a failing method: the error becomes a row with
status "failed" and the traceback, so no cell is silently dropped. Nothing is written here; the
parent process stores outcomes (so remote Dask workers need no shared disk).
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from dataclasses import dataclass, replace
from functools import lru_cache

import jax
import numpy as np

from . import alignment, metrics
from .cells import Cell
from .methods import METHODS
from .problem import Problem, build_problem

REFERENCE_METHOD = "em"
MEMORY_BUDGET_GB = float(os.environ.get("MIXBENCH_WORKER_MEMORY_GB", "1.5"))


@dataclass
class CellOutcome:
    row: dict
    arrays: dict
    inference_data: object = None
    error_text: str | None = None


def identity_columns(cell: Cell) -> dict:
    return {"key": cell.key, "dataset": cell.dataset, "model": cell.model,
            "n_components": cell.n_components, "covariance_type": cell.covariance_type,
            "method": cell.method, "seed": cell.seed,
            "dataset_params": json.dumps(cell.dataset_params, sort_keys=True),
            "method_options": json.dumps(cell.method_options, sort_keys=True),
            "prior": json.dumps(cell.prior, sort_keys=True),
            "held_out_fraction": cell.held_out_fraction}


def fit_method(problem: Problem, method: str, options: dict):
    entry = METHODS[method]
    return entry.fit(problem, **entry.check_options(options))


@lru_cache(maxsize=64)
def _reference_fit(cell: Cell):
    """The EM solution of the cell's problem (default EM options), cached per process."""
    ref_cell = replace(cell, method=REFERENCE_METHOD, method_options={})
    problem = build_problem(ref_cell)
    return fit_method(problem, REFERENCE_METHOD, {})


def reference_params(problem: Problem, fit):
    """EM's point estimate for the same problem, or None if EM does not apply or fails."""
    cell = problem.cell
    if REFERENCE_METHOD not in METHODS or not METHODS[REFERENCE_METHOD].supports(cell.model):
        return None
    if cell.method == REFERENCE_METHOD and cell.method_options in (
            {}, METHODS[REFERENCE_METHOD].defaults):
        return fit.params
    try:
        return _reference_fit(replace(cell, method=REFERENCE_METHOD, method_options={})).params
    except Exception:  # noqa: BLE001  (the reference is optional; the columns stay NaN)
        return None


def _align_to(problem, params, samples, reference):
    model = problem.model
    names = model.component_params(problem.covariance_type)
    log_scale = model.align_param == "rates"
    perm = alignment.match_components(reference[model.align_param], params[model.align_param],
                                      log_scale)
    aligned = alignment.permute_params(params, perm, names)
    aligned_samples = None
    if samples is not None and model.align_param in samples:
        aligned_samples = alignment.align_samples(samples, reference[model.align_param],
                                                  model.align_param, names, log_scale)
    return aligned, aligned_samples


def evaluate(problem: Problem, fit) -> tuple[dict, dict]:
    """(metric columns, arrays to store) for a fitted cell."""
    entry = METHODS[problem.cell.method]
    row = metrics.fit_metrics(problem, fit, entry.is_em)
    d = problem.X_train.shape[1]
    ct = problem.covariance_type
    truth = problem.dataset.truth
    em_params = reference_params(problem, fit)
    k = problem.n_components
    truth_fits = (truth is not None and len(truth["weights"]) == k
                  and problem.model.align_param in truth)
    if truth_fits:
        anchor = truth
    elif em_params is not None:
        anchor = em_params
    else:
        anchor = fit.params
    aligned, aligned_samples = _align_to(problem, fit.params, fit.samples, anchor)
    full = metrics.as_full(aligned, ct, d)
    if truth_fits:
        row.update(metrics.parameter_errors(full, truth, "vs_truth"))
    if em_params is not None:
        em_aligned, _ = _align_to(problem, em_params, None, anchor)
        row.update(metrics.parameter_errors(full, metrics.as_full(em_aligned, ct, d), "vs_em"))
    if aligned_samples is not None:
        row.update(metrics.posterior_summaries(aligned_samples))
    arrays = {"trace": np.asarray(fit.objective_trace, dtype=float)}
    arrays.update({f"param/{n}": np.asarray(v) for n, v in fit.params.items()})
    arrays.update({f"aligned/{n}": np.asarray(v) for n, v in aligned.items()})
    if aligned_samples is not None:
        arrays.update({f"sample/{n}": np.asarray(v) for n, v in aligned_samples.items()})
    return row, arrays


def _diagnostic_columns(fit) -> dict:
    diag = fit.diagnostics or {}

    def num(name):
        value = diag.get(name)
        return float(value) if value is not None else float("nan")

    return {"r_hat_max": num("r_hat_max"), "ess_bulk_min": num("ess_bulk_min"),
            "divergences": num("divergences")}


def run_cell(cell: Cell, imports=()) -> CellOutcome:
    """Fit and score one cell; failures are returned as a row with status "failed".

    imports: modules to import first (the grid's own registrations; a fresh worker process
    knows only the built-ins)."""
    try:
        return _run_cell(cell, imports)
    finally:
        # compiled programs of every shape pile up in a long-lived worker (about 0.1 GB per
        # dataset and method); past a budget they are dropped (the persistent compilation
        # cache still holds them on disk)
        if resident_gb() > MEMORY_BUDGET_GB:
            jax.clear_caches()


def resident_gb() -> float:
    """Resident memory of this process in GiB (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (OSError, ValueError, AttributeError):
        return 0.0


def _run_cell(cell, imports):
    # ArviZ warns about every one-chain VI posterior ("Shape validation failed"): noise here,
    # since r_hat is reported for NUTS only
    logging.getLogger("arviz").setLevel(logging.ERROR)
    row = identity_columns(cell)
    start = time.perf_counter()
    try:
        if imports:
            from .config import import_modules

            import_modules(imports)
        problem = build_problem(cell)
        fit = fit_method(problem, cell.method, cell.method_options)
        metric_cols, arrays = evaluate(problem, fit)
    except Exception as exc:  # noqa: BLE001  (recorded, never dropped)
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                   wall_time=time.perf_counter() - start)
        return CellOutcome(row, {}, None, traceback.format_exc())
    row.update(status="ok", error="")
    row.update(metric_cols)
    row.update(elbo_vi=fit.elbo_vi, elbo_vi_se=fit.elbo_vi_se, n_steps=int(fit.n_steps),
               converged=bool(fit.converged), objective_name=fit.objective_name,
               wall_time=float(fit.wall_time), compile_time=float(fit.compile_time),
               run_time=float(fit.wall_time - fit.compile_time)
               if np.isfinite(fit.compile_time) else float(fit.wall_time))
    row.update(_diagnostic_columns(fit))
    row.update(fit.extra)
    return CellOutcome(row, arrays, fit.inference_data)
