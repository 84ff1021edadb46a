"""Input checks shared by the models: run on concrete arrays, skipped on JAX tracers."""

from __future__ import annotations

import jax
import numpy as np
import numpyro


def is_concrete(x) -> bool:
    """True unless x is a JAX tracer (inside jit/vmap/grad, where values are unknown)."""
    return not isinstance(x, jax.core.Tracer)


def as_data(X, name: str, min_ndim: int = 1, max_ndim: int = 2):
    """Return X as a 2-D float array (N, D) (a 1-D input becomes (N, 1)); tracers pass through
    with only their shape checked. Raises ValueError naming the problem."""
    ndim = np.ndim(X)
    if ndim < min_ndim or ndim > max_ndim:
        raise ValueError(f"{name} must be 1-D (N,) or 2-D (N, D), got shape {np.shape(X)}")
    if np.shape(X)[0] < 1 or (ndim == 2 and np.shape(X)[1] < 1):
        raise ValueError(f"{name} is empty (shape {np.shape(X)})")
    if is_concrete(X):
        X = np.asarray(X)
        if np.iscomplexobj(X):  # float() would silently drop the imaginary part
            raise ValueError(f"{name} is complex (dtype {X.dtype}); mixtures model real data")
        try:
            X = X.astype(float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must hold real numbers (dtype {X.dtype}): {exc}") from None
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{name} contains NaN or inf")
    else:  # traced: shape checks only; integer counts become floats as above
        if jax.numpy.iscomplexobj(X):
            raise ValueError(f"{name} is complex (dtype {X.dtype}); mixtures model real data")
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
    """em_reference.priors.resolve_prior (None, "default" or a ``prior_class`` instance; not
    yet validated against the data's shape), with "default" refused on traced data: the
    default prior is computed from concrete data. Raises ValueError naming the problem."""
    from em_reference.priors import resolve_prior as resolve

    def default():
        if not is_concrete(data):
            raise ValueError("prior='default' needs concrete data: resolve it before tracing "
                             f"({model_name}.prepare_args, which the fit_* routines call)")
        return make_default()

    return resolve(prior, prior_class, default)


def check_seed(seed) -> int:
    """A fit's seed: an int in [0, 2**63) (numpy integers too), else ValueError."""
    if (isinstance(seed, bool) or not isinstance(seed, int | np.integer)
            or not 0 <= seed < 2**63):
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    return int(seed)


def check_inside_handler(model_name: str):
    """A NumPyro model called bare (outside any handler: no random key, nothing recording its
    sites) fails inside numpyro with a bare AssertionError; say what to do instead."""
    if not numpyro.primitives._PYRO_STACK:
        raise ValueError(
            f"{model_name} is a NumPyro model: it returns nothing and draws its parameters from "
            f"numpyro's random key, so call it through a fitting routine, e.g. "
            f"models.fit_map(models.{model_name}, X, 3, prior='default'), or inside a handler, "
            f"e.g. numpyro.handlers.seed(models.{model_name}, 0)(X, 3)")


def merge_model_kwargs(kwargs: dict, model_kwargs) -> dict:
    """The model's keyword arguments: the fit routine's unknown keywords plus ``model_kwargs``
    (a dict or None; it wins on clashes)."""
    if model_kwargs is None:
        return dict(kwargs)
    if not isinstance(model_kwargs, dict):
        raise ValueError(f"model_kwargs must be a dict or None, got "
                         f"{type(model_kwargs).__name__}")
    return {**kwargs, **model_kwargs}


def check_init_strategy(init_strategy):
    if not callable(init_strategy):
        raise ValueError("init_strategy must be a numpyro init strategy (a callable such as "
                         f"numpyro.infer.init_to_median), got {init_strategy!r}")
    return init_strategy
