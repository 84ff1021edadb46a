"""The model registry: one entry per model carries everything the suite knows about it.

A model is registered with ``register_model`` (keyword arguments only), as the built-in
mixtures are (experiments/mixtures/); nothing else in experiments/ dispatches on a model's
name. What an entry carries, and who reads it:

structure
    data_family         datasets of this family (datasets/families.py) can use the model.
    has_components      True: cells have a component count K (``n_components``); False: cells
                        have none (a VAE), and a grid block sets no n_components.
    covariance_types    the covariance types cells vary over; () for models without one.
    options             {name: default} of model options a grid block may set
                        (``model_options = {latent_dim = 10}``), part of the cell's key; types
                        and bounds from the NumPyro function's annotations, else the defaults.
    param_names         the parameter sites a point fit returns.
how to call the NumPyro model (methods/numpyro_methods.py)
    numpyro_model       the function, or "module:attribute" imported on first use.
    call                optional (problem, with_prior) -> (args, kwargs); default
                        ``model(X_train[, K], [covariance_type=...,] [prior=...,] **options)``
                        (prior passed when the function takes one: None for the MLE methods).
priors (config.py validates them when the grid is loaded)
    prior_fields        hyper-parameter names a grid may override (``prior = {...}``).
    build_prior         (X_train, K, covariance_type, overrides dict) -> the cell's prior
                        object, validated (ValueError naming the bad value).
shared initialisation (problem.py)
    initial_values      (X_train, K, covariance_type, seed) -> {site: value}: every method of a
                        cell starts there.
EM (methods/em_methods.py: em, map_em, hard_em apply to every model that has one)
    em_estimator        (problem, *, prior, assignment, tol, max_iter, reg_covar) -> an unfitted
                        em_reference-style estimator started at problem.init; after ``fit`` it
                        has ``<param>_`` for every param name, lower_bounds_, n_iter_,
                        converged_.
    cavi_estimator      optional (problem, *, tol, max_iter) -> an unfitted em_reference CAVI
                        estimator for the cell (methods/vb_methods.py: the ``cavi`` method
                        fits the models that have one).
alignment (scoring.py, comparisons.py)
    align_param         the parameter (leading axis K) components are matched on; None: no
                        label alignment.
    align_log_scale     match on log values (rates).
    component_params    covariance_type -> the parameter names with a component axis
                        (default: every parameter).
    comparable_params   (params, covariance_type, n_features) -> params in the form RMSEs
                        compare (Gaussian: covariances as full (K, D, D)); default: as is.
scoring (scoring.py)
    log_joint_matrix    (X (N, D), params, covariance_type) -> (N, K) log w_k + log p(x | k):
                        log-likelihoods, responsibilities, ARI, ICL, elbo_em.
    n_params            (K, D, covariance_type) -> free parameters (BIC/AIC/ICL).
    score               (problem, fit) -> {column: value}: replaces the plug-in scoring
                        (models with local latents: held-out log_likelihood_test_per_point and
                        its ``_se`` from an exact or IWAE estimate); or
                        ``({column: value}, {name: array})``: the arrays are stored with the
                        cell as ``model/<name>`` for the model's figures (a VAE's
                        reconstructions, samples, latent means, learning curves). Networks
                        in fit.params are stored flattened as ``param/...`` either way.
    held_out_zero       optional (params, X_test) -> how many held-out points the point
                        estimate gives probability zero once the fitter's numerical floor is
                        taken away (a Bernoulli MLE's pixel probabilities of exactly 0 or 1,
                        kept at em_reference.bernoulli.MIN_PROB): the row's
                        ``held_out_zero_probability``; the held-out log-likelihood is then
                        -inf and the report says so with ``held_out_zero_note``.
    held_out_zero_note  why a point estimate of this model can give held-out points
                        probability zero, and which methods cannot (report text).
report
    table_columns       ((column, header), ...) the report's tables add for this model
                        (default: RMSE of align_param vs truth and vs EM, its posterior sd).
    figure_hints        {hint: value} the figures read: "marginal" (grid (G,), params,
                        covariance_type, feature=0) -> (G,) density or pmf of one feature's
                        marginal (the density figure of 1-D data, the posterior predictive
                        check of every feature), "discrete" (the
                        marginal is a pmf), "marginal_stem" (its file name prefix),
                        "ellipses" (2-D Gaussian components: means and covariances),
                        "forest_arrays" ((arrays, covariance_type) -> the arrays the
                        estimates figure draws, e.g. variances for covariances).
    default_for_family  the model cells of that family get when a block names no model.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .specs import Spec, check_values, spec_from

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model (see the module docstring for every field)."""

    name: str
    numpyro_model: Callable | str
    data_family: str
    description: str = ""
    has_components: bool = True
    covariance_types: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)  # {name: Spec}
    param_names: tuple[str, ...] = ()
    call: Callable | None = None
    prior_fields: tuple[str, ...] = ()
    build_prior: Callable | None = None
    initial_values: Callable | None = None
    em_estimator: Callable | None = None
    cavi_estimator: Callable | None = None
    align_param: str | None = None
    align_log_scale: bool = False
    component_params: Callable[[str], tuple[str, ...]] | None = None
    comparable_params: Callable | None = None
    log_joint_matrix: Callable | None = None
    n_params: Callable | None = None
    score: Callable | None = None
    held_out_zero: Callable | None = None
    held_out_zero_note: str = ""
    table_columns: tuple[tuple[str, str], ...] = ()
    figure_hints: dict = field(default_factory=dict)
    default_for_family: bool = False

    @property
    def uses_covariance_type(self) -> bool:
        return bool(self.covariance_types)

    def resolve_model(self) -> Callable:
        if callable(self.numpyro_model):
            return self.numpyro_model
        module, _, attr = self.numpyro_model.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise RuntimeError(f"model {self.name!r}: cannot import {self.numpyro_model!r} "
                               f"({exc})") from exc

    @property
    def amortized(self) -> bool:
        """Whether the NumPyro function carries an amortized guide (``model.guide``: a VAE's
        encoder over local latents): such a model is fitted by the amortized methods only."""
        try:
            return callable(getattr(self.resolve_model(), "guide", None))
        except RuntimeError:
            return False

    def components(self, covariance_type: str) -> tuple[str, ...]:
        """Parameter names whose leading axis is the component axis K."""
        if self.component_params is None:
            return self.param_names
        return tuple(self.component_params(covariance_type))

    def comparable(self, params: dict, covariance_type: str, n_features: int) -> dict:
        """``params`` in the form parameter errors are computed in."""
        if self.comparable_params is None:
            return dict(params)
        return dict(self.comparable_params(params, covariance_type, n_features))

    def check_options(self, options: dict) -> dict:
        return check_values(self.options, options, f"model {self.name!r}", noun="option")

    def count_params(self, n_components, n_features, covariance_type, params=None) -> int:
        if self.n_params is not None:
            return int(self.n_params(n_components, n_features, covariance_type))
        if params is None:
            raise ValueError(f"model {self.name!r} registers no n_params")
        # generic: every entry is free except one weight (the simplex constraint)
        leaves = [v for v in params.values() if not isinstance(v, dict)]
        return int(sum(np.size(v) for v in leaves) - ("weights" in params))


