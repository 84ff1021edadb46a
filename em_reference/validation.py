"""Input checks run once at the public boundary, before any work: each raises a ValueError that
names the problem (scikit-learn's messages where it has them)."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import validate_data


def as_2d_samples(estimator, X, reset):
    """Validate X (NaN/inf, empty, ndim) and return it as a float64 (N, D) array.

    1-D input of shape (N,) is one feature: it becomes (N, 1). reset=True records
    n_features_in_ (fit); reset=False checks the feature count against it (predict, score).
    """
    if not hasattr(X, "toarray") and not hasattr(X, "ndim"):
        X = np.asarray(X)  # lists and other array-likes
    if getattr(X, "ndim", None) == 1:
        X = np.asarray(X).reshape(-1, 1)
    return validate_data(estimator, X, reset=reset, dtype=[np.float64, np.float32],
                         ensure_min_samples=1).astype(np.float64, copy=False)


def check_counts(x):
    """Poisson data must be non-negative integers (floats holding integers are fine)."""
    if np.any(x < 0):
        raise ValueError("Negative values in data passed to PoissonMixtureEM: Poisson counts "
                         f"must be non-negative (min {x.min():g})")
    if np.any(x != np.round(x)):
        raise ValueError("Poisson counts must be integers; X has non-integer values")
    return x


def check_binary(x):
    """Bernoulli data must be 0 or 1 (booleans, or floats holding 0 and 1)."""
    bad = (x != 0) & (x != 1)
    if np.any(bad):
        raise ValueError("Bernoulli data must be binary (0 or 1); X has other values, e.g. "
                         f"{x[bad][0]:g}")
    return x


def check_sample_weight(sample_weight, n_samples):
    """Frequency weights: shape (N,), finite, >= 0, not all zero. None -> ones."""
    if sample_weight is None:
        return np.ones(n_samples)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight contains NaN or inf")
    if np.any(w < 0):
        raise ValueError("sample_weight must be non-negative; got negative values")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero: there is nothing to fit")
    return w


def check_int(name, value, low):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_float(name, value, low, inclusive=True):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= low if inclusive else value > low)
    if not ok:
        sign = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be a finite number {sign} {low}, got {value!r}")
    return float(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_init_array(name, value, shape, positive=False):
    """A user-supplied initial parameter: finite, the expected shape, optionally > 0."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0")
    return arr


def check_weights_init(weights, n_components):
    w = check_init_array("weights_init", weights, (n_components,))
    if np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-6):
        raise ValueError("weights_init must be non-negative and sum to 1, got sum "
                         f"{w.sum():.6g}")
    return w / w.sum()
