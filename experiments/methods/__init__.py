"""Methods: a registry mapping one problem spec to a ``models.FitResult`` (see registry.py)."""

from . import em_methods, numpyro_methods, sklearn_methods, vae_methods  # noqa: F401  (register built-ins)
from .registry import METHODS, MethodEntry, make_fit, register_method

__all__ = ["METHODS", "MethodEntry", "make_fit", "register_method"]
