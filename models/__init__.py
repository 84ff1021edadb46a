"""NumPyro models of em_reference's mixtures and fitting routines for any NumPyro model."""

import em_reference.config  # noqa: F401  (first: sets float64 before any JAX array exists)

from models.assignments import hard_assignments, responsibilities
from models.bernoulli_mixture import bernoulli_mixture
from models.map_fit import fit_map
from models.gaussian_mixture import gaussian_mixture
from models.nuts_fit import fit_nuts
from models.poisson_mixture import poisson_mixture
from models.result import FitError, FitResult
from models.vi_fit import fit_vi

__all__ = ["FitError", "FitResult", "fit_map", "fit_nuts", "fit_vi", "gaussian_mixture",
           "hard_assignments", "poisson_mixture", "responsibilities"]
