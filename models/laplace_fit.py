"""The Laplace approximation for any NumPyro model with global latent sites, judged as a
variational q by its ELBO (Bishop PRML 4.4; numpyro's AutoLaplaceApproximation places the same
Gaussian).

On the unconstrained space u (numpyro's bijections: stick-breaking weights, log scales, ...)
the target is log p(X, theta(u)) + log |d theta / d u| = -U(u), U numpyro's potential energy
(the density NUTS samples). q(u) = N(u*, H^-1) with u* the mode of -U (L-BFGS from each start)
and H = Hessian of U at u*. Its ELBO, a lower bound on log p(X) like every guide's,

    ELBO(q) = E_q[log p(X, u) - log q(u)] = E_q[-U(u) - log q(u)]

is estimated from elbo_particles independent draws (mean and Monte-Carlo standard error). It
is log p(X) itself, with no Monte-Carlo error (the integrand is constant), when the
posterior of u is Gaussian.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.initialization import init_to_uniform
from numpyro import handlers
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

from em_reference.config import one_blas_thread
from models._checks import check_init_strategy, check_seed, merge_model_kwargs
from models._common import (as_init_list, check_positive_float, check_positive_int,
                            init_loc_fn, posterior_inference_data, require_finite, to_numpy)
from models._lbfgs import lbfgs
from models._model_info import compile_timed, inspect_model, prepare_args
from models.diagnostics import n_observations
from models.map_fit import GRADIENT_TOL, LBFGS_MARGIN
from models.result import FitError, FitResult


@one_blas_thread()  # XLA's LAPACK calls: see em_reference.config
def fit_laplace(model, *args, seed=0, init=None, n_restarts=None, maxiter=2000,
                gradient_tol=GRADIENT_TOL, num_samples=1000, elbo_particles=2000,
                init_strategy=init_to_uniform, model_kwargs=None, **kwargs):
    """Fit q(u) = N(u*, H^-1) on the unconstrained space and estimate its ELBO.

    init, n_restarts, init_strategy : as fit_map (constrained starting values per restart);
        the kept restart has the highest -U(u*).
    maxiter, gradient_tol : L-BFGS steps at most; the mode is certified (status "ok") when
        ||grad U(u*)|| per observation <= gradient_tol (fit_map's certificate, on U).
    num_samples : draws of theta from q (``samples``; ``params`` is their mean, as fit_vi's).
    elbo_particles : independent single-draw ELBO estimates (``elbo``, ``elbo_se``).
    Returns FitResult with method "laplace" and objective "elbo_vi" (objective_trace: the one
    ELBO; the log density at the start and at the mode are in the message and
    diagnostics["log_density_at_mode"]; diagnostics["mode_unconstrained"] (P,) is u* and
    ["hessian_cholesky"] (P, P) the lower L of H = L L^T, in numpyro's flattening order).
    FitError when no restart reaches a finite mode or the Hessian there is not positive
    definite (a saddle or a flat direction: no Gaussian q).
    """
    t_start = time.perf_counter()
    kwargs = merge_model_kwargs(kwargs, model_kwargs)
    check_init_strategy(init_strategy)
    seed = check_seed(seed)
    maxiter = check_positive_int(maxiter, "maxiter")
    num_samples = check_positive_int(num_samples, "num_samples")
    elbo_particles = check_positive_int(elbo_particles, "elbo_particles", minimum=2)
    gradient_tol = check_positive_float(gradient_tol, "gradient_tol")
    args, kwargs = prepare_args(model, args, kwargs)
    info = inspect_model(model, args, kwargs)
    if info.params:
        raise ValueError(f"the Laplace approximation is over sample sites only; the model has "
                         f"param sites {sorted(info.params)}")
    if not info.latent:
        raise ValueError("the Laplace approximation needs latent sample sites; this model has "
                         "none")
    inits, n_restarts = as_init_list(init, info, n_restarts)
    n_obs = n_observations(model, args, kwargs)
    keys = jax.random.split(jax.random.PRNGKey(seed), n_restarts + 1)

    def start(key, values):
        """Unconstrained starting point: the restart's values, the strategy for the rest."""
        strategy = init_loc_fn(values, init_strategy)
        seeded = handlers.substitute(handlers.seed(model, key), substitute_fn=strategy)
        trace = handlers.trace(seeded).get_trace(*args, **kwargs)
        return unconstrain_fn(model, args, kwargs, {name: trace[name]["value"]
                                                    for name in info.latent})

    starts = [start(keys[i], inits[i] if i < len(inits) else None) for i in range(n_restarts)]
    unravel = ravel_pytree(starts[0])[1]
    x0 = jnp.stack([ravel_pytree(z)[0] for z in starts])

    def energy(x):
        return potential_energy(model, args, kwargs, unravel(x))

    def postprocess(z):
        return constrain_fn(model, args, kwargs, z, return_deterministic=True)

    def find_modes(x0):
        res = jax.vmap(lambda x: lbfgs(energy, x, max_iter=maxiter,
                                       gtol=LBFGS_MARGIN * gradient_tol * n_obs))(x0)
        return res, jnp.linalg.norm(jax.vmap(jax.grad(energy))(res.x), axis=1)

    find_c, compile_time = compile_timed(find_modes, x0)
    res, grad_norm = jax.tree.map(np.asarray, find_c(x0))
    ok = np.isfinite(res.fun) & np.all(np.isfinite(res.x), axis=1)
    if not ok.any():
        raise FitError("laplace: no restart reached a finite mode of the log density")
    best = int(np.flatnonzero(ok)[np.argmin(res.fun[ok])])
    mode = jnp.asarray(res.x[best])

    def approximate(mode, key):
        chol = jnp.linalg.cholesky(jax.hessian(energy)(mode))        # H = L L^T
        k_elbo, k_draw = jax.random.split(key)

        def draw(k, n):
            """n draws u = u* + L^-T eps (covariance (L L^T)^-1 = H^-1) and log q(u)."""
            eps = jax.random.normal(k, (n, mode.size))
            u = mode + jax.scipy.linalg.solve_triangular(chol, eps.T, lower=True, trans=1).T
            log_q = (-0.5 * jnp.sum(eps**2, axis=1) - 0.5 * mode.size * jnp.log(2.0 * jnp.pi)
                     + jnp.sum(jnp.log(jnp.diag(chol))))
            return u, log_q

        u, log_q = draw(k_elbo, elbo_particles)
        elbos = -jax.vmap(energy)(u) - log_q          # log p(X, u) - log q(u), per draw
        theta = jax.vmap(lambda u: postprocess(unravel(u)))(draw(k_draw, num_samples)[0])
        return chol, elbos, theta

    approx_c, dt = compile_timed(approximate, mode, keys[-1])
    compile_time += dt
    chol, elbos, theta = approx_c(mode, keys[-1])
    if not np.all(np.isfinite(np.asarray(chol))):
        raise FitError("laplace: the Hessian of the log density at the mode is not positive "
                       "definite (a saddle or a flat direction): no Gaussian approximation")
    elbos = np.asarray(elbos)
    n_bad = int((~np.isfinite(elbos)).sum())
    if n_bad:
        raise FitError(f"laplace: {n_bad} of {len(elbos)} ELBO estimates are non-finite")
    samples = to_numpy({k: v for k, v in theta.items() if k in info.latent
                        or k in info.deterministic})
    require_finite(samples, "Laplace draws", "laplace")
    point = {k: v.mean(0) for k, v in samples.items()}
    elbo, elbo_se = float(elbos.mean()), float(elbos.std(ddof=1) / np.sqrt(len(elbos)))
    gradient_norm = float(grad_norm[best]) / n_obs
    certified = bool(gradient_norm <= gradient_tol)
    message = (f"laplace: restart {best} of {n_restarts} kept; L-BFGS {int(res.n_iter[best])} "
               f"steps, log density {-res.fun_init[best]:.10g} -> {-res.fun[best]:.10g}; "
               f"gradient norm {gradient_norm:.3g} per observation "
               + ("<=" if certified else ">") + f" {gradient_tol:g}"
               + ("; certified mode" if certified else "; NOT CONVERGED")
               + f"; ELBO {elbo:.6g} +- {elbo_se:.2g} ({len(elbos)} estimates)")
    return FitResult(
        method="laplace", params=point, samples=samples, objective_name="elbo_vi",
        objective_trace=np.array([elbo]), elbo=elbo,
        elbo_se=elbo_se, inference_data=posterior_inference_data(samples, 1),
        wall_time=time.perf_counter() - t_start, compile_time=compile_time,
        converged=certified, status="ok" if certified else "not_converged",
        n_steps=int(res.n_iter[best]),
        diagnostics={"n_nonfinite": n_bad, "divergences": None, "r_hat_max": None,
                     "ess_bulk_min": None, "message": message,
                     "restart_objectives": np.where(ok, -res.fun, np.nan),
                     "best_restart": best, "n_failed_restarts": int((~ok).sum()),
                     "gradient_norm": gradient_norm, "gradient_tol": gradient_tol,
                     "n_observations": n_obs, "log_density_at_mode": float(-res.fun[best]),
                     "mode_unconstrained": np.asarray(mode),
                     "hessian_cholesky": np.asarray(chol)})
