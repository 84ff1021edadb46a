"""One problem specification per cell, shared by every method: data split, model, K, prior, init.

``build_problem(cell)`` is deterministic in the cell. The split: a dataset's own split when it
has one (``predefined_split``: train / test / valid rows, e.g. binarized MNIST), else a fixed
random split (seed SPLIT_SEED) holding out ``held_out_fraction`` of the rows. The prior and the
shared initialisation come from the model's registration (models_registry): for the built-in
mixtures the default prior with the grid's overrides, and one k-means run turned into
parameters. Every method that takes an initialisation starts from ``problem.init``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cells import Cell
from .datasets import Dataset, load_dataset
from .models_registry import MODELS, ModelEntry

SPLIT_SEED = 20240601  # fixed: the held-out set never depends on the fit seed


@dataclass(frozen=True)
class Problem:
    """Everything a method needs. X_train (N, D), X_test (M, D), X_valid (V, D) or None (a
    validation set, for early stopping, where the dataset has one); labels of each or None;
    init: parameter dict in the model's convention (see models_registry), or None."""

    cell: Cell
    dataset: Dataset
    model: ModelEntry
    X_train: np.ndarray
    X_test: np.ndarray
    labels_train: np.ndarray | None
    labels_test: np.ndarray | None
    prior: object
    init: dict | None
    X_valid: np.ndarray | None = None
    labels_valid: np.ndarray | None = None

    @property
    def n_components(self) -> int | None:
        return self.cell.n_components

    @property
    def covariance_type(self) -> str:
        return self.cell.covariance_type

    @property
    def seed(self) -> int:
        return self.cell.seed

    @property
    def model_options(self) -> dict:
        return self.cell.model_options


def split(n, held_out_fraction):
    """Indices (train, test) of a fixed random split; test has round(fraction * n) rows."""
    n_test = int(round(held_out_fraction * n))
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def split_rows(dataset: Dataset, held_out_fraction) -> dict:
    """{"train": rows, "test": rows[, "valid": rows]} of ``dataset`` for a cell."""
    if dataset.split is not None:
        return dict(dataset.split)
    train, test = split(len(dataset.X), held_out_fraction)
    return {"train": train, "test": test}


def build_prior(model: ModelEntry, X_train, n_components, covariance_type, prior):
    """The cell's prior object (validated), or None for models that register no builder."""
    if model.build_prior is None:
        return None
    overrides = prior if isinstance(prior, dict) else None
    X = X_train if X_train.dtype.kind == "f" else X_train.astype(float)
    return model.build_prior(X, n_components, covariance_type or "full", overrides)


def build_problem(cell: Cell) -> Problem:
    """Load the data, split it, and build prior and initialisation for ``cell``."""
    dataset = load_dataset(cell.dataset, **cell.dataset_params)
    model = MODELS[cell.model]
    rows = split_rows(dataset, cell.held_out_fraction)
    X = dataset.X
    k = cell.n_components
    if k is not None and len(rows["train"]) < k:
        raise ValueError(f"{cell.label}: {len(rows['train'])} training points for {k} "
                         "components")
    lab = dataset.labels

    def part(name, a):
        return None if a is None or name not in rows else a[rows[name]]

    X_train = part("train", X)
    prior = build_prior(model, X_train, k, cell.covariance_type, cell.prior)
    init = None
    if model.initial_values is not None:
        init = {name: np.asarray(v) for name, v in
                model.initial_values(X_train, k, cell.covariance_type, cell.seed).items()}
    return Problem(cell, dataset, model, X_train, part("test", X), part("train", lab),
                   part("test", lab), prior, init, part("valid", X), part("valid", lab))
