"""em_reference: hand-written EM for Gaussian and Poisson mixtures, in pure JAX.

Functional core (``gaussian``, ``poisson``, ``loop``, ``elbo``, ``priors``) under
scikit-learn-style estimators. Knows nothing of NumPyro.
"""

from em_reference import config  # noqa: F401  (sets jax_enable_x64 first)
from em_reference.elbo import elbo_em, kl_to_posterior, log_marginal, posterior_responsibilities
from em_reference.gaussian import GaussianParams
from em_reference.gaussian_em import GaussianMixtureEM
from em_reference.poisson import PoissonParams
from em_reference.poisson_em import PoissonMixtureEM
from em_reference.priors import GaussianMixturePrior, PoissonMixturePrior
from em_reference.cavi import GaussianMixtureCAVI, PoissonMixtureCAVI

__all__ = [
    "GaussianMixtureEM", "PoissonMixtureEM", "GaussianMixturePrior", "PoissonMixturePrior",
    "GaussianParams", "PoissonParams", "elbo_em", "kl_to_posterior", "log_marginal",
    "posterior_responsibilities",
]
__all__ += ["GaussianMixtureCAVI", "PoissonMixtureCAVI"]
