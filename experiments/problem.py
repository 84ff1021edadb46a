"""One problem specification per cell, shared by every method: data split, model, K, prior, init.

``build_problem(cell)`` is deterministic in the cell: the train/held-out split uses a fixed seed,
and the shared initialisation is one k-means run (``KMeans(n_clusters=K, n_init=1,
random_state=seed)``, the call scikit-learn's mixtures make internally) turned into parameters by
one hard M-step. Every method that takes an initialisation starts from ``problem.init``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .cells import Cell
from .datasets import Dataset, load_dataset
from .models_registry import MODELS, ModelEntry

SPLIT_SEED = 20240601  # fixed: the held-out set never depends on the fit seed
INIT_REG = 1e-6


@dataclass(frozen=True)
class Problem:
    """Everything a method needs. X_train (N, D), X_test (M, D); labels (N,) / (M,) or None;
    init: parameter dict in the model's convention (see models_registry)."""

    cell: Cell
    dataset: Dataset
    model: ModelEntry
    X_train: np.ndarray
    X_test: np.ndarray
    labels_train: np.ndarray | None
    labels_test: np.ndarray | None
    prior: object
    init: dict | None

    @property
    def n_components(self) -> int:
        return self.cell.n_components

    @property
    def covariance_type(self) -> str:
        return self.cell.covariance_type

    @property
    def seed(self) -> int:
        return self.cell.seed


def split(n, held_out_fraction):
    """Indices (train, test) of a fixed random split; test has round(fraction * n) rows."""
    n_test = int(round(held_out_fraction * n))
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def kmeans_labels(X, n_components, seed):
    """Labels (N,) of one k-means run, as scikit-learn's mixtures initialise (n_init=1)."""
    from sklearn.cluster import KMeans

    from em_reference.config import one_native_thread

    # one OpenMP thread: scikit-learn's pool fights JAX's for the cores (10-30x slower)
    with warnings.catch_warnings(), one_native_thread():
        warnings.simplefilter("ignore")  # ConvergenceWarning on duplicate points
        return KMeans(n_clusters=n_components, n_init=1, random_state=seed).fit(X).labels_


def gaussian_init(X, labels, n_components, covariance_type, reg=INIT_REG):
    """Hard M-step from labels: weights (K,), means (K, D), covariances (sklearn shape)."""
    X = np.asarray(X, float)
    n, d = X.shape
    resp = np.zeros((n, n_components))
    resp[np.arange(n), labels] = 1.0
    nk = resp.sum(0) + 10 * np.finfo(float).eps
    means = resp.T @ X / nk[:, None]
    covs = np.empty((n_components, d, d))
    for k in range(n_components):
        diff = X - means[k]
        covs[k] = (resp[:, k, None] * diff).T @ diff / nk[k] + reg * np.eye(d)
    if covariance_type == "tied":
        cov = (X.T @ X - (nk[:, None] * means).T @ means) / n + reg * np.eye(d)
    elif covariance_type == "diag":
        cov = np.stack([np.diag(c) for c in covs])
    elif covariance_type == "spherical":
        cov = np.stack([np.diag(c).mean() for c in covs])
    else:
        cov = covs
    return {"weights": nk / n, "means": means, "covariances": cov}


def poisson_init(X, labels, n_components):
    """Weights (K,) and rates (K, D) = cluster fractions and cluster means (floored at 1e-3)."""
    X = np.asarray(X, float)
    counts = np.bincount(labels, minlength=n_components).astype(float)
    sums = np.stack([X[labels == k].sum(0) for k in range(n_components)])
    rates = np.maximum(sums / np.maximum(counts, 1.0)[:, None], 1e-3)
    weights = np.maximum(counts, 1e-3) / np.maximum(counts, 1e-3).sum()
    return {"weights": weights, "rates": rates}


def shared_init(model: ModelEntry, X, n_components, covariance_type, seed):
    """The one initialisation every method of the cell starts from: the model's own
    ``initial_values`` if it registered one, k-means for the built-in mixtures, else None."""
    if model.initial_values is not None:
        return {k: np.asarray(v) for k, v in
                model.initial_values(X, n_components, covariance_type, seed).items()}
    if model.name not in ("gaussian_mixture", "poisson_mixture"):
        return None
    labels = kmeans_labels(X if X.dtype.kind == "f" else X.astype(float), n_components, seed)
    if model.name == "poisson_mixture":
        return poisson_init(X, labels, n_components)
    return gaussian_init(X, labels, n_components, covariance_type)


def build_problem(cell: Cell) -> Problem:
    """Load the data, split it, and build prior and initialisation for ``cell``."""
    dataset = load_dataset(cell.dataset, **cell.dataset_params)
    model = MODELS[cell.model]
    X = dataset.X
    train, test = split(len(X), cell.held_out_fraction)
    if len(train) < cell.n_components:
        raise ValueError(f"{cell.label}: {len(train)} training points for "
                         f"{cell.n_components} components")
    X_train, X_test = X[train], X[test]
    lab = dataset.labels
    overrides = cell.prior if isinstance(cell.prior, dict) else None
    prior = None
    if model.default_prior is not None:
        prior = model.default_prior(X_train.astype(float), cell.n_components,
                                    cell.covariance_type or "full", overrides)
    init = shared_init(model, X_train, cell.n_components, cell.covariance_type, cell.seed)
    return Problem(cell, dataset, model, X_train, X_test,
                   None if lab is None else lab[train], None if lab is None else lab[test],
                   prior, init)
