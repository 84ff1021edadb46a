"""The method registry: a name maps one ``Problem`` (see problem.py) to a ``models.FitResult``.

Registering a method is one decorator on a function ``fit(problem, **options) -> FitResult``::

    @register_method("my_em", models=lambda m: m.em_estimator is not None, kind="point",
                     description="...")
    def fit_my_em(problem, max_iter: Count = 100, tol: NonNegative = 1e-6):
        ...
        return make_fit("my_em", params, "log_likelihood", trace, n_steps, converged, seconds)

Options are the keyword arguments after ``problem``, with their defaults; their types and
bounds come from the annotations (specs.py: ``Count``, ``Positive``, ``Literal[...]``) or the
defaults, and the grid's values (``[methods.my_em] max_iter = 50``) are checked when the grid
is loaded: unknown options and bad values are rejected before any work.

``models`` says which registered models the method can fit: None (any), a tuple of model
names, or a predicate on the ModelEntry (e.g. "has an EM estimator"). ``in_all=False`` keeps a
method out of a grid block's ``methods = "all"`` (a costly or specialised method, e.g. the
evidence by NUTS + bridge sampling, that a grid names where it wants it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..specs import Spec, check_values, signature_specs

KINDS = ("point", "posterior")
# what a method's elbo_vi bounds log p(X) over, with every constant: the parameters with z
# summed out (NumPyro's guides, Laplace) or the assignments and parameters (CAVI)
BOUNDS_OVER = ("θ", "(z, θ)")


def make_fit(method: str, params: dict, objective_name: str | None, objective_trace,
             n_steps: int, converged: bool, wall_time: float, compile_time=float("nan"), *,
             samples=None, elbo=None, elbo_se=None, inference_data=None, diagnostics=None,
             hard_assignment=False, extra=None, **more):
    """A ``models.FitResult`` with the defaults of a point fit filled in (no draws, no ELBO).

    ``more``: further FitResult fields where the installed models package has them (e.g.
    ``status``; when FitResult has a ``status`` and none is given, it is "ok" for a converged
    fit and "not_converged" otherwise)."""
    from models import FitResult

    names = {f.name for f in dataclasses.fields(FitResult)}
    if "status" in names and "status" not in more:
        more["status"] = "ok" if converged else "not_converged"
    unknown = set(more) - names
    if unknown:
        raise TypeError(f"FitResult has no field(s) {sorted(unknown)}")
    return FitResult(method=method, params=params, samples=samples,
                     objective_name=objective_name,
                     objective_trace=np.asarray(objective_trace, dtype=float), elbo=elbo,
                     elbo_se=elbo_se, inference_data=inference_data, wall_time=float(wall_time),
                     compile_time=float(compile_time), converged=bool(converged),
                     n_steps=int(n_steps), diagnostics=dict(diagnostics or {}),
                     hard_assignment=bool(hard_assignment), extra=dict(extra or {}), **more)


@dataclass(frozen=True)
class MethodEntry:
    name: str
    fit: Callable
    models: tuple[str, ...] | Callable | None  # None: any registered model
    kind: str
    uses_prior: bool
    is_em: bool
    description: str
    in_all: bool = True  # whether a grid block's methods = "all" includes it
    bound_over: str | None = None  # one of BOUNDS_OVER: its elbo_vi is judged by kl_gap
    cost_rank: int = 2  # longest-first scheduling: 0 slowest (compiled SVI, NUTS), 1, 2
    colour: str | None = None  # "#rrggbb" in every figure; None: one from its name

    @property
    def specs(self) -> dict[str, Spec]:
        return signature_specs(self.fit, skip=1)

    @property
    def defaults(self) -> dict:
        return {name: spec.default for name, spec in self.specs.items()}

    def supports(self, model) -> bool:
        """Whether the method can fit ``model`` (a ModelEntry, or a registered model name)."""
        if isinstance(model, str):
            from ..models_registry import MODELS

            model = MODELS[model]
        if self.models is None:
            return True
        if callable(self.models):
            return bool(self.models(model))
        return model.name in self.models

    def check_options(self, options: dict) -> dict:
        return check_values(self.specs, options, f"method {self.name!r}", noun="option")


METHODS: dict[str, MethodEntry] = {}


def register_method(name: str, *, models=None, kind="point", uses_prior=False, is_em=False,
                    description="", in_all=True, bound_over=None, cost_rank=2, colour=None):
    """Decorator: register ``fit(problem, **options) -> models.FitResult`` under ``name``.

    models : which models it can fit: None (any), model names, or a predicate on the
    ModelEntry. kind : "point" or "posterior". uses_prior : whether the fit depends on
    problem.prior. is_em : EM-type method (gets elbo_em at its own final q). in_all : whether
    ``methods = "all"`` includes it (False: only grids that name it run it). bound_over : None,
    or what its ``elbo_vi`` bounds log p(X) over with every constant (one of BOUNDS_OVER:
    "θ" with z summed out, "(z, θ)"), so that comparisons.kl_gaps judges it against the
    evidence. cost_rank : longest-first scheduling of a grid's cells (runner): 0 for the
    slowest (compiled SVI, NUTS), 1 for the middling, 2 (default) for the rest. colour : None
    or "#rrggbb", its colour in every figure (figures.style: None gives a plug-in one from its
    name); figures and tables list methods in registration order.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if bound_over not in (None, *BOUNDS_OVER):
        raise ValueError(f"bound_over must be None or one of {BOUNDS_OVER}, got "
                         f"{bound_over!r}")
    if cost_rank not in (0, 1, 2):
        raise ValueError(f"cost_rank must be 0, 1 or 2, got {cost_rank!r}")
    if colour is not None and not (isinstance(colour, str)
                                   and re.fullmatch(r"#[0-9A-Fa-f]{6}", colour)):
        raise ValueError(f"colour must be None or '#rrggbb', got {colour!r}")
    if models is not None and not callable(models):
        models = tuple(models)

    def decorate(fit):
        signature_specs(fit, skip=1)  # every option has a default: fails at registration
        METHODS[name] = MethodEntry(name, fit, models, kind, uses_prior, is_em,
                                    description or (fit.__doc__ or "").strip().split("\n")[0],
                                    bool(in_all), bound_over, int(cost_rank), colour)
        return fit

    return decorate


def bound_methods() -> dict[str, str]:
    """{method name: what its elbo_vi bounds log p(X) over} of every registered bound method,
    in registration order."""
    return {name: m.bound_over for name, m in METHODS.items() if m.bound_over is not None}
