"""Pieces every mixture registration shares: the k-means start, prior overrides, precisions."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np


def kmeans_labels(X, n_components, seed):
    """Labels (N,) of one k-means run, as scikit-learn's mixtures initialise (n_init=1)."""
    from sklearn.cluster import KMeans

    from em_reference.config import one_native_thread

    X = np.asarray(X)
    X = X if X.dtype.kind == "f" else X.astype(float)
    # one OpenMP thread: scikit-learn's pool fights JAX's for the cores (10-30x slower)
    with warnings.catch_warnings(), one_native_thread():
        warnings.simplefilter("ignore")  # ConvergenceWarning on duplicate points
        return KMeans(n_clusters=n_components, n_init=1, random_state=seed).fit(X).labels_


def override_prior(prior, overrides):
    """A copy of the prior dataclass ``prior`` with ``overrides`` {field: number or nested
    list} replacing its fields, as float arrays (the caller validates the result)."""
    converted = {}
    for name, value in (overrides or {}).items():
        try:
            converted[name] = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"prior hyper-parameter {name!r} must be a number or an array "
                             f"of numbers, got {value!r}") from None
    return dataclasses.replace(prior, **converted)


def precisions_from_covariances(covariances, covariance_type):
    """sklearn-shaped covariances -> the precisions_init that em_reference/sklearn take."""
    c = np.asarray(covariances, dtype=float)
    return np.linalg.inv(c) if covariance_type in ("full", "tied") else 1.0 / c
