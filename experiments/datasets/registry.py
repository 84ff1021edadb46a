"""The dataset registry: a name maps to a loader plus its description and provenance.

A loader is a function ``load(**params) -> Dataset``. Registering one is a single decorator::

    @register_dataset("my_data", family="gaussian", description="...", provenance="...")
    def load_my_data(n=500):
        return Dataset(X=..., labels=None, truth=None, feature_names=("x",), units=("cm",))

``family`` says which mixture family the data suits: "gaussian" (real-valued, X (N, D)) or
"poisson" (non-negative integer counts, X (N, D)). Keyword parameters of the loader are the
dataset's parameters; a grid cell may set them (``{name = "generated", n = 2000, d = 3}``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

FAMILIES = ("gaussian", "poisson")


@dataclass(frozen=True)
class Dataset:
    """One loaded data set.

    X : (N, D) float64 (gaussian) or int64 counts (poisson).
    labels : (N,) int true component labels, or None.
    truth : dict of true parameters in the convention of em_reference (weights (K,),
        means (K, D) and covariances (K, D, D) full; or weights (K,), rates (K, D)), or None.
    feature_names, units : (D,) strings used for axis labels.
    """

    X: np.ndarray
    labels: np.ndarray | None = None
    truth: dict | None = None
    feature_names: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    name: str = ""
    family: str = ""
    params: dict = field(default_factory=dict)

    @property
    def n_true_components(self) -> int | None:
        return None if self.truth is None else len(self.truth["weights"])


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    family: str
    loader: Callable[..., Dataset]
    description: str
    provenance: str
    kind: str  # "synthetic" | "real"

    @property
    def defaults(self) -> dict:
        sig = inspect.signature(self.loader)
        return {k: p.default for k, p in sig.parameters.items()
                if p.default is not inspect.Parameter.empty}


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, *, family: str, description: str, provenance: str,
                     kind: str = "synthetic"):
    """Decorator: register ``loader`` under ``name``. Re-registering a name replaces it."""
    if family not in FAMILIES:
        raise ValueError(f"dataset family must be one of {FAMILIES}, got {family!r}")

    def decorate(loader):
        DATASETS[name] = DatasetEntry(name, family, loader, description, provenance, kind)
        return loader

    return decorate


def check_dataset_params(name: str, params: dict) -> dict:
    """Validate a dataset reference before any work; return the full parameter dict."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}")
    defaults = DATASETS[name].defaults
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"dataset {name!r} has no parameter(s) {sorted(unknown)}; "
                         f"its parameters are {sorted(defaults)}")
    return {**defaults, **params}


def load_dataset(name: str, **params) -> Dataset:
    """Load a registered dataset with ``params`` overriding the loader's defaults."""
    full = check_dataset_params(name, params)
    entry = DATASETS[name]
    ds = entry.loader(**full)
    X = np.asarray(ds.X)
    X = X[:, None] if X.ndim == 1 else X
    if entry.family == "poisson":
        if np.any(X < 0) or np.any(X != np.round(X)):
            raise ValueError(f"dataset {name!r}: Poisson data must be non-negative integers")
        X = X.astype(np.int64)
    else:
        X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"dataset {name!r} contains NaN or inf")
    d = X.shape[1]
    names = ds.feature_names or tuple(f"x{i + 1}" for i in range(d))
    units = ds.units or ("a.u.",) * d
    return Dataset(X, ds.labels, ds.truth, tuple(names), tuple(units), name, entry.family, full)
