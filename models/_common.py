"""Pieces shared by the three fitting routines: option checks, initial values, deterministic
sites, failure checks, ArviZ conversion."""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import Predictive
from numpyro.infer.initialization import init_to_value

from models.result import FitError


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(value, name):
    if not (isinstance(value, int | float | np.floating) and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def as_init_list(init, info, n_restarts, what="restart"):
    """``init`` (None, a dict, or a list of dicts of constrained values keyed by site name)
    -> (list of dicts, n); every value is checked against its site's shape and support."""
    if init is None:
        inits = []
    elif isinstance(init, dict):
        inits = [init]
    elif isinstance(init, list | tuple) and all(isinstance(i, dict) for i in init):
        inits = list(init)
    else:
        raise ValueError(f"init must be None, a dict or a list of dicts, got {type(init).__name__}")
    if n_restarts is None:
        n_restarts = max(1, len(inits))
    n_restarts = check_positive_int(n_restarts, f"n_{what}s")
    if len(inits) > n_restarts:
        raise ValueError(f"{len(inits)} initial values given for {n_restarts} {what}s")
    sites = {**info.latent, **info.params}
    checked = []
    for i, values in enumerate(inits):
        # values for deterministic sites (e.g. the fixed weights of a one-component mixture)
        # follow from the others: dropped
        values = {k: v for k, v in values.items() if k not in info.deterministic}
        unknown = sorted(set(values) - set(sites))
        if unknown:
            raise ValueError(f"init[{i}] names {unknown}, which are not latent or param sites "
                             f"of the model (those are {sorted(sites)})")
        out = {}
        for name, v in values.items():
            site = sites[name]
            if not isinstance(info.shapes[name], tuple):  # a pytree-valued param (a network)
                out[name] = _checked_tree(v, info.shapes[name], f"init[{i}][{name!r}]")
                continue
            v = jnp.asarray(v, dtype=jnp.result_type(float))
            if v.shape != info.shapes[name]:
                raise ValueError(f"init[{i}][{name!r}] has shape {v.shape}, the site has shape "
                                 f"{info.shapes[name]}")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"init[{i}][{name!r}] contains NaN or inf")
            support = (site["fn"].support if site["type"] == "sample"
                       else site["kwargs"].get("constraint"))
            try:  # a support built from traced values cannot be evaluated here: skip it
                inside = support is None or bool(np.all(support(v)))
            except jax.errors.JAXTypeError:
                inside = True
            if not inside:
                raise ValueError(f"init[{i}][{name!r}] is outside the support of the site")
            out[name] = v
        checked.append(out)
    return checked, n_restarts


def _checked_tree(value, shapes, where):
    """A pytree-valued initial value (network parameters) checked leaf by leaf against the
    site's pytree of ``jax.ShapeDtypeStruct`` (same structure, same leaf shapes, finite)."""
    value = jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype=jnp.result_type(float)), value)
    want = jax.tree.structure(shapes)
    if jax.tree.structure(value) != want:
        raise ValueError(f"{where} has pytree structure {jax.tree.structure(value)}, the site "
                         f"has {want}")
    for leaf, spec in zip(jax.tree.leaves(value), jax.tree.leaves(shapes), strict=True):
        if leaf.shape != spec.shape:
            raise ValueError(f"{where} has a leaf of shape {leaf.shape} where the site has "
                             f"{spec.shape}")
        if not np.all(np.isfinite(leaf)):
            raise ValueError(f"{where} contains NaN or inf")
    return value


def init_loc_fn(values, default):
    """Init strategy: ``init_to_value`` when ``values`` (latent site -> constrained value) is
    given (latent sites it leaves out start from numpyro's init_to_uniform), else ``default``."""
    return init_to_value(values=values) if values else default


def with_deterministic(model, margs, values, info, batch_ndims):
    """Add the model's deterministic sites to ``values`` (site -> array with ``batch_ndims``
    leading draw axes: 0 for a point, 1 for draws)."""
    if not info.deterministic:
        return values
    v = values if batch_ndims == 1 else jax.tree.map(lambda x: x[None], values)

    def run(v, dyn):
        args, kwargs = margs.rebuild(dyn)
        return Predictive(model, posterior_samples=v, batch_ndims=1,
                          return_sites=list(info.deterministic))(
            jax.random.PRNGKey(0), *args, **kwargs)

    det = jax.jit(run)(v, margs.dyn)
    if batch_ndims == 0:
        det = jax.tree.map(lambda x: x[0], det)
    return {**values, **det}


def to_numpy(tree):
    """site -> value, each value an array or a pytree of arrays (a network's parameters), with
    every leaf made a numpy array (the pytree structure is kept)."""
    return {k: jax.tree.map(np.asarray, v) for k, v in tree.items()}


def all_finite(value) -> bool:
    """Every leaf of an array or pytree of arrays is free of NaN and inf."""
    return all(bool(np.all(np.isfinite(leaf))) for leaf in jax.tree.leaves(value))


def require_finite(values, what, method):
    bad = sorted(k for k, v in values.items() if not all_finite(v))
    if bad:
        raise FitError(f"{method}: non-finite {what} at sites {bad}")


def posterior_inference_data(samples, n_chains, sample_stats=None):
    """samples: site -> (n_chains * n_draws, ...) -> InferenceData with (chain, draw) dims."""
    post = {k: np.asarray(v).reshape((n_chains, -1) + np.shape(v)[1:])
            for k, v in samples.items()}
    return az.from_dict(posterior=post, sample_stats=sample_stats)
