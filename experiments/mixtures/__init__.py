"""The built-in mixture models, each registered in its own file through ``register_model``
(the same public decorator a user calls): gaussian.py, poisson.py, bernoulli.py."""

from . import bernoulli, gaussian, poisson  # noqa: F401  (register the built-in models)
from .common import kmeans_labels, override_prior, precisions_from_covariances
from .gaussian import gaussian_init
from .poisson import poisson_init

__all__ = ["gaussian_init", "kmeans_labels", "override_prior", "poisson_init",
           "precisions_from_covariances"]
