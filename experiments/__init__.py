"""experiments: the comparison suite (datasets, runner, result store, figures, report, CLI).

Entry points: ``python -m experiments run|report|list``; in Python, ``run_grid`` and
``write_report``. Registries: ``register_dataset``, ``register_family``, ``register_method``,
``register_model``.
"""

import em_reference.config  # noqa: F401, I001  (first: the one place jax_enable_x64 is set)

from .cells import Cell
from .datasets import DATASETS, FAMILIES, Dataset, load_dataset, register_dataset, register_family
from .models_registry import MODELS, ModelEntry, register_model
from . import mixtures  # noqa: F401  (registers the built-in models)
from . import local_latent  # noqa: F401  (registers the VAEs)

__all__ = ["Cell", "DATASETS", "Dataset", "FAMILIES", "MODELS", "ModelEntry", "load_dataset",
           "register_dataset", "register_family", "register_model"]
