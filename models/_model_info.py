"""What a NumPyro model contains (latent sample sites, param sites, plates), found by tracing it
once abstractly (``jax.eval_shape``: no compilation, no numerical work), plus small pytree and
compilation helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
from numpyro import handlers


class ModelInfo(NamedTuple):
    latent: dict      # name -> trace site of every unobserved sample site (abstract values)
    params: dict      # name -> trace site of every numpyro.param site (abstract values)
    shapes: dict      # name -> shape of every latent and param site (site_shape: a pytree
    #                   of ShapeDtypeStruct for a network's parameters)
    deterministic: tuple


def inspect_model(model, args, kwargs) -> ModelInfo:
    """Trace ``model(*args, **kwargs)`` once; the model's own input checks (on its concrete
    arguments) raise their ValueError here, before any fitting work. Site values in the result
    are abstract: use their shapes and distributions, never their values."""
    if not callable(model):
        raise ValueError(f"model must be a callable NumPyro model, got {type(model).__name__}")
    box = {}

    def run():
        box["trace"] = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kwargs)

    jax.eval_shape(run)
    tr = box["trace"]
    latent = {n: s for n, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}
    params = {n: s for n, s in tr.items() if s["type"] == "param"}
    det = tuple(n for n, s in tr.items() if s["type"] == "deterministic")
    for name, site in latent.items():
        if site["fn"].support.is_discrete:
            raise ValueError(f"latent site {name!r} is discrete; marginalise it (e.g. "
                             "MixtureSameFamily) or enumerate it before fitting")
    shapes = {n: site_shape(s["value"]) for n, s in {**latent, **params}.items()}
    return ModelInfo(latent, params, shapes, det)


def site_shape(value):
    """The shape of a site's value: a tuple for an array; for a pytree of arrays (a network's
    parameters from ``numpyro.contrib.module``, ``numpyro.module`` or a nested-dict param) the
    same pytree with each leaf replaced by a ``jax.ShapeDtypeStruct`` (a leaf, unlike a shape
    tuple, which a pytree would read as a node). Never converts a value to numpy: inside
    ``inspect_model`` the values are tracers."""
    if isinstance(value, jax.Array | np.ndarray | int | float):
        return tuple(jax.numpy.shape(value))
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(jax.numpy.shape(leaf),
                                                          jax.numpy.result_type(leaf)), value)


class ModelArgs(NamedTuple):
    """A model's arguments with the arrays pulled out: jitted functions take ``dyn`` as an
    argument and call ``rebuild(dyn) -> (args, kwargs)``, so that data are inputs of the
    compiled code, not constants (XLA would constant-fold through large data sets)."""
    dyn: list
    rebuild: Callable


def prepare_args(model, args, kwargs):
    """Concrete model arguments: a model may define ``model.prepare_args(*args, **kwargs) ->
    (args, kwargs)`` to resolve data-dependent defaults (e.g. ``prior="default"``) while the
    data are still concrete, since the fitting routines then trace the model on array inputs."""
    prepare = getattr(model, "prepare_args", None)
    return (tuple(args), dict(kwargs)) if prepare is None else prepare(*args, **kwargs)


def split_args(args, kwargs) -> ModelArgs:
    """Arrays (numpy or JAX, at least 1-D) among args and kwargs values become ``dyn``; the
    rest (scalars, strings, prior objects, ...) stays static, closed over by the traces."""
    is_array = lambda v: isinstance(v, np.ndarray | jax.Array) and np.ndim(v) > 0  # noqa: E731
    pos = [i for i, a in enumerate(args) if is_array(a)]
    names = [k for k, v in kwargs.items() if is_array(v)]

    def rebuild(dyn):
        a, kw = list(args), dict(kwargs)
        for i, v in zip(pos, dyn[: len(pos)], strict=True):
            a[i] = v
        for k, v in zip(names, dyn[len(pos):], strict=True):
            kw[k] = v
        return tuple(a), kw

    return ModelArgs([args[i] for i in pos] + [kwargs[k] for k in names], rebuild)


def compile_timed(fn, *example_args):
    """jit + ahead-of-time compile: (compiled function, seconds spent tracing and compiling)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*example_args).compile()
    return compiled, time.perf_counter() - t0


def stack_trees(trees):
    """List of identical pytrees -> one pytree with a leading axis."""
    return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *trees)


def concat_trees(trees):
    return jax.tree.map(lambda *xs: jax.numpy.concatenate(xs), *trees)


def tree_index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)
