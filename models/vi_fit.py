"""Variational inference for any NumPyro model: an autoguide (or the user's guide) fitted by SVI
with Adam, restarts in parallel, the final ELBO estimated with many particles."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions.transforms import AffineTransform
from numpyro.infer import SVI, Predictive, RenyiELBO, Trace_ELBO
from numpyro.infer.autoguide import (AutoDAIS, AutoIAFNormal, AutoLowRankMultivariateNormal,
                                     AutoMultivariateNormal, AutoNormal)
from numpyro.infer.initialization import init_to_uniform

from em_reference.config import one_blas_thread
from models._checks import check_init_strategy, check_seed, merge_model_kwargs
from models._common import (as_init_list, check_positive_float, check_positive_int,
                            init_loc_fn, posterior_inference_data, require_finite, to_numpy,
                            with_deterministic)
from models._model_info import (compile_timed, inspect_model, prepare_args, split_args,
                                tree_index)
from models._svi_loop import init_states, ready_svi, run_restarts
from models.diagnostics import window_plateau
from models.result import FitError, FitResult

class AutoIAFNormalFromStart(AutoIAFNormal):
    """NumPyro's AutoIAFNormal (inverse autoregressive flows on a standard normal, Kingma et
    al. 2016) with the flows' output shifted by a learned location that starts at the point of
    ``init_loc_fn``, and the base normal's scale ``init_scale``, so that q starts where the
    other guides start
    (NumPyro's own starts at the origin of the unconstrained space, far from the shared start
    on unstandardised data)."""

    def __init__(self, model, *, init_scale=1.0, **kwargs):
        self._init_scale = init_scale
        super().__init__(model, **kwargs)

    def _get_posterior(self):
        # a param (learned with the flows), not a constant: the fitted guide rebuilt without
        # the start (fit_vi's final draws) must keep the shift it was trained with
        shift = numpyro.param(f"{self.prefix}_shift", self._init_latent)
        return dist.TransformedDistribution(super()._get_posterior(),
                                            AffineTransform(shift, 1.0))

    def get_base_dist(self):
        return dist.Normal(jnp.zeros(self.latent_dim), self._init_scale).to_event(1)


GUIDES = {"mean_field": AutoNormal, "full_rank": AutoMultivariateNormal,
          "low_rank": AutoLowRankMultivariateNormal, "dais": AutoDAIS,
          "iaf": AutoIAFNormalFromStart}
OBJECTIVES = ("elbo", "renyi")


@one_blas_thread()  # XLA's LAPACK calls: see em_reference.config
def fit_vi(model, *args, guide="mean_field", seed=0, init=None, n_restarts=None,
           num_steps=10000, learning_rate=0.01, num_particles=1, window=500, tol=0.01,
           plateau_k=2.0, init_scale=0.1, rank=None, guide_options=None, num_samples=1000,
           elbo_particles=2000, objective="elbo", alpha=0.0, init_strategy=init_to_uniform,
           progress_bar=False, model_kwargs=None, **kwargs):
    """Fit q(theta) by maximising the ELBO (a bound on the evidence log p(X)), or Renyi's
    bound.

    guide : "mean_field" (AutoNormal), "full_rank" (AutoMultivariateNormal), "low_rank"
        (AutoLowRankMultivariateNormal, ``rank`` default sqrt of the dimension), "dais"
        (AutoDAIS: differentiable annealed importance sampling, Geffner & Domke 2021 and
        Zhang et al. 2021: K annealed HMC-like steps from a Gaussian base, not a Gaussian q;
        its ELBO bounds log p(X) on the space extended by the steps' momenta), "iaf"
        (AutoIAFNormalFromStart: inverse autoregressive flows, started at ``init``; a
        model with a single latent dimension is refused) or a guide
        callable built by the user (then ``init`` is not accepted: give the guide its own
        init_loc_fn).
    guide_options : dict of further keyword arguments to the named autoguide (e.g.
        {"K": 8, "base_dist": "cholesky"} for "dais"); the autoguide checks them.
    init, n_restarts, init_strategy : as fit_map; ``init`` places the guide's location.
    num_steps, learning_rate, num_particles, window : Adam on the num_particles-sample ELBO
        estimate, at most num_steps steps. The kept restart has the best mean objective over
        its last window; the fitted guide has the variational parameters averaged over that
        window (Polyak-Ruppert averaging of the stochastic iterates).
    tol, plateau_k : the ELBO plateau test (models.diagnostics.window_plateau): a restart
        stops when the mean ELBO of consecutive windows of ``window`` steps changes by at most
        tol nats + plateau_k standard errors of that change (each window's Monte-Carlo
        error, from its detrended one-step estimates with their autocorrelation), in two
        consecutive window pairs. status "ok" (converged) when the kept restart stopped so;
        "not_converged" when it ran out of num_steps. diagnostics["plateau_change"] (nats,
        ELBO of the last window minus the one before) and ["plateau_change_se"] give the
        last test.
    objective, alpha : "elbo" (Trace_ELBO) or "renyi": Renyi's alpha-bound with num_particles
        = k >= 2 draws per estimate, (1 / (1 - alpha)) log (1/k) sum_i w_i^(1 - alpha) with
        w_i = p(X, theta_i) / q(theta_i) (Li & Turner 2016; alpha = 0 is the IWAE bound,
        Burda et al. 2016), tighter than the ELBO for alpha < 1 (NumPyro's RenyiELBO). The
        plateau test and the kept restart then follow that objective; ``elbo`` is still the
        standard ELBO of the fitted q (elbo_particles one-draw estimates, so that every q is
        judged by the same bound), and diagnostics["renyi_bound"] (with "renyi_bound_se")
        estimates the k-draw objective at the fitted q (elbo_particles estimates).
    num_samples : draws from the fitted guide (``samples``; ``params`` is their mean).
    elbo_particles : at least this many independent ELBO estimates (each with num_particles
        particles; rounded up to a multiple of ``window``) at the fitted guide give ``elbo``
        (their mean) and ``elbo_se`` (its Monte-Carlo standard error).
    Returns FitResult with method "vi_<guide>" and objective "elbo_vi" ("vi_<guide>_renyi" and
    "iwae_vi" for alpha 0, else "renyi_vi", for objective "renyi").
    """
    t_start = time.perf_counter()
    kwargs = merge_model_kwargs(kwargs, model_kwargs)
    check_init_strategy(init_strategy)
    if isinstance(guide, str):
        if guide not in GUIDES:
            raise ValueError(f"guide must be one of {sorted(GUIDES)} or a guide callable, "
                             f"got {guide!r}")
        method = f"vi_{guide}"
    elif callable(guide):
        method = "vi_custom"
        if init is not None:
            raise ValueError("init cannot be combined with a custom guide; build the guide "
                             "with init_loc_fn=numpyro.infer.init_to_value(values=...)")
    else:
        raise ValueError(f"guide must be a string or a callable, got {type(guide).__name__}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    renyi = objective == "renyi"
    if renyi:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (
                np.isfinite(alpha) and alpha >= 0 and alpha != 1):
            raise ValueError(f"alpha must be a finite number >= 0 and != 1 (Renyi's bound is "
                             f"a lower bound for alpha >= 0; alpha = 1 is the ELBO), got "
                             f"{alpha!r}")
        if isinstance(num_particles, int) and num_particles < 2:
            raise ValueError(f"objective 'renyi' needs num_particles >= 2 draws per estimate "
                             f"(with one it is the ELBO), got {num_particles}")
        method += "_renyi"
    if rank is not None:
        check_positive_int(rank, "rank")
    if guide_options is not None and not isinstance(guide_options, dict):
        raise ValueError(f"guide_options must be a dict, got {type(guide_options).__name__}")
    if guide_options and method == "vi_custom":
        raise ValueError("guide_options are for a named autoguide; build a custom guide with "
                         "its own options")
    if guide_options and method != "vi_custom":
        try:  # an autoguide checks its options when built (cheap: nothing is traced yet)
            GUIDES[guide](model, **guide_options)
        except TypeError as exc:
            raise ValueError(f"guide_options not accepted by {GUIDES[guide].__name__}: "
                             f"{exc}") from None
    for name, v in (("num_steps", num_steps), ("window", window),
                    ("num_particles", num_particles), ("num_samples", num_samples),
                    ("elbo_particles", elbo_particles)):
        check_positive_int(v, name, minimum=2 if name == "elbo_particles" else 1)
    for name, v in (("learning_rate", learning_rate), ("tol", tol), ("init_scale", init_scale),
                    ("plateau_k", plateau_k)):
        check_positive_float(v, name)
    seed = check_seed(seed)
    args, kwargs = prepare_args(model, args, kwargs)
    info = inspect_model(model, args, kwargs)
    margs = split_args(args, kwargs)
    if not info.latent:
        raise ValueError("VI needs latent sample sites; this model has none (only param "
                         "sites: use fit_map for their maximum likelihood)")
    inits, n_restarts = as_init_list(init, info, n_restarts)

    def make_svi(values):
        if method == "vi_custom":
            g = guide
        else:
            options = {"init_loc_fn": init_loc_fn(values, init_strategy),
                       "init_scale": init_scale}
            if guide == "low_rank" and rank is not None:
                options["rank"] = rank
            g = GUIDES[guide](model, **options, **(guide_options or {}))
        loss = (RenyiELBO(alpha=float(alpha), num_particles=num_particles) if renyi
                else Trace_ELBO(num_particles=num_particles))
        return SVI(model, g, numpyro.optim.Adam(learning_rate), loss)

    keys = jax.random.split(jax.random.PRNGKey(seed), n_restarts + 1)
    states, compile_time = init_states(make_svi, keys[:-1], inits, info, margs)
    loop = run_restarts(make_svi, states, margs, max_steps=num_steps, window=window,
                        test=lambda prev, cur: window_plateau(prev, cur, tol, plateau_k),
                        progress_bar=progress_bar, desc=method)
    compile_time += loop.compile_time
    tail = np.array([-np.mean(l[-window:]) if not f and len(l) else -np.inf
                     for l, f in zip(loop.losses, loop.failed, strict=True)])
    if loop.failed.all():
        raise FitError(f"{method}: every restart ({n_restarts}) hit a non-finite ELBO "
                       f"({int(loop.n_nonfinite.sum())} non-finite values)")
    best = int(np.argmax(tail))
    # the iterate average over the last window, not the last (jittery) iterate
    optim = make_svi(None).optim
    averaged = loop.states._replace(optim_state=jax.vmap(optim.init)(loop.averaged))
    state = tree_index(averaged, best)
    latent = list(info.latent)

    def final(state, key, dyn):
        args, kwargs = margs.rebuild(dyn)
        svi = ready_svi(make_svi, args, kwargs)
        params = svi.get_params(state)
        draws = Predictive(svi.guide, params=params, num_samples=num_samples,
                           return_sites=latent)(key, *args, **kwargs)
        if not renyi:
            return params, draws, None
        one_draw = Trace_ELBO(num_particles=1)  # the standard bound, one draw per estimate
        elbos = jax.vmap(lambda k: -one_draw.loss(k, params, model, svi.guide, *args,
                                                  **kwargs))(
            jax.random.split(jax.random.fold_in(key, 1), elbo_particles))
        return params, draws, elbos

    final_c, dt = compile_timed(final, state, keys[-1], margs.dyn)
    compile_time += dt
    params, draws, elbos = final_c(state, keys[-1], margs.dyn)
    params = to_numpy(params)
    require_finite(params, "variational parameters", method)
    # the training objective at the kept parameters: fresh estimates from the compiled
    # training step with the parameters frozen (num_particles per estimate, as in training)
    bounds = -loop.frozen_losses(elbo_particles, at=averaged)[best]
    extra_diagnostics = {}
    if renyi:
        n_bad = int((~np.isfinite(bounds)).sum())
        if n_bad:
            raise FitError(f"{method}: {n_bad} of {len(bounds)} Renyi bound estimates are "
                           "non-finite at the fitted guide")
        extra_diagnostics = {
            "renyi_bound": float(bounds.mean()),
            "renyi_bound_se": float(bounds.std(ddof=1) / np.sqrt(len(bounds))),
            "renyi_alpha": float(alpha), "renyi_particles": int(num_particles)}
        elbos = np.asarray(elbos)
    else:
        elbos = bounds
    n_bad = int((~np.isfinite(elbos)).sum())
    if n_bad:
        raise FitError(f"{method}: {n_bad} of {len(elbos)} ELBO estimates are non-finite at "
                       "the fitted guide")
    samples = to_numpy(with_deterministic(model, margs, draws, info, batch_ndims=1))
    require_finite(samples, "guide draws", method)
    point = {k: v.mean(0) for k, v in samples.items()}
    elbo, elbo_se = float(elbos.mean()), float(elbos.std(ddof=1) / np.sqrt(len(elbos)))
    conv = bool(loop.converged[best])
    change, change_se = -float(loop.last_change[best]), float(loop.last_se[best])
    name = (("IWAE" if alpha == 0 else f"Renyi(alpha={alpha:g})") + f"-{num_particles} bound"
            if renyi else "ELBO")
    message = (f"{method}: restart {best} of {n_restarts} kept; "
               + (f"{name} plateau after {len(loop.losses[best])} steps" if conv else
                  f"NOT CONVERGED: no {name} plateau in {len(loop.losses[best])} steps")
               + f" (last window change {change:.3g} +- {change_se:.2g} nats, test: within "
               f"{tol:g} + {plateau_k:g} se); ELBO {elbo:.6g} +- {elbo_se:.2g} "
               f"({len(elbos)} estimates)"
               + (f"; {name} {extra_diagnostics['renyi_bound']:.6g} +- "
                  f"{extra_diagnostics['renyi_bound_se']:.2g}" if renyi else ""))
    objective_name = ("iwae_vi" if alpha == 0 else "renyi_vi") if renyi else "elbo_vi"
    return FitResult(
        method=method, params=point, samples=samples, objective_name=objective_name,
        objective_trace=-loop.losses[best], elbo=elbo, elbo_se=elbo_se,
        inference_data=posterior_inference_data(samples, 1),
        wall_time=time.perf_counter() - t_start, compile_time=compile_time, converged=conv,
        status="ok" if conv else "not_converged", n_steps=len(loop.losses[best]),
        diagnostics={"n_nonfinite": int(loop.n_nonfinite.sum()), "divergences": None,
                     "r_hat_max": None, "ess_bulk_min": None, "message": message,
                     "restart_objectives": tail, "best_restart": best,
                     "n_failed_restarts": int(loop.failed.sum()),
                     "guide_params": params, "plateau_change": change,
                     "plateau_change_se": change_se, "plateau_tol": float(tol),
                     "plateau_k": float(plateau_k), **extra_diagnostics})