MODELS: dict[str, ModelEntry] = {}


def _option_specs(model, options) -> dict[str, Spec]:
    """Specs of the model options: the NumPyro function's annotations where it has them."""
    hints = {}
    if callable(model):
        try:
            import typing

            hints = typing.get_type_hints(model, include_extras=True)
        except Exception:  # noqa: BLE001
            hints = {}
    return {name: spec_from(name, hints.get(name, inspect.Parameter.empty), default)
            for name, default in (options or {}).items()}


def register_model(name: str, *, data_family: str, param_names=(), description: str = "",
                   has_components: bool = True, covariance_types=(), options=None, call=None,
                   prior_fields=(), build_prior=None, initial_values=None, em_estimator=None,
                   cavi_estimator=None,
                   align_param=None, align_log_scale=False, component_params=None,
                   comparable_params=None, log_joint_matrix=None, n_params=None, score=None,
                   held_out_zero=None, held_out_zero_note="",
                   table_columns=None, figure_hints=None, default_for_family=False,
                   numpyro_model=None):
    """Decorator registering a NumPyro model function under ``name``; returns it unchanged.

    Every argument is a field of ``ModelEntry`` (module docstring). Given ``numpyro_model``
    (a function, or a "module:attribute" string imported on first use), the model is
    registered at once and the entry returned, no decorator needed::

        register_model("gaussian_mixture", numpyro_model="models:gaussian_mixture", ...)

    Re-registering a name replaces the entry.
    """
    from .datasets.families import FAMILIES

    if data_family not in FAMILIES:
        raise ValueError(f"model {name!r}: data_family must be one of {sorted(FAMILIES)}, "
                         f"got {data_family!r}")
    if align_param is not None and align_param not in param_names:
        raise ValueError(f"model {name!r}: align_param {align_param!r} is not among "
                         f"param_names {tuple(param_names)}")
    unknown_ct = set(covariance_types) - set(COVARIANCE_TYPES)
    if unknown_ct:
        raise ValueError(f"model {name!r}: unknown covariance type(s) {sorted(unknown_ct)}")
    if table_columns is None:
        table_columns = () if align_param is None else (
            (f"rmse_{align_param}_vs_truth", f"RMSE {align_param} vs truth"),
            (f"rmse_{align_param}_vs_em", f"RMSE {align_param} vs EM"),
            (f"posterior_sd_{align_param}", f"posterior sd {align_param}"))

    def register(target, doc):
        MODELS[name] = ModelEntry(
            name=name, numpyro_model=target, data_family=data_family,
            description=description or doc, has_components=bool(has_components),
            covariance_types=tuple(covariance_types), options=_option_specs(target, options),
            param_names=tuple(param_names), call=call, prior_fields=tuple(prior_fields),
            build_prior=build_prior, initial_values=initial_values, em_estimator=em_estimator,
            cavi_estimator=cavi_estimator,
            align_param=align_param, align_log_scale=bool(align_log_scale),
            component_params=component_params, comparable_params=comparable_params,
            log_joint_matrix=log_joint_matrix,
            n_params=n_params, score=score, held_out_zero=held_out_zero,
            held_out_zero_note=held_out_zero_note, table_columns=tuple(table_columns),
            figure_hints=dict(figure_hints or {}), default_for_family=bool(default_for_family))
        return MODELS[name]

    if numpyro_model is not None:
        register(numpyro_model, "")
        return MODELS[name]

    def decorate(model):
        register(model, (getattr(model, "__doc__", None) or "").strip().split("\n")[0])
        return model

    return decorate


