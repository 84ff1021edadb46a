"""Datasets: a registry of synthetic and real data, each with description and provenance,
and the registry of data families (the kinds of values: gaussian, poisson, bernoulli)."""

from . import binary, real, synthetic  # noqa: F401  (register the built-in datasets)
from .families import FAMILIES, DataFamily, register_family
from .registry import (
    DATASETS,
    Dataset,
    DatasetEntry,
    check_dataset_params,
    clear_dataset_cache,
    fingerprint,
    load_dataset,
    register_dataset,
)

__all__ = ["DATASETS", "FAMILIES", "DataFamily", "Dataset", "DatasetEntry",
           "check_dataset_params", "clear_dataset_cache", "fingerprint", "load_dataset",
           "register_dataset", "register_family"]
