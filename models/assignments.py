"""Posterior responsibilities p(z_n = k | x_n, theta) and hard assignments from fitted
parameters or from posterior draws, evaluated with the models' own component densities."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from models._checks import as_data
from models._components import PoissonComponents
from models.gaussian_mixture import check_covariance_type, component_distribution

_PARAM_NDIM = {"weights": 1, "means": 2, "rates": 2,
               "full": 3, "tied": 2, "diag": 2, "spherical": 1}


@partial(jax.jit, static_argnames="covariance_type")
def _log_resp(X, params, covariance_type):
    """(N, K) log responsibilities for one parameter set."""
    if "rates" in params:
        components = PoissonComponents(params["rates"])
    else:
        components = component_distribution(params["means"], params["covariances"],
                                             covariance_type)
    log_joint = components.log_prob(X[:, None, :]) + jnp.log(params["weights"])
    return log_joint - jax.scipy.special.logsumexp(log_joint, axis=1, keepdims=True)


@partial(jax.jit, static_argnames="covariance_type")
def _draws_resp(X, params, covariance_type):
    return jax.lax.map(lambda q: jnp.exp(_log_resp(X, q, covariance_type)), params)


def responsibilities(X, params, covariance_type=None, average=False):
    """Posterior responsibilities of every component for every point.

    X : (N, D) or (N,) data (counts for the Poisson mixture).
    params : dict with weights (K,) and either means (K, D) + covariances (shape of
        ``covariance_type``) or rates (K, D); every entry may carry a leading draw axis (S, ...)
        (e.g. ``FitResult.samples``, relabelled for NUTS).
    covariance_type : required for Gaussian parameters, ignored for Poisson ones.
    average : with draws, return the posterior-averaged (N, K) instead of (S, N, K).
    Returns (N, K), or (S, N, K) for draws, as a NumPy array.
    """
    X = jnp.asarray(as_data(X, "X"))
    if "weights" not in params or not ({"means", "covariances"} <= set(params)
                                       or "rates" in params):
        raise ValueError("params needs 'weights' and either 'means' + 'covariances' or 'rates', "
                         f"got keys {sorted(params)}")
    keys = ["weights", "rates"] if "rates" in params else ["weights", "means", "covariances"]
    if "rates" not in params:
        check_covariance_type(covariance_type)
    p = {k: jnp.asarray(params[k]) for k in keys}
    extra = p["weights"].ndim - 1
    if extra not in (0, 1):
        raise ValueError(f"weights must be (K,) or (S, K), got shape {p['weights'].shape}")
    for k in keys:
        expected = _PARAM_NDIM[covariance_type if k == "covariances" else k] + extra
        if p[k].ndim != expected:
            raise ValueError(f"{k} has shape {p[k].shape}; expected {expected} dimensions")
    _check_param_shapes(p, covariance_type, X.shape[1], extra)
    if extra == 0:
        return np.asarray(jnp.exp(_log_resp(X, p, covariance_type)))
    r = _draws_resp(X, p, covariance_type)
    return np.asarray(r.mean(0) if average else r)


def hard_assignments(X, params, covariance_type=None):
    """(N,) most probable component of every point (posterior-averaged over draws if any)."""
    return responsibilities(X, params, covariance_type, average=True).argmax(-1)


def _check_param_shapes(p, covariance_type, n_features, extra):
    """Every parameter's shape against K (from weights), D (from X) and the draw axis:
    jnp would broadcast a mismatch (e.g. X with the wrong feature count) into a wrong answer."""
    lead = p["weights"].shape[:extra]
    k, d = p["weights"].shape[-1], n_features
    if "rates" in p:
        expected = {"rates": lead + (k, d)}
    else:
        cov = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
        expected = {"means": lead + (k, d), "covariances": lead + cov[covariance_type]}
    for name, shape in expected.items():
        if p[name].shape != shape:
            raise ValueError(f"{name} has shape {p[name].shape}, expected {shape} for "
                             f"{k} components (weights {p['weights'].shape}) and X with "
                             f"{d} features")
