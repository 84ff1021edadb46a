"""The method registry: a name maps one ``Problem`` (see problem.py) to a ``MethodFit``.

Registering a method is one decorator on a function ``fit(problem, **options) -> MethodFit``::

    @register_method("my_em", models=("gaussian_mixture",), kind="point", uses_prior=False,
                     description="...", max_iter=100)        # options and their defaults
    def fit_my_em(problem, max_iter):
        ...

Options are the keyword arguments after ``problem``; the grid config may override them
(``[methods.my_em] max_iter = 50``) and unknown ones are rejected before any work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

KINDS = ("point", "posterior")


@dataclass(frozen=True)
class MethodFit:
    """What every method returns (the runner's view of models.FitResult, for all methods).

    params : point estimate {name: array} in the model's convention (weights (K,), means (K, D),
        covariances (sklearn shape) | rates (K, D)); for posterior methods the posterior mean.
    samples : {name: (S, ...)} posterior draws (VI and NUTS), else None.
    objective_name : what ``objective_trace`` holds, e.g. "log_likelihood", "log_joint",
        "classification_log_likelihood", "svi_loss = -elbo_vi", "svi_loss = -log_joint".
    objective_trace : (T,) per iteration / step.
    elbo_vi, elbo_vi_se : Monte-Carlo ELBO (bound on log p(X)) and its standard error; NaN if
        not a VI method.
    hard_assignment : True when the method's q is one-hot (hard EM); used for elbo_em.
    extra : further method-specific scalar columns, each named for what it is.
    """

    params: dict
    objective_name: str
    objective_trace: np.ndarray
    n_steps: int
    converged: bool
    wall_time: float
    compile_time: float = float("nan")
    samples: dict | None = None
    elbo_vi: float = float("nan")
    elbo_vi_se: float = float("nan")
    hard_assignment: bool = False
    inference_data: object = None
    diagnostics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MethodEntry:
    name: str
    fit: Callable
    models: tuple[str, ...] | None  # None: any registered model
    kind: str
    uses_prior: bool
    is_em: bool
    description: str

    @property
    def defaults(self) -> dict:
        params = list(inspect.signature(self.fit).parameters.values())[1:]
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}

    def supports(self, model_name: str) -> bool:
        return self.models is None or model_name in self.models

    def check_options(self, options: dict) -> dict:
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise ValueError(f"method {self.name!r} has no option(s) {sorted(unknown)}; "
                             f"its options are {sorted(self.defaults)}")
        return {**self.defaults, **options}


METHODS: dict[str, MethodEntry] = {}


def register_method(name: str, *, models=None, kind="point", uses_prior=False, is_em=False,
                    description=""):
    """Decorator: register ``fit(problem, **options) -> MethodFit`` under ``name``.

    models : names of the models it can fit (None: any). kind : "point" or "posterior".
    uses_prior : whether the fit depends on problem.prior. is_em : EM-type method (gets
    elbo_em at its own final q).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def decorate(fit):
        METHODS[name] = MethodEntry(name, fit, None if models is None else tuple(models), kind,
                                    uses_prior, is_em, description or (fit.__doc__ or "")
                                    .strip().split("\n")[0])
        return fit

    return decorate