def default_model_for(data_family: str) -> str:
    """The model a grid block gets for data of ``data_family`` when it names none."""
    for entry in MODELS.values():
        if entry.data_family == data_family and entry.default_for_family:
            return entry.name
    usable = sorted(e.name for e in MODELS.values() if e.data_family == data_family)
    raise ValueError(f"no default model for {data_family} data: name one with model = ... "
                     f"(models for {data_family} data: {usable or 'none registered'})")


def takes_prior(fn) -> bool:
    try:
        return "prior" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def default_call(problem, with_prior: bool):
    """(args, kwargs) of the NumPyro model for a cell: ``(X_train[, K])`` and
    ``covariance_type`` / ``prior`` / model options as keywords."""
    entry = problem.model
    fn = entry.resolve_model()
    args = (problem.X_train,) + ((problem.n_components,) if entry.has_components else ())
    kwargs = dict(problem.model_options)
    if entry.uses_covariance_type:
        kwargs["covariance_type"] = problem.covariance_type
    if takes_prior(fn):
        kwargs["prior"] = problem.prior if with_prior else None
    return args, kwargs


def model_call(problem, with_prior: bool):
    """(model, args, kwargs) for the models.fit_* routines."""
    entry = problem.model
    call = entry.call or default_call
    args, kwargs = call(problem, with_prior)
    return entry.resolve_model(), tuple(args), dict(kwargs)
