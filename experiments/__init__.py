"""experiments: the comparison suite (datasets, runner, result store, figures, report, CLI).

Entry points: ``python -m experiments run|report|list``; in Python, ``run_grid`` and
``write_report``. Registries: ``register_dataset``, ``register_method``, ``register_model``.
"""

import em_reference.config  # noqa: F401, I001  (first: the one place jax_enable_x64 is set)

from .cells import Cell
from .datasets import DATASETS, Dataset, load_dataset, register_dataset
from .models_registry import MODELS, register_model

__all__ = ["Cell", "DATASETS", "Dataset", "load_dataset", "register_dataset", "MODELS",
           "register_model"]
