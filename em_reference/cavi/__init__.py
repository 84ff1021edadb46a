"""Variational Bayes for the mixtures by coordinate ascent (CAVI), hand-written like the EM.

Functional core: ``distributions`` (expectations, normalisers, KLs of the conjugate factors),
``weights`` (q(pi): Dirichlet or Dirichlet-process sticks), ``gaussian`` (Normal-Wishart
components), ``poisson`` (Gamma rates), ``bernoulli`` (Beta pixel probabilities), ``loop``
(E-step, M-step, the full ELBO, the jitted loop); scikit-learn-style estimators on top.
"""

from em_reference import config  # noqa: F401  (sets jax_enable_x64 first)
from em_reference.cavi.bernoulli_mixture import BernoulliMixtureCAVI
from em_reference.cavi.gaussian_mixture import GaussianMixtureCAVI, sklearn_lower_bound_offset
from em_reference.cavi.poisson_mixture import PoissonMixtureCAVI

__all__ = ["BernoulliMixtureCAVI", "GaussianMixtureCAVI", "PoissonMixtureCAVI",
           "sklearn_lower_bound_offset"]
