"""MAP (or MLE) for any NumPyro model: AutoDelta SVI with Adam, restarts in parallel, then an
L-BFGS polish on the unconstrained space; the kept restart is the one with the best log joint."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jax.flatten_util import ravel_pytree
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.infer.initialization import init_to_uniform

from em_reference.config import one_blas_thread
from models._checks import check_init_strategy, check_seed, merge_model_kwargs
from models._common import (as_init_list, check_positive_float, check_positive_int,
                            init_loc_fn, require_finite, to_numpy, with_deterministic)
from models._lbfgs import lbfgs
from models._model_info import compile_timed, inspect_model, prepare_args, split_args
from models._svi_loop import (init_states, over_restarts, ready_svi, relative_window_test,
                              run_restarts)
from models.diagnostics import n_observations
from models.result import FitError, FitResult


# the certificate: gradient norm per observation (see fit_map's docstring). 1e-6 keeps the
# objective within ~1e-12 nats per observation of the stationary point for O(1) curvature
GRADIENT_TOL = 1e-6
# L-BFGS aims this factor below the tolerance, so that its last step is not a borderline pass
LBFGS_MARGIN = 0.1


def _no_guide(*args, **kwargs):
    """Guide of a model without latent sample sites: SVI then only optimises its params."""


@one_blas_thread()  # XLA's LAPACK calls: see em_reference.config
def fit_map(model, *args, seed=0, init=None, n_restarts=None, num_steps=5000,
            learning_rate=0.01, window=100, tol=1e-7, polish=True, polish_maxiter=1000,
            polish_max_dim=5000, gradient_tol=GRADIENT_TOL, init_strategy=init_to_uniform,
            progress_bar=False, model_kwargs=None, **kwargs):
    """Maximise log p(X, theta) (or log p(X | theta) for a model with only param sites).

    model, *args, **kwargs : any NumPyro model and its arguments (extra keyword arguments not
        listed here go to the model; ``model_kwargs`` passes names that collide with options).
    init : dict of constrained values keyed by site name (e.g. EM's or k-means' solution), or a
        list of such dicts, one per restart; restarts beyond the list start from
        ``init_strategy`` (latent sites; default numpyro's init_to_uniform, uniform in (-2, 2)
        on the unconstrained space, as numpyro's MCMC) or the params' own initial values, each
        with its own key.
    n_restarts : restarts run in parallel (vmap); default len(init) or 1.
    num_steps, learning_rate, window, tol : Adam runs at most num_steps steps and hands over
        to L-BFGS when the relative change of its mean loss between two consecutive windows of
        ``window`` steps stays below ``tol`` + 2 standard errors (twice in a row).
    polish : then run L-BFGS (models._lbfgs) from the Adam solution on the unconstrained space
        (skipped above ``polish_max_dim`` unconstrained dimensions) until the gradient
        certificate holds; kept only if it improves the objective.
    gradient_tol : the certificate. diagnostics["gradient_norm"] is the Euclidean norm of the
        gradient of the objective (log joint, or log-likelihood for a model with only param
        sites) with respect to the unconstrained parameters (numpyro's bijections: stick-
        breaking weights, log-diagonal Cholesky covariances, log rates, ...) at the returned
        point, divided by the number of observations (diagnostics["n_observations"]).
        status "ok" (converged) only when gradient_norm <= gradient_tol and the model finds
        nothing degenerate; otherwise "not_converged" with the reason in the message. A
        likelihood that grows without bound (a Gaussian component collapsing on a point: the
        MLE does not exist) never passes: the gradient along the collapsing log-variance stays
        near its responsibility mass, and the model's ``degenerate`` hook (the mixtures: a
        variance or covariance eigenvalue below 1e-12 of the data's variance) names it.
    Returns FitResult with method "map" and objective "log_joint", or "mle" and
    "log_likelihood" when the model has no latent sample sites. Raises FitError if every
    restart failed (non-finite loss or parameters).
    """
    t_start = time.perf_counter()
    kwargs = merge_model_kwargs(kwargs, model_kwargs)
    check_init_strategy(init_strategy)
    seed = check_seed(seed)
    num_steps = check_positive_int(num_steps, "num_steps")
    window = check_positive_int(window, "window")
    polish_maxiter = check_positive_int(polish_maxiter, "polish_maxiter")
    check_positive_float(learning_rate, "learning_rate")
    check_positive_float(tol, "tol")
    gradient_tol = check_positive_float(gradient_tol, "gradient_tol")
    args, kwargs = prepare_args(model, args, kwargs)
    info = inspect_model(model, args, kwargs)
    margs = split_args(args, kwargs)
    if not info.latent and not info.params:
        raise ValueError("the model has neither latent sample sites nor param sites: "
                         "nothing to fit")
    inits, n_restarts = as_init_list(init, info, n_restarts)
    n_obs = n_observations(model, args, kwargs)
    method, objective = ("map", "log_joint") if info.latent else ("mle", "log_likelihood")

    def make_svi(values):
        guide = (AutoDelta(model, init_loc_fn=init_loc_fn(values, init_strategy))
                 if info.latent else _no_guide)
        return SVI(model, guide, numpyro.optim.Adam(learning_rate), Trace_ELBO())

    keys = jax.random.split(jax.random.PRNGKey(seed), n_restarts)
    states, compile_time = init_states(make_svi, keys, inits, info, margs)
    loop = run_restarts(make_svi, states, margs, max_steps=num_steps, window=window,
                        test=relative_window_test(tol), progress_bar=progress_bar, desc=method)
    compile_time += loop.compile_time
    if loop.failed.all():
        raise FitError(f"{method}: every restart ({n_restarts}) hit a non-finite loss "
                       f"({int(loop.n_nonfinite.sum())} non-finite values); the model's log "
                       "density is NaN/inf at the points visited")

    # unconstrained parameters of every restart, flattened for L-BFGS
    get_params = make_svi(None).optim.get_params
    u = jax.vmap(lambda s: get_params(s.optim_state))(loop.states)
    unravel = ravel_pytree(jax.tree.map(lambda x: x[0], u))[1]
    flat = jax.vmap(lambda t: ravel_pytree(t)[0])(u)
    do_polish = polish and flat.shape[1] <= polish_max_dim

    def finish(flat, dyn):
        args, kwargs = margs.rebuild(dyn)
        svi = ready_svi(make_svi, args, kwargs)

        def loss_fn(x):
            return svi.loss.loss(jax.random.PRNGKey(0), svi.constrain_fn(unravel(x)), model,
                                 svi.guide, *args, **kwargs)

        def point(x):
            constrained = svi.constrain_fn(unravel(x))
            out = svi.guide.median(constrained) if info.latent else {}
            return {**out, **{k: v for k, v in constrained.items() if k in info.params}}

        if do_polish:
            res = over_restarts(lambda x: lbfgs(loss_fn, x, max_iter=polish_maxiter,
                                                gtol=LBFGS_MARGIN * gradient_tol * n_obs))(flat)
            f0 = res.fun_init
            better = jnp.isfinite(res.fun) & (res.fun <= f0)
            x = jnp.where(better[:, None], res.x, flat)
            f, nit, ok = jnp.where(better, res.fun, f0), res.n_iter, res.converged
        else:
            f0 = over_restarts(loss_fn)(flat)
            x, f, nit, ok = flat, f0, jnp.zeros(len(f0), int), jnp.zeros(len(f0), bool)
        grad_norm = jnp.linalg.norm(over_restarts(jax.grad(loss_fn))(x), axis=1)
        return jax.vmap(point)(x), x, f, f0, nit, ok, grad_norm

    finish_c, dt = compile_timed(finish, flat, margs.dyn)
    compile_time += dt
    points, x, fun, f_adam, nit, lbfgs_ok, grad_norm = jax.tree.map(
        np.asarray, finish_c(flat, margs.dyn))

    ok = ~loop.failed & np.isfinite(fun) & np.all(np.isfinite(x), axis=1)
    if not ok.any():
        raise FitError(f"{method}: no restart ended with a finite objective and finite "
                       "parameters")
    best = int(np.flatnonzero(ok)[np.argmin(fun[ok])])
    params = {k: v[best] for k, v in points.items()}
    params = to_numpy(with_deterministic(model, margs, params, info, batch_ndims=0))
    require_finite(params, "parameters", method)

    adam_conv = bool(loop.converged[best])
    polished = bool(do_polish and fun[best] < f_adam[best])
    gradient_norm = float(grad_norm[best]) / n_obs
    degenerate = _degenerate(model, params, args, kwargs)
    certified = bool(gradient_norm <= gradient_tol) and degenerate is None
    message = (f"{method}: restart {best} of {n_restarts} kept; Adam "
               f"{'converged' if adam_conv else 'hit num_steps'} after "
               f"{len(loop.losses[best])} steps; "
               + (f"L-BFGS {int(nit[best])} steps "
                  f"({_lbfgs_stop(lbfgs_ok[best], nit[best], polish_maxiter)}), objective "
                  f"{-f_adam[best]:.10g} -> {-fun[best]:.10g}" if do_polish else
                  "no L-BFGS polish (" + ("polish=False" if not polish else
                                          f"{flat.shape[1]} unconstrained dims") + ")")
               + f"; gradient norm {gradient_norm:.3g} per observation "
               + ("<=" if gradient_norm <= gradient_tol else ">") + f" {gradient_tol:g}"
               + ("" if degenerate is None else f"; DEGENERATE: {degenerate}")
               + ("; certified optimum" if certified else "; NOT CONVERGED"))
    trace = -np.concatenate([loop.losses[best], [fun[best]]])
    return FitResult(
        method=method, params=params, samples=None, objective_name=objective,
        objective_trace=trace, elbo=None, elbo_se=None, inference_data=None,
        wall_time=time.perf_counter() - t_start, compile_time=compile_time,
        converged=certified, status="ok" if certified else "not_converged",
        n_steps=int(len(loop.losses[best]) + nit[best]),
        diagnostics={"n_nonfinite": int(loop.n_nonfinite.sum()), "divergences": None,
                     "r_hat_max": None, "ess_bulk_min": None, "message": message,
                     "restart_objectives": np.where(ok, -fun, np.nan),
                     "n_failed_restarts": int((~ok).sum()), "best_restart": best,
                     "adam_converged": adam_conv, "polished": polished,
                     "objective_before_polish": float(-f_adam[best]),
                     "gradient_norm": gradient_norm, "gradient_tol": gradient_tol,
                     "n_observations": n_obs, "lbfgs_converged": bool(lbfgs_ok[best]),
                     "degenerate": degenerate})


def _lbfgs_stop(ok, n_iter, max_iter):
    if ok:
        return "gradient below tolerance"
    return "hit polish_maxiter" if n_iter >= max_iter else "stopped: no further decrease"


def _degenerate(model, params, args, kwargs):
    """The model's own test for a degenerate optimum (``model.degenerate(params, *args,
    **kwargs) -> message or None``, e.g. a collapsed mixture component), None without one."""
    check = getattr(model, "degenerate", None)
    return None if check is None else check(params, *args, **kwargs)
