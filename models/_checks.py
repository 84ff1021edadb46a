"""Input checks shared by the models: run on concrete arrays, skipped on JAX tracers."""

from __future__ import annotations

import jax
import numpy as np


def is_concrete(x) -> bool:
    """True unless x is a JAX tracer (inside jit/vmap/grad, where values are unknown)."""
    return not isinstance(x, jax.core.Tracer)


def as_data(X, name: str, min_ndim: int = 1, max_ndim: int = 2):
    """Return X as a 2-D float array (N, D) (a 1-D input becomes (N, 1)); tracers pass through
    with only their shape checked. Raises ValueError naming the problem."""
    ndim = np.ndim(X)
    if ndim < min_ndim or ndim > max_ndim:
        raise ValueError(f"{name} must be 1-D (N,) or 2-D (N, D), got shape {np.shape(X)}")
    if np.shape(X)[0] < 1:
        raise ValueError(f"{name} is empty (shape {np.shape(X)})")
    if is_concrete(X):
        X = np.asarray(X, dtype=float)
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{name} contains NaN or inf")
    else:  # traced: shape checks only; integer counts become floats as above
        X = X.astype(jax.numpy.result_type(float))
    return X if ndim == 2 else X[:, None]


def check_n_components(n_components, n_samples: int) -> int:
    if isinstance(n_components, bool) or not isinstance(n_components, int | np.integer):
        raise ValueError(f"n_components must be an int, got {n_components!r}")
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    if n_components > n_samples:
        raise ValueError(f"n_components={n_components} exceeds the number of samples "
                         f"{n_samples}")
    return int(n_components)


def resolve_prior(prior, data, prior_class, model_name: str, make_default):
    """None, "default" (``make_default()``, which needs concrete data) or a ``prior_class``
    instance; returns None or the prior object (not yet validated against the data's shape).
    Raises ValueError naming the problem."""
    if prior is None:
        return None
    if isinstance(prior, str):
        if prior != "default":
            raise ValueError(f"prior must be None, 'default' or a {prior_class.__name__}, "
                             f"got {prior!r}")
        if not is_concrete(data):
            raise ValueError("prior='default' needs concrete data: resolve it before tracing "
                             f"({model_name}.prepare_args, which the fit_* routines call)")
        prior = make_default()
    if not isinstance(prior, prior_class):
        raise ValueError(f"prior must be None, 'default' or a {prior_class.__name__}, "
                         f"got {type(prior).__name__}")
    return prior
