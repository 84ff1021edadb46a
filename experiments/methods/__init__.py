"""Methods: a registry mapping one problem spec to a ``models.FitResult`` (see registry.py)."""

# register the built-ins
from . import (em_methods, kmeans_methods, numpyro_methods, sklearn_methods,  # noqa: F401
               vae_methods, vb_methods)
from .registry import METHODS, MethodEntry, make_fit, register_method

__all__ = ["METHODS", "MethodEntry", "make_fit", "register_method"]
