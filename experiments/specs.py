"""Typed parameters: what a method, a dataset or a model accepts, checked when a grid is loaded.

A parameter's spec is read from the function that takes it: its annotation if it has one,
else the type of its default::

    def fit_em(problem, tol: NonNegative = 1e-6, max_iter: Count = 1000,
               chain_method: Literal["sequential", "vectorized"] = "sequential"): ...

``Annotated[int, Range(ge=1)]`` bounds a number, ``Literal[...]`` lists the allowed values,
``X | None`` also accepts None (TOML has no null: only as a default). Without an annotation the
default decides: a bool takes a bool, an int an integer, a float a number (integers are
converted), a str a string, a list or tuple a list. Bad values raise ValueError naming the
parameter, the value and what was expected, before any work.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Literal

_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ge (>=), gt (>), le (<=), lt (<); None = unbounded."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, value) -> str | None:
        for bound, op, ok in ((self.ge, ">=", lambda v, b: v >= b),
                              (self.gt, ">", lambda v, b: v > b),
                              (self.le, "<=", lambda v, b: v <= b),
                              (self.lt, "<", lambda v, b: v < b)):
            if bound is not None and not ok(value, bound):
                return f"must be {op} {bound:g}"
        return None


Count = Annotated[int, Range(ge=1)]            # a number of things: 1, 2, ...
NonNegativeInt = Annotated[int, Range(ge=0)]   # 0, 1, ... (seeds, warm-up draws)
Positive = Annotated[float, Range(gt=0)]       # learning rates, scales
NonNegative = Annotated[float, Range(ge=0)]    # tolerances, ridges
Fraction = Annotated[float, Range(ge=0, le=1)]
OpenFraction = Annotated[float, Range(gt=0, lt=1)]  # validation shares, acceptance rates


@dataclass(frozen=True)
class Spec:
    """One parameter: accepted kind ("int", "float", "bool", "str", "list", "any"), default,
    bounds, allowed values, whether None is accepted."""

    name: str
    kind: str
    default: object = _EMPTY
    range: Range | None = None
    choices: tuple | None = None
    optional: bool = False

    def check(self, value, what: str):
        """The value converted to its canonical JSON form (float for "float", list for
        "list"), or ValueError naming ``what`` (e.g. "method 'em' option 'max_iter'")."""
        if value is None:
            if self.optional or self.default is None:
                return None
            raise ValueError(f"{what} may not be empty (None)")
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"{what} must be one of {list(self.choices)}, got {value!r}")
            return value
        kind = self.kind
        is_bool = isinstance(value, bool)
        if kind == "bool" and not is_bool:
            raise ValueError(f"{what} must be true or false, got {value!r}")
        if kind == "int" and (is_bool or not isinstance(value, int)):
            raise ValueError(f"{what} must be an integer, got {value!r}")
        if kind == "float":
            if is_bool or not isinstance(value, (int, float)):
                raise ValueError(f"{what} must be a number, got {value!r}")
            value = float(value)
            if value != value:  # NaN
                raise ValueError(f"{what} must be a number, got nan")
        if kind == "str" and not isinstance(value, str):
            raise ValueError(f"{what} must be a string, got {value!r}")
        if kind == "list":
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{what} must be a list, got {value!r}")
            value = list(value)
        if self.range is not None and kind in ("int", "float"):
            problem = self.range.problem(value)
            if problem:
                raise ValueError(f"{what} {problem}, got {value!r}")
        return value


def _kind_of_type(tp) -> str:
    return {int: "int", float: "float", bool: "bool", str: "str", list: "list",
            tuple: "list"}.get(typing.get_origin(tp) or tp, "any")


def _kind_of_default(default) -> str:
    if default is _EMPTY or default is None:
        return "any"
    if isinstance(default, bool):
        return "bool"
    return _kind_of_type(type(default))


def spec_from(name, annotation, default) -> Spec:
    """The Spec of one parameter from its (resolved) annotation and default."""
    rng, choices, optional = None, None, False
    tp = annotation
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        rng = next((m for m in meta if isinstance(m, Range)), None)
        tp = base
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else _EMPTY
        if typing.get_origin(tp) is Annotated:
            base, *meta = typing.get_args(tp)
            rng = rng or next((m for m in meta if isinstance(m, Range)), None)
            tp = base
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        kind = "any"
    elif tp is _EMPTY:
        kind = _kind_of_default(default)
    else:
        kind = _kind_of_type(tp)
        if kind == "any":
            kind = _kind_of_default(default)
    return Spec(name, kind, default, rng, choices, optional)


def signature_specs(fn, skip: int = 0) -> dict[str, Spec]:
    """{name: Spec} of the keyword parameters of ``fn`` after the first ``skip`` ones.

    Every such parameter needs a default (the grid may leave it out)."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001  (unresolvable annotations: fall back to the defaults)
        hints = {}
    out = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is _EMPTY:
            raise ValueError(f"{getattr(fn, '__name__', fn)!r}: parameter {p.name!r} needs a "
                             "default value (grid files may leave it out)")
        out[p.name] = spec_from(p.name, hints.get(p.name, _EMPTY), p.default)
    return out


def check_values(specs: dict[str, Spec], given: dict, what: str, noun: str = "parameter") -> dict:
    """Validate ``given`` against ``specs``; return every parameter with defaults filled in
    (so that two spellings of the same configuration are the same dict)."""
    if not isinstance(given, dict):
        raise ValueError(f"{what}: expected a table of parameters, got {given!r}")
    unknown = set(given) - set(specs)
    if unknown:
        raise ValueError(f"{what} has no {noun}(s) {sorted(unknown)}; "
                         f"its {noun}s are {sorted(specs)}")
    out = {}
    for name, spec in specs.items():
        value = given[name] if name in given else spec.default
        out[name] = spec.check(value, f"{what} {noun} {name!r}") if name in given else (
            list(value) if isinstance(value, tuple) else value)
    return out
