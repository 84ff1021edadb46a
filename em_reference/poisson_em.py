"""PoissonMixtureEM: the scikit-learn-style estimator of the hand-written Poisson EM."""

from __future__ import annotations

import numpy as np

from em_reference.base import MixtureEM
from em_reference.poisson import PoissonFamily, PoissonParams
from em_reference.priors import PoissonMixturePrior
from em_reference.validation import check_counts, check_init_array, check_weights_init


class PoissonMixtureEM(MixtureEM):
    """Mixture of independent Poissons fitted by EM, MAP-EM (``prior``) or hard EM.

    X: counts (N,) or (N, D), non-negative integers. prior: None | "default" |
    PoissonMixturePrior (Dirichlet on weights, Gamma on rates). rates_init (K, D) (or (K,) for
    1-D counts), weights_init (K,): a start. The common parameters (tol, cert_tol, max_iter,
    acceleration, algorithm, ...) are em_reference.base.MixtureEM's. Fitted attributes:
    weights_ (K,), rates_ (K, D) and the common ones: lower_bound_ (total log-likelihood with
    the log x! terms, + log prior for MAP-EM), lower_bounds_, log_likelihood_, converged_,
    gradient_norm_, distance_to_optimum_, n_iter_, prior_.
    """

    def __init__(self, n_components=1, *, tol=1e-10, max_iter=10_000, n_init=1,
                 init_params="kmeans", weights_init=None, rates_init=None, prior=None,
                 assignment="soft", fixed_params=(), acceleration=None, cert_tol=None,
                 algorithm="auto", dtype="float64", random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.rates_init = rates_init
        self.prior = prior
        self.assignment = assignment
        self.fixed_params = fixed_params
        self.acceleration = acceleration
        self.cert_tol = cert_tol
        self.algorithm = algorithm
        self.dtype = dtype
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    def _validate_family_params(self):
        pass

    def _validate_samples(self, X):
        return check_counts(X)

    def _family(self):
        return PoissonFamily(tuple(self.fixed_params or ()))

    def _default_prior(self, X, w):
        return PoissonMixturePrior.default(X, self.n_components, w)

    def _user_init(self, d):
        k, user = self.n_components, {}
        if self.weights_init is not None:
            user["weights"] = check_weights_init(self.weights_init, k)
        if self.rates_init is not None:
            rates = np.asarray(self.rates_init, dtype=float)
            rates = rates.reshape(k, 1) if rates.shape == (k,) and d == 1 else rates
            user["rates"] = check_init_array("rates_init", rates, (k, d), positive=True)
        return user

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    def _store(self, params):
        self.weights_, self.rates_ = (np.asarray(p) for p in params)

    def _params(self):
        return PoissonParams(self.weights_, self.rates_)

    def _sample_component(self, rng, k, n):
        return rng.poisson(self.rates_[k], size=(n, self.rates_.shape[1])).astype(float)
