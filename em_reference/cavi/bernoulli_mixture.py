"""BernoulliMixtureCAVI: variational Bayes for Bernoulli mixtures by coordinate ascent (CAVI)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from em_reference.cavi import bernoulli, families
from em_reference.cavi.base import MixtureCAVI
from em_reference.priors import BernoulliMixturePrior
from em_reference.validation import check_binary


class BernoulliMixtureCAVI(MixtureCAVI):
    """Bernoulli mixture fitted by mean-field variational Bayes, q(Z) q(pi) prod_kd q(p_kd).

    Prior (em_reference.BernoulliMixturePrior, the object MAP-EM and the NumPyro model use):
    pi ~ Dirichlet(alpha0) (or DP sticks Beta(1, gamma) with
    weight_concentration_prior_type="dirichlet_process"), p_kd ~ Beta(a0_d, b0_d);
    q(p_kd) = Beta(probs_concentration1_kd, probs_concentration0_kd)
    (em_reference.cavi.bernoulli). Unlike the maximum-likelihood EM, no probability needs a
    floor: every factor's mean lies strictly inside (0, 1).

    Parameters: as GaussianMixtureCAVI (n_components, tol, max_iter, n_init, init_params,
    weight_concentration_prior_type, random_state), and prior : "default"
    (BernoulliMixturePrior.default(X, K)) or a BernoulliMixturePrior. X: (N,) or (N, D) of 0/1.

    Fitted attributes: weight_concentration_ (as GaussianMixtureCAVI), weights_ (K,) = E_q[pi],
    probs_concentration1_, probs_concentration0_ (K, D), probs_ (K, D) = E_q[p] = a / (a + b),
    lower_bound_ (the full ELBO over (Z, pi, p)), lower_bounds_ (n_iter_ + 1,), n_iter_,
    converged_, prior_. Methods as GaussianMixtureCAVI's (score_samples: each component's
    predictive is Bernoulli(E_q[p_kd]) per pixel, the Bernoulli integrated over q(p_kd)).
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
        return check_binary(X)

    def _family(self):
        return families.BernoulliCAVIFamily()

    _prior_class = BernoulliMixturePrior

    def _default_prior(self, X, w):
        return BernoulliMixturePrior.default(X, self.n_components, w)

    def _data_center(self, X, w):
        return None  # pixels stay 0/1

    def _store(self, q):
        self.probs_concentration1_ = np.asarray(q.concentration1)
        self.probs_concentration0_ = np.asarray(q.concentration0)
        self.probs_ = self.probs_concentration1_ / (self.probs_concentration1_
                                                    + self.probs_concentration0_)

    def _log_predictive_components(self, X):
        """(N, K): sum_d log Bern(x_d | a_kd / (a_kd + b_kd)), the Bernoulli integrated over
        q(p_kd) = Beta(a_kd, b_kd) (pixels independent given the component, and so are
        their factors)."""
        p = self.probs_
        return X @ np.log(p).T + (1.0 - X) @ np.log1p(-p).T

    def _components(self):
        return bernoulli.BetaProbs(jnp.asarray(self.probs_concentration1_),
                                   jnp.asarray(self.probs_concentration0_))
