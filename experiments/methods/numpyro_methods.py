"""mle_sgd, map, vi_mean_field, vi_full_rank, nuts: the fitting routines of ``models`` applied
to the cell's registered NumPyro model, started from the shared initialisation.

Any registered model (models_registry) can be fitted by these methods; how the model is
called is the registration's (``ModelEntry.call``, default ``model(X_train[, K], ...)``).
The routines return ``models.FitResult`` itself, the suite's one result type.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..models_registry import model_call
from ..specs import Count, NonNegativeInt, OpenFraction, Positive
from .registry import register_method


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


def _point_init(problem):
    return None if problem.init is None else {k: np.asarray(v) for k, v in problem.init.items()}


def _fit(routine, problem, with_prior, **options):
    model, args, kwargs = model_call(problem, with_prior)
    return _routine(routine)(model, *args, seed=problem.seed, init=_point_init(problem),
                             **options, **kwargs)


def global_only(entry) -> bool:
    """The generic fitters (point estimates, a guide over the global sites, NUTS) fit models
    whose latents are global parameters; a model with an amortized guide over local latents
    (a VAE) has its own methods (vae_methods.py), so ``methods = "all"`` on it runs those."""
    return not entry.amortized


@register_method("mle_sgd", colour="#56B4E9", models=global_only, cost_rank=1,
                 description="maximum likelihood by Adam on the NumPyro model (models.fit_map, "
                             "params only)")
def fit_mle_sgd(problem, num_steps: Count = 3000, learning_rate: Positive = 0.01,
                polish: bool = False):
    return _fit("fit_map", problem, False, num_steps=num_steps, learning_rate=learning_rate,
                polish=polish)


@register_method("map", colour="#E69F00", models=global_only, uses_prior=True, cost_rank=1,
                 description="MAP by Adam then BFGS on the NumPyro model (models.fit_map)")
def fit_map(problem, num_steps: Count = 3000, learning_rate: Positive = 0.01,
            polish: bool = True):
    return _fit("fit_map", problem, True, num_steps=num_steps, learning_rate=learning_rate,
                polish=polish)


def _vi(problem, guide, num_steps, learning_rate, num_samples, elbo_particles):
    return _fit("fit_vi", problem, True, guide=guide, num_steps=num_steps,
                learning_rate=learning_rate, num_samples=num_samples,
                elbo_particles=elbo_particles)


@register_method("vi_mean_field", colour="#882255",
                 models=global_only, kind="posterior", uses_prior=True,
                 bound_over="θ", cost_rank=0,
                 description="VI with a mean-field normal guide (models.fit_vi)")
def fit_vi_mean_field(problem, num_steps: Count = 3000, learning_rate: Positive = 0.01,
                      num_samples: Count = 1000, elbo_particles: Count = 2000):
    return _vi(problem, "mean_field", num_steps, learning_rate, num_samples, elbo_particles)


@register_method("vi_full_rank", colour="#117733",
                 models=global_only, kind="posterior", uses_prior=True,
                 bound_over="θ", cost_rank=0,
                 description="VI with a full-rank multivariate normal guide (models.fit_vi)")
def fit_vi_full_rank(problem, num_steps: Count = 3000, learning_rate: Positive = 0.01,
                     num_samples: Count = 1000, elbo_particles: Count = 2000):
    return _vi(problem, "full_rank", num_steps, learning_rate, num_samples, elbo_particles)


@register_method("nuts", colour="#999933",
                 models=global_only, kind="posterior", uses_prior=True, cost_rank=0,
                 description="NUTS (models.fit_nuts): the reference posterior only where "
                             "its chains mixed (fit_status ok; failed_to_mix is flagged)")
def fit_nuts(problem, num_warmup: NonNegativeInt = 500, num_samples: Count = 500,
             num_chains: Count = 2,
             chain_method: Literal["sequential", "vectorized", "parallel"] = "sequential",
             target_accept_prob: OpenFraction = 0.8, dense_mass: bool = False):
    # sequential chains: on a CPU, vectorised chains advance in lock-step to the deepest tree
    # of any chain (measured: iris K=3, two chains, 300+300 draws: 34 s vectorised, 24 s not)
    return _fit("fit_nuts", problem, True, num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, chain_method=chain_method,
                target_accept_prob=target_accept_prob, dense_mass=dense_mass)
