"""vae_elbo, vae_iwae: minibatch SVI of a model with local latents and its amortized guide
(``models.fit_vi_minibatch``), early-stopped on held-out data.

They fit every registered model whose NumPyro function carries its guide (``model.guide``,
as ``models.vae`` and ``models.gmm_prior_vae`` do). The held-out data for early stopping is
the dataset's validation split where it has one (binarized MNIST), else ``validation`` (a
fraction) of the training images. The evaluation options (``eval_particles``,
``gap_points``, ``gap_particles``, ``local_steps``) are not used by the fit: they are recorded
in ``fit.diagnostics["evaluation"]`` for the model's ``score`` hook (IWAE-k on the test set,
the inference gaps on ``gap_points`` images; 0 skips the gaps).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from ..models_registry import model_call
from ..specs import Count, NonNegative, NonNegativeInt, OpenFraction, Positive, Range
from .registry import register_method

Particles = Annotated[int, Range(ge=2)]          # importance samples per image


def has_guide(entry) -> bool:
    """Whether a registered model's NumPyro function carries an amortized guide."""
    return entry.amortized


def _fit(problem, loss, num_particles, evaluation, validation, **options):
    import models

    model, args, kwargs = model_call(problem, False)
    if problem.X_valid is not None:
        held_out = {"validation_args": (problem.X_valid.astype(float),) + tuple(args[1:])}
    else:
        held_out = {"validation": validation}
    fit = models.fit_vi_minibatch(model, *args, guide=model.guide, loss=loss,
                                  num_particles=num_particles, seed=problem.seed,
                                  **held_out, **options, **kwargs)
    diag = fit.diagnostics or {}
    extra = {"best_epoch": diag.get("best_epoch"), "stopped": diag.get("stopped"),
             "epochs": len(diag.get("train_objective_per_epoch", ()))}
    return dataclasses.replace(
        fit, diagnostics={**diag, "evaluation": {**evaluation, "seed": problem.seed}},
        extra={**(fit.extra or {}), **extra})


def _evaluation(eval_particles, gap_points, gap_particles, local_steps):
    return {"eval_particles": eval_particles, "gap_points": gap_points,
            "gap_particles": gap_particles, "local_steps": local_steps}


@register_method("vae_elbo", colour="#88CCEE", models=has_guide, kind="posterior",
                 description="amortized VI, minibatch SVI on the ELBO (models.fit_vi_minibatch)")
def fit_vae_elbo(problem, batch_size: Count = 64, learning_rate: Positive = 3e-3,
                 max_epochs: Count = 200, patience: Count = 10, validation: OpenFraction = 0.1,
                 min_delta: NonNegative = 0.0, max_seconds: Positive = 600.0,
                 eval_particles: Particles = 1000, gap_points: NonNegativeInt = 100,
                 gap_particles: Particles = 1000, local_steps: Count = 200):
    return _fit(problem, "elbo", 1, _evaluation(eval_particles, gap_points, gap_particles,
                                                local_steps),
                validation, batch_size=batch_size, learning_rate=learning_rate,
                max_epochs=max_epochs, patience=patience, min_delta=min_delta,
                max_seconds=max_seconds)


@register_method("vae_iwae", colour="#F0E442", models=has_guide, kind="posterior",
                 description="amortized VI, minibatch SVI on the IWAE-k bound (RenyiELBO, "
                             "alpha = 0)")
def fit_vae_iwae(problem, num_particles: Particles = 5, batch_size: Count = 64,
                 learning_rate: Positive = 3e-3, max_epochs: Count = 200, patience: Count = 10,
                 validation: OpenFraction = 0.1, min_delta: NonNegative = 0.0,
                 max_seconds: Positive = 600.0, eval_particles: Particles = 1000,
                 gap_points: NonNegativeInt = 100, gap_particles: Particles = 1000,
                 local_steps: Count = 200):
    return _fit(problem, "iwae", num_particles,
                _evaluation(eval_particles, gap_points, gap_particles, local_steps),
                validation, batch_size=batch_size, learning_rate=learning_rate,
                max_epochs=max_epochs, patience=patience, min_delta=min_delta,
                max_seconds=max_seconds)
