"""PoissonMixtureCAVI: variational Bayes for Poisson mixtures by coordinate ascent (CAVI)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from scipy import stats

from em_reference.cavi import families, poisson
from em_reference.cavi.base import MixtureCAVI
from em_reference.priors import PoissonMixturePrior
from em_reference.validation import check_counts


class PoissonMixtureCAVI(MixtureCAVI):
    """Poisson mixture fitted by mean-field variational Bayes, q(Z) q(pi) prod_kd q(lambda_kd).

    Prior (em_reference.PoissonMixturePrior, the object MAP-EM and the NumPyro model use):
    pi ~ Dirichlet(alpha0) (or DP sticks Beta(1, gamma) with
    weight_concentration_prior_type="dirichlet_process"), lambda_kd ~ Gamma(a0_d, rate b0_d);
    q(lambda_kd) = Gamma(rate_shape_kd, rate_rate_kd) (em_reference.cavi.poisson).

    Parameters: as GaussianMixtureCAVI (n_components, tol, max_iter, n_init, init_params,
    weight_concentration_prior_type, random_state), and prior : "default"
    (PoissonMixturePrior.default(X, K)) or a PoissonMixturePrior. X: (N,) or (N, D) counts.

    Fitted attributes: weight_concentration_ (as GaussianMixtureCAVI), weights_ (K,) = E_q[pi],
    rate_shape_, rate_rate_ (K, D), rates_ (K, D) = E_q[lambda] = shape / rate, lower_bound_
    (the full ELBO over (Z, pi, lambda), log x! included), lower_bounds_ (n_iter_ + 1,),
    n_iter_, converged_, prior_. Methods as GaussianMixtureCAVI's (score_samples: negative
    binomial components, the Poisson integrated over q(lambda)).
    """

    def __init__(self, n_components=1, *, tol=1e-3, max_iter=100, n_init=1,
                 init_params="kmeans", weight_concentration_prior_type="dirichlet_distribution",
                 prior="default", random_state=None):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.prior = prior
        self.random_state = random_state

    def _validate_family_params(self):
        pass

    def _validate_samples(self, X):
        return check_counts(X)

    def _family(self):
        return families.PoissonCAVIFamily()

    _prior_class = PoissonMixturePrior

    def _default_prior(self, X, w):
        return PoissonMixturePrior.default(X, self.n_components, w)

    def _data_center(self, X, w):
        return None  # counts stay counts

    def _store(self, q):
        self.rate_shape_ = np.asarray(q.shape)
        self.rate_rate_ = np.asarray(q.rate)
        self.rates_ = self.rate_shape_ / self.rate_rate_

    def _log_predictive_components(self, X):
        """(N, K): prod_d NegativeBinomial(x_d | a_kd, b_kd / (b_kd + 1)), the Poisson
        integrated over q(lambda_kd) = Gamma(a_kd, rate b_kd)."""
        a, b = self.rate_shape_, self.rate_rate_
        return np.sum(stats.nbinom.logpmf(X[:, None, :], a[None], (b / (b + 1.0))[None]),
                      axis=2)

    def _components(self):
        return poisson.GammaRates(jnp.asarray(self.rate_shape_), jnp.asarray(self.rate_rate_))
