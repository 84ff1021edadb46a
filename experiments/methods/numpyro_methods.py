"""mle_sgd, map, vi_mean_field, vi_full_rank, nuts: the fitting routines of ``models`` applied
to the cell's registered NumPyro model, started from the shared initialisation.

Any registered model (models_registry) can be fitted by these methods; the model is called as
``model(X, n_components, prior=prior)`` plus ``covariance_type=`` when it has one.
"""

from __future__ import annotations

import numpy as np

from .registry import MethodFit, register_method


def model_call(problem, with_prior):
    """(model, args, kwargs) for the models.fit_* routines."""
    model = problem.model.resolve_model()
    kwargs = {"prior": problem.prior if with_prior else None}
    if problem.model.uses_covariance_type:
        kwargs["covariance_type"] = problem.covariance_type
    return model, (problem.X_train, problem.n_components), kwargs


def _models():
    try:
        import models
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(f"the models package is not importable: {exc}") from exc
    return models


def _routine(name):
    routine = getattr(_models(), name, None)
    if routine is None:
        raise RuntimeError(f"models.{name} does not exist yet: this method cannot run")
    return routine


def _nan(value):
    return float("nan") if value is None else float(value)


def to_method_fit(result, objective_name=None) -> MethodFit:
    """models.FitResult -> MethodFit (numpy arrays; objective names of the metrics)."""
    params = {k: np.asarray(v) for k, v in result.params.items()}
    samples = None if result.samples is None else {k: np.asarray(v)
                                                    for k, v in result.samples.items()}
    name = objective_name or result.objective_name or ""
    return MethodFit(params=params, objective_name=name,
                     objective_trace=np.asarray(result.objective_trace, dtype=float),
                     n_steps=int(result.n_steps), converged=bool(result.converged),
                     wall_time=float(result.wall_time), compile_time=float(result.compile_time),
                     samples=samples, elbo_vi=_nan(result.elbo), elbo_vi_se=_nan(result.elbo_se),
                     inference_data=result.inference_data,
                     diagnostics=dict(result.diagnostics or {}))


def _point_init(problem):
    return None if problem.init is None else {k: np.asarray(v) for k, v in problem.init.items()}


@register_method("mle_sgd", description="maximum likelihood by Adam on the NumPyro model "
                                        "(models.fit_map, params only)")
def fit_mle_sgd(problem, num_steps=3000, learning_rate=0.01, polish=False):
    model, args, kwargs = model_call(problem, with_prior=False)
    result = _routine("fit_map")(model, *args, seed=problem.seed, init=_point_init(problem),
                                 num_steps=num_steps, learning_rate=learning_rate, polish=polish,
                                 **kwargs)
    return to_method_fit(result)


@register_method("map", uses_prior=True,
                 description="MAP by Adam then BFGS on the NumPyro model (models.fit_map)")
def fit_map(problem, num_steps=3000, learning_rate=0.01, polish=True):
    model, args, kwargs = model_call(problem, with_prior=True)
    result = _routine("fit_map")(model, *args, seed=problem.seed, init=_point_init(problem),
                                 num_steps=num_steps, learning_rate=learning_rate, polish=polish,
                                 **kwargs)
    return to_method_fit(result)


def _vi(problem, guide, num_steps, learning_rate, num_samples, elbo_particles):
    model, args, kwargs = model_call(problem, with_prior=True)
    result = _routine("fit_vi")(model, *args, seed=problem.seed, init=_point_init(problem),
                                guide=guide, num_steps=num_steps, learning_rate=learning_rate,
                                num_samples=num_samples, elbo_particles=elbo_particles,
                                **kwargs)
    return to_method_fit(result)


@register_method("vi_mean_field", kind="posterior", uses_prior=True,
                 description="VI with a mean-field normal guide (models.fit_vi)")
def fit_vi_mean_field(problem, num_steps=3000, learning_rate=0.01, num_samples=1000,
                      elbo_particles=2000):
    return _vi(problem, "mean_field", num_steps, learning_rate, num_samples, elbo_particles)


@register_method("vi_full_rank", kind="posterior", uses_prior=True,
                 description="VI with a full-rank multivariate normal guide (models.fit_vi)")
def fit_vi_full_rank(problem, num_steps=3000, learning_rate=0.01, num_samples=1000,
                     elbo_particles=2000):
    return _vi(problem, "full_rank", num_steps, learning_rate, num_samples, elbo_particles)


@register_method("nuts", kind="posterior", uses_prior=True,
                 description="NUTS (models.fit_nuts), the gold standard posterior")
def fit_nuts(problem, num_warmup=500, num_samples=500, num_chains=2, chain_method="sequential"):
    # sequential chains: on a CPU, vectorised chains advance in lock-step to the deepest tree
    # of any chain (measured: iris K=3, two chains, 300+300 draws: 34 s vectorised, 24 s not)
    model, args, kwargs = model_call(problem, with_prior=True)
    result = _routine("fit_nuts")(model, *args, seed=problem.seed, init=_point_init(problem),
                                  num_warmup=num_warmup, num_samples=num_samples,
                                  num_chains=num_chains, chain_method=chain_method, **kwargs)
    return to_method_fit(result)
