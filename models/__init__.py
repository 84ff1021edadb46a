"""NumPyro models of em_reference's mixtures and fitting routines for any NumPyro model."""

import em_reference.config  # noqa: F401  (first: sets float64 before any JAX array exists)

from models.assignments import hard_assignments, responsibilities
from models.bernoulli_mixture import bernoulli_mixture
from models.evidence import EvidenceResult, log_evidence
from models.map_fit import fit_map
from models.gaussian_mixture import gaussian_mixture
from models.laplace_fit import fit_laplace
from models.local_evidence import (active_units, elbo_per_point, evidence_per_point,
                                   inference_gaps, iwae_per_point, local_variational_fit)
from models.minibatch_svi import fit_vi_minibatch
from models.networks import MLP, network
from models.nuts_fit import fit_nuts
from models.poisson_mixture import poisson_mixture
from models.result import FitError, FitResult
from models.vae import gmm_prior_vae, gmm_prior_vae_guide, vae, vae_guide
from models.vi_fit import fit_vi

__all__ = ["MLP", "EvidenceResult", "FitError", "FitResult", "active_units", "bernoulli_mixture",
           "elbo_per_point",
           "evidence_per_point", "fit_laplace", "fit_map", "fit_nuts", "fit_vi", "fit_vi_minibatch",
           "gaussian_mixture", "gmm_prior_vae", "gmm_prior_vae_guide", "hard_assignments",
           "inference_gaps", "iwae_per_point", "local_variational_fit", "log_evidence",
           "network", "poisson_mixture", "responsibilities", "vae", "vae_guide"]
