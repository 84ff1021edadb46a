"""The model registry: which mixture models the grid can fit, and how to score them.

A model entry names the NumPyro model (a plain function of its data, called as
``model(X, n_components, covariance_type, prior)``), the data family it applies to, its
parameter sites, and optionally the (N, K) log joint matrix used for responsibilities, ARI, ICL
and elbo_em. The built-in Gaussian and Poisson mixtures are registered at the bottom; a new
NumPyro model is one ``register_model`` call (see README, "Adding a model"); the NumPyro methods
(map, mle_sgd, vi_*, nuts) then fit it, and the log-likelihood metrics come from NumPyro's own
``log_likelihood`` when no log joint matrix is given.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import densities

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    numpyro_model : callable, or "module:attribute" resolved on first use (so the registry
        imports without the models package).
    data_family : "gaussian" or "poisson": datasets of that family can use the model.
    param_names : names of the parameter sites a fit returns.
    component_params : function covariance_type -> names whose leading axis is the component
        axis K (permuted by label alignment).
    align_param : parameter matched across fits by label alignment, leading axis K.
    log_joint_matrix : optional (X (N, D), params, covariance_type) -> (N, K).
    n_params : optional (K, D, covariance_type) -> number of free parameters (for BIC/AIC/ICL).
    default_prior : (X, K, covariance_type, overrides dict) -> prior object or None.
    uses_covariance_type : whether cells of this model vary over covariance types.
    initial_values : optional (X_train (N, D), K, covariance_type, seed) -> {site: value}, the
        shared initialisation every method of a cell starts from (built-ins: k-means).
    """

    name: str
    numpyro_model: Callable | str
    data_family: str
    param_names: tuple[str, ...]
    component_params: Callable[[str], tuple[str, ...]]
    align_param: str
    log_joint_matrix: Callable | None = None
    n_params: Callable | None = None
    default_prior: Callable | None = None
    uses_covariance_type: bool = False
    description: str = ""
    initial_values: Callable | None = None

    def resolve_model(self) -> Callable:
        if callable(self.numpyro_model):
            return self.numpyro_model
        module, _, attr = self.numpyro_model.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise RuntimeError(f"model {self.name!r}: cannot import {self.numpyro_model!r} "
                               f"({exc})") from exc

    def count_params(self, n_components, n_features, covariance_type, params=None) -> int:
        if self.n_params is not None:
            return int(self.n_params(n_components, n_features, covariance_type))
        if params is None:
            raise ValueError(f"model {self.name!r} registers no n_params")
        # generic: every entry is free except one weight (the simplex constraint)
        return int(sum(np.size(v) for v in params.values()) - ("weights" in params))


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *, data_family: str, param_names, align_param: str,
                   component_params=None, log_joint_matrix=None, n_params=None,
                   default_prior=None, uses_covariance_type=False, initial_values=None,
                   description=""):
    """Decorator registering a NumPyro model function under ``name``; returns it unchanged.

    ``component_params`` defaults to every parameter (all have a leading K axis).
    """
    names = tuple(param_names)
    comp = component_params or (lambda covariance_type: names)

    def decorate(model):
        doc = (getattr(model, "__doc__", None) or "").strip().split("\n")[0]
        MODELS[name] = ModelEntry(name, model, data_family, names, comp, align_param,
                                  log_joint_matrix, n_params, default_prior,
                                  uses_covariance_type, description or doc, initial_values)
        return model

    return decorate


def default_model_for(data_family: str) -> str:
    return {"gaussian": "gaussian_mixture", "poisson": "poisson_mixture"}[data_family]


# ------------------------------------------------------------------ built-in mixtures
def _gaussian_prior(X, n_components, covariance_type, overrides):
    from em_reference.priors import GaussianMixturePrior

    prior = GaussianMixturePrior.default(X, n_components, covariance_type)
    if overrides:
        fields = {**prior.__dict__, **{k: np.asarray(v, float) for k, v in overrides.items()}}
        prior = GaussianMixturePrior(**fields)
    return prior.validate(X.shape[1], n_components)


def _poisson_prior(X, n_components, covariance_type, overrides):
    from em_reference.priors import PoissonMixturePrior

    prior = PoissonMixturePrior.default(X, n_components)
    if overrides:
        prior = PoissonMixturePrior(**{**prior.__dict__,
                                       **{k: np.asarray(v, float) for k, v in overrides.items()}})
    return prior.validate(X.shape[1], n_components)


def _gaussian_n_params(k, d, covariance_type):
    cov = {"full": k * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": k * d,
           "spherical": k}[covariance_type]
    return int(k - 1 + k * d + cov)


GAUSSIAN_PRIOR_FIELDS = ("weight_concentration", "mean_prior", "mean_precision",
                         "degrees_of_freedom", "covariance_prior")
POISSON_PRIOR_FIELDS = ("weight_concentration", "rate_shape", "rate_rate")

MODELS["gaussian_mixture"] = ModelEntry(
    "gaussian_mixture", "models:gaussian_mixture", "gaussian",
    ("weights", "means", "covariances"),
    lambda ct: ("weights", "means") if ct == "tied" else ("weights", "means", "covariances"),
    "means", densities.gaussian_log_joint_matrix, _gaussian_n_params, _gaussian_prior, True,
    "Gaussian mixture, (weights, means, covariances), conjugate Dirichlet-NIW prior.")
MODELS["poisson_mixture"] = ModelEntry(
    "poisson_mixture", "models:poisson_mixture", "poisson", ("weights", "rates"),
    lambda ct: ("weights", "rates"), "rates",
    lambda X, params, ct: densities.poisson_log_joint_matrix(X, params),
    lambda k, d, ct: int(k - 1 + k * d), _poisson_prior, False,
    "Poisson mixture, (weights, rates), Dirichlet-Gamma prior.")
