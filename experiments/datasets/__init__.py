"""Datasets: a registry of synthetic and real data, each with description and provenance."""

from . import real, synthetic  # noqa: F401  (register the built-in datasets)
from .registry import (
    DATASETS,
    Dataset,
    DatasetEntry,
    check_dataset_params,
    load_dataset,
    register_dataset,
)

__all__ = ["DATASETS", "Dataset", "DatasetEntry", "check_dataset_params", "load_dataset",
           "register_dataset"]
