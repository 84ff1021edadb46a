"""The dataset registry: a name maps to a loader plus its description and provenance.

A loader is a function ``load(**params) -> Dataset``. Registering one is a single decorator::

    @register_dataset("my_data", family="gaussian", description="...", provenance="...")
    def load_my_data(n: Count = 500):
        return Dataset(X=..., labels=None, truth=None, feature_names=("x",), units=("cm",))

``family`` names a registered data family (families.py: "gaussian", "poisson", "bernoulli"),
which validates the values. Keyword parameters of the loader are the dataset's parameters; a
grid cell may set them (``{name = "generated", n = 2000, d = 3}``); their types and bounds come
from the loader's annotations or defaults (specs.py) and are checked when the grid is loaded.

A dataset either leaves the train/held-out split to the problem layer (``held_out_fraction``)
or, with ``predefined_split=True``, comes with its own: ``Dataset.split`` maps "train",
"test" and optionally "valid" (a validation set for early stopping) to row indices of X, and
the grid's held_out_fraction does not apply to it.

Loading is cached per process (the arrays are read-only; ``clear_dataset_cache`` forgets
them, e.g. in a notebook after a data file changed), and ``fingerprint`` hashes what a loader
returned: the fingerprint is part of every result key (cells.py), so results go stale
when their data change.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..specs import Spec, check_values, signature_specs
from .families import FAMILIES

CACHE_SIZE = 6  # loaded datasets kept per process (binarized MNIST: 55 MB)


@dataclass(frozen=True)
class Dataset:
    """One loaded data set.

    X : (N, D) in the family's dtype (float64 gaussian, int64 poisson, int8 bernoulli).
    labels : (N,) int true component (or class) labels, or None.
    truth : dict of true parameters in the convention of em_reference (weights (K,),
        means (K, D) and covariances (K, D, D) full; or weights (K,), rates (K, D)), or None.
    feature_names, units : (D,) strings used for axis labels.
    split : None, or {"train": (N_train,), "test": (N_test,), "valid": (N_valid,)} row
        indices of X: the dataset's own split (``predefined_split=True`` datasets).
    """

    X: np.ndarray
    labels: np.ndarray | None = None
    truth: dict | None = None
    feature_names: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    name: str = ""
    family: str = ""
    params: dict = field(default_factory=dict)
    split: dict | None = None

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
    predefined_split: bool = False

    @property
    def specs(self) -> dict[str, Spec]:
        return signature_specs(self.loader)

    @property
    def defaults(self) -> dict:
        return {k: s.default for k, s in self.specs.items()}


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, *, family: str, description: str, provenance: str,
                     kind: str = "synthetic", predefined_split: bool = False):
    """Decorator: register ``loader`` under ``name``. Re-registering a name replaces it.

    family : a registered data family (families.FAMILIES). predefined_split : the loader's
    Dataset carries its own ``split`` (train/test/valid rows)."""
    if family not in FAMILIES:
        raise ValueError(f"dataset family must be one of {sorted(FAMILIES)}, got {family!r}")

    def decorate(loader):
        signature_specs(loader)  # every parameter has a default: fails at registration
        DATASETS[name] = DatasetEntry(name, family, loader, description, provenance, kind,
                                      predefined_split)
        return loader

    return decorate


def check_dataset_params(name: str, params: dict) -> dict:
    """Validate a dataset reference before any work; return the full parameter dict
    (defaults filled in, so that spelling a default out names the same dataset)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}")
    return check_values(DATASETS[name].specs, params, f"dataset {name!r}")


_CACHE: OrderedDict = OrderedDict()


def clear_dataset_cache():
    """Forget the datasets loaded in this process (after their source files changed)."""
    _CACHE.clear()


def load_dataset(name: str, **params) -> Dataset:
    """Load a registered dataset with ``params`` overriding the loader's defaults (cached per
    process: the returned arrays are read-only)."""
    full = check_dataset_params(name, params)
    entry = DATASETS[name]
    key = (name, id(entry.loader), json.dumps(full, sort_keys=True))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    ds = _load(entry, full)
    _CACHE[key] = ds
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return ds


def _readonly(a):
    if a is None:
        return None
    a = np.asarray(a)
    a.flags.writeable = False
    return a


def _load(entry: DatasetEntry, full: dict) -> Dataset:
    name = entry.name
    ds = entry.loader(**full)
    X = np.asarray(ds.X)
    X = X[:, None] if X.ndim == 1 else X
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"dataset {name!r}: X must be (N, D) with N >= 1, got shape {X.shape}")
    X = FAMILIES[entry.family].prepare(X, name)
    d = X.shape[1]
    labels = None if ds.labels is None else np.asarray(ds.labels)
    if labels is not None and labels.shape != (len(X),):
        raise ValueError(f"dataset {name!r}: labels must have shape ({len(X)},), got "
                         f"{labels.shape}")
    split = _check_split(entry, ds.split, len(X))
    names = ds.feature_names or tuple(f"x{i + 1}" for i in range(d))
    units = ds.units or ("a.u.",) * d
    return Dataset(_readonly(X), _readonly(labels), ds.truth, tuple(names), tuple(units), name,
                   entry.family, full, split)


def _check_split(entry, split, n):
    if not entry.predefined_split:
        if split is not None:
            raise ValueError(f"dataset {entry.name!r} returns a split but was not registered "
                             "with predefined_split=True")
        return None
    if not isinstance(split, dict) or not {"train", "test"} <= set(split):
        raise ValueError(f"dataset {entry.name!r} (predefined_split=True) must return "
                         "Dataset.split with 'train' and 'test' row indices")
    unknown = set(split) - {"train", "test", "valid"}
    if unknown:
        raise ValueError(f"dataset {entry.name!r}: unknown split part(s) {sorted(unknown)}")
    out, seen = {}, np.zeros(n, dtype=bool)
    for part, idx in split.items():
        idx = np.asarray(idx, dtype=np.int64)
        if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= n)):
            raise ValueError(f"dataset {entry.name!r}: split {part!r} holds rows outside "
                             f"0..{n - 1}")
        if seen[idx].any() or len(np.unique(idx)) != len(idx):
            raise ValueError(f"dataset {entry.name!r}: split {part!r} overlaps another part")
        seen[idx] = True
        out[part] = _readonly(idx)
    if len(out["train"]) == 0:
        raise ValueError(f"dataset {entry.name!r}: the train split is empty")
    return out


def fingerprint(ds: Dataset) -> str:
    """16 hex digits of a hash of everything a fit reads from the dataset: X (dtype, shape,
    bytes), labels, truth and split."""
    h = hashlib.blake2b(digest_size=8)

    def add(a):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())

    add(ds.X)
    h.update(b"labels")
    if ds.labels is not None:
        add(ds.labels)
    h.update(b"truth")
    for k in sorted(ds.truth or {}):
        h.update(k.encode())
        add(np.asarray(ds.truth[k], dtype=float))
    h.update(b"split")
    for k in sorted(ds.split or {}):
        h.update(k.encode())
        add(ds.split[k])
    return h.hexdigest()
