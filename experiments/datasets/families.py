"""Data families: what kind of values a dataset holds, checked once when it is loaded.

A family is a name, a description and ``prepare(X (N, D), dataset_name) -> X`` that validates
the values and returns them in the family's dtype. Datasets declare a family; models declare
the family they fit (models_registry), so the grid pairs them. Built-ins::

    gaussian   real values, float64
    poisson    non-negative integer counts, int64
    bernoulli  binary values {0, 1}, int8 (compact: binarized MNIST is 70,000 x 784)

A new family is one ``register_family`` call (README, "Adding a family").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DataFamily:
    name: str
    description: str
    prepare: Callable[[np.ndarray, str], np.ndarray]


FAMILIES: dict[str, DataFamily] = {}


def register_family(name: str, *, description: str, prepare: Callable):
    """Register a data family: ``prepare(X (N, D), dataset_name) -> X`` raises ValueError
    naming the dataset for values outside the family, and returns X in the family's dtype."""
    FAMILIES[name] = DataFamily(name, description, prepare)
    return FAMILIES[name]


def _real(X, name):
    if np.iscomplexobj(X):
        raise ValueError(f"dataset {name!r}: complex values (a Gaussian dataset is real)")
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"dataset {name!r}: values are not numbers ({exc})") from None
    if not np.all(np.isfinite(X)):
        raise ValueError(f"dataset {name!r} contains NaN or inf")
    return X


def _counts(X, name):
    X = _real(X, name)
    if np.any(X < 0) or np.any(X != np.round(X)):
        raise ValueError(f"dataset {name!r}: Poisson data must be non-negative integers")
    return X.astype(np.int64)


def _binary(X, name):
    X = np.asarray(X)
    if X.dtype == bool:
        return X.astype(np.int8)
    X = _real(X, name) if X.dtype.kind not in "iu" else X
    if X.size and (X.min() < 0 or X.max() > 1 or (X.dtype.kind == "f" and np.any(X % 1))):
        bad = np.unique(X[(X != 0) & (X != 1)])[:5]
        raise ValueError(f"dataset {name!r}: Bernoulli data must be 0 or 1, found values "
                         f"{bad.tolist()}")
    return X.astype(np.int8, copy=False)


register_family("gaussian", description="real values (N, D), float64", prepare=_real)
register_family("poisson", description="non-negative integer counts (N, D), int64",
                prepare=_counts)
register_family("bernoulli", description="binary values in {0, 1} (N, D), int8",
                prepare=_binary)
