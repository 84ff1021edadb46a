"""em_reference: hand-written EM for Gaussian and Poisson mixtures, in pure JAX.

The textbook path (``textbook``: log joint, responsibilities, M-step, objective) and the fast
exponential-family kernel (``fast``), proven equal, under one loop (``loop``) and
scikit-learn-style estimators (``base``). A family (``gaussian``, ``poisson``) implements
the contract ``family.MixtureFamily``. Knows nothing of NumPyro.
"""

from em_reference import config  # noqa: F401  (sets jax_enable_x64 first)
from em_reference.elbo import elbo_em, kl_to_posterior, log_marginal, posterior_responsibilities
from em_reference.family import MixtureFamily
from em_reference.gaussian import GaussianFamily, GaussianParams
from em_reference.gaussian_em import GaussianMixtureEM
from em_reference.poisson import PoissonFamily, PoissonParams
from em_reference.poisson_em import PoissonMixtureEM
from em_reference.priors import GaussianMixturePrior, PoissonMixturePrior, resolve_prior

__all__ = [
    "GaussianMixtureEM", "PoissonMixtureEM", "GaussianMixturePrior", "PoissonMixturePrior",
    "GaussianParams", "PoissonParams", "GaussianFamily", "PoissonFamily", "MixtureFamily",
    "elbo_em", "kl_to_posterior", "log_marginal", "posterior_responsibilities",
    "resolve_prior",
]
