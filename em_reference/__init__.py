"""em_reference: hand-written EM for Gaussian, Poisson and Bernoulli mixtures, in pure JAX.

The textbook path (``textbook``: log joint, responsibilities, M-step, objective) and the fast
exponential-family kernel (``fast``), proven equal, under one loop (``loop``) and
scikit-learn-style estimators (``base``). A family (``gaussian``, ``poisson``, ``bernoulli``)
implements the contract ``family.MixtureFamily``. Knows nothing of NumPyro.
"""

from em_reference import config  # noqa: F401  (sets jax_enable_x64 first)
from em_reference.base import IllDefinedFitError
from em_reference.bernoulli import BernoulliFamily, BernoulliParams
from em_reference.bernoulli_em import BernoulliMixtureEM
from em_reference.elbo import elbo_em, kl_to_posterior, log_marginal, posterior_responsibilities
from em_reference.family import MixtureFamily
from em_reference.gaussian import GaussianFamily, GaussianParams
from em_reference.gaussian_em import GaussianMixtureEM
from em_reference.poisson import PoissonFamily, PoissonParams
from em_reference.poisson_em import PoissonMixtureEM
from em_reference.priors import (BernoulliMixturePrior, GaussianMixturePrior, PoissonMixturePrior,
                                 resolve_prior)
from em_reference.cavi import BernoulliMixtureCAVI, GaussianMixtureCAVI, PoissonMixtureCAVI

__all__ = [
    "GaussianMixtureEM", "PoissonMixtureEM", "BernoulliMixtureEM", "GaussianMixturePrior",
    "PoissonMixturePrior", "BernoulliMixturePrior", "GaussianParams", "PoissonParams",
    "BernoulliParams", "GaussianFamily", "PoissonFamily", "BernoulliFamily", "MixtureFamily",
    "elbo_em", "kl_to_posterior", "log_marginal", "posterior_responsibilities",
    "resolve_prior", "GaussianMixtureCAVI", "PoissonMixtureCAVI", "BernoulliMixtureCAVI",
    "IllDefinedFitError",
]
