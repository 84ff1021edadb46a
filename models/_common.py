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
            v = jnp.asarray(v, dtype=jnp.result_type(float))
            site = sites[name]
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
    return {k: np.asarray(v) for k, v in tree.items()}


def require_finite(values, what, method):
    bad = sorted(k for k, v in values.items() if not np.all(np.isfinite(v)))
    if bad:
        raise FitError(f"{method}: non-finite {what} at sites {bad}")


def posterior_inference_data(samples, n_chains, sample_stats=None):
    """samples: site -> (n_chains * n_draws, ...) -> InferenceData with (chain, draw) dims."""
    post = {k: np.asarray(v).reshape((n_chains, -1) + np.shape(v)[1:])
            for k, v in samples.items()}
    return az.from_dict(posterior=post, sample_stats=sample_stats)
