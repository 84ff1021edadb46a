"""Run one cell: build the problem, fit, score. Runs in a worker.

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
from dataclasses import dataclass

import jax
import numpy as np

from . import scoring
from .cells import Cell
from .compile_clock import CompileClock
from .methods import METHODS
from .problem import build_problem

MEMORY_BUDGET_GB = float(os.environ.get("MIXBENCH_WORKER_MEMORY_GB", "3"))


@dataclass
class CellOutcome:
    row: dict
    arrays: dict
    inference_data: object = None
    error_text: str | None = None


def identity_columns(cell: Cell) -> dict:
    return {"key": cell.key, "config_key": cell.config_key, "dataset": cell.dataset,
            "model": cell.model,
            "n_components": cell.n_components, "covariance_type": cell.covariance_type,
            "method": cell.method, "seed": cell.seed,
            "dataset_params": json.dumps(cell.dataset_params, sort_keys=True),
            "model_options": json.dumps(cell.model_options, sort_keys=True),
            "method_options": json.dumps(cell.method_options, sort_keys=True),
            "prior": json.dumps(cell.prior, sort_keys=True),
            "held_out_fraction": cell.held_out_fraction,
            "code_version": cell.code_version, "data_hash": cell.data_hash}


def fit_method(problem, method: str, options: dict):
    entry = METHODS[method]
    return entry.fit(problem, **entry.check_options(options))


def _num(value):
    return float("nan") if value is None else float(value)


def fit_columns(fit) -> dict:
    """The columns every FitResult gives: ELBO, steps, convergence, times, diagnostics,
    and the fit's own extra columns."""
    diag = fit.diagnostics or {}
    compile_time = _num(fit.compile_time)
    status = getattr(fit, "status", None) or ("ok" if fit.converged else "not_converged")
    return {"elbo_vi": _num(fit.elbo), "elbo_vi_se": _num(fit.elbo_se),
            "n_steps": int(fit.n_steps), "converged": bool(fit.converged), "fit_status": status,
            "objective_name": fit.objective_name or "", "wall_time": float(fit.wall_time),
            "compile_time": compile_time,
            "run_time": float(fit.wall_time - compile_time) if np.isfinite(compile_time)
            else float(fit.wall_time),
            "r_hat_max": _num(diag.get("r_hat_max")),
            "ess_bulk_min": _num(diag.get("ess_bulk_min")),
            "divergences": _num(diag.get("divergences")),
            # the certificate of an optimum (EM, MAP): gradient norm per sample there
            "gradient_norm": _num(diag.get("gradient_norm")),
            **dict(getattr(fit, "extra", None) or {})}


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
    with CompileClock() as clock:
        try:
            if imports:
                from .config import import_modules

                import_modules(imports)
            problem = build_problem(cell)
            fit = fit_method(problem, cell.method, cell.method_options)
            metric_cols, arrays = scoring.score(problem, fit, METHODS[cell.method].is_em)
        except Exception as exc:  # noqa: BLE001  (recorded, never dropped)
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                       wall_time=time.perf_counter() - start)
            return CellOutcome(row, {}, None, traceback.format_exc())
    row.update(status="ok", error="")
    row.update(metric_cols)
    row.update(fit_columns(fit))
    # the whole cell (data, fit, extra fits, scoring) and the part of it JAX spent tracing,
    # lowering and compiling: the grid's compile share (wall_time times the fit alone)
    row.update(cell_time=time.perf_counter() - start, cell_compile_time=clock.seconds)
    return CellOutcome(row, arrays, fit.inference_data)
