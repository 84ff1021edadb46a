"""BernoulliMixtureEM: the scikit-learn-style estimator of the hand-written Bernoulli EM."""

from __future__ import annotations

import numpy as np

from em_reference.base import MixtureEM
from em_reference.bernoulli import BernoulliFamily, BernoulliParams
from em_reference.priors import BernoulliMixturePrior
from em_reference.validation import check_binary, check_init_array, check_weights_init


class BernoulliMixtureEM(MixtureEM):
    """Mixture of independent Bernoullis (binary data, e.g. D pixels) fitted by EM,
    MAP-EM (``prior``) or hard EM.

    X: (N, D) or (N,) of 0/1 (booleans or floats holding 0 and 1). prior: None | "default" |
    BernoulliMixturePrior (Dirichlet on weights, Beta(a_d, b_d) on every probability; MAP-EM
    is EM with the prior as regulariser: p_kd = (S_kd + a_d - 1) / (N_k + a_d + b_d - 2)).
    The maximum-likelihood probabilities are kept in [MIN_PROB, 1 - MIN_PROB]
    (em_reference.bernoulli.MIN_PROB = 1e-10): a pixel a component never saw on would
    otherwise make every later image with that pixel on impossible (log-likelihood -inf).
    probs_init (K, D) in (0, 1), weights_init (K,): a start. The common parameters (tol,
    cert_tol, max_iter, acceleration, algorithm, ...) are em_reference.base.MixtureEM's.
    Fitted attributes: weights_ (K,), probs_ (K, D) and the common ones: lower_bound_ (total
    log-likelihood, + log prior for MAP-EM), lower_bounds_, log_likelihood_, converged_,
    gradient_norm_, distance_to_optimum_, n_iter_, prior_.
    """

    def __init__(self, n_components=1, *, tol=1e-10, max_iter=10_000, n_init=1,
                 init_params="kmeans", weights_init=None, probs_init=None, prior=None,
                 assignment="soft", fixed_params=(), acceleration=None, cert_tol=None,
                 algorithm="auto", dtype="float64", random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.probs_init = probs_init
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
        return check_binary(X)

    def _family(self):
        return BernoulliFamily(tuple(self.fixed_params or ()))

    def _default_prior(self, X, w):
        return BernoulliMixturePrior.default(X, self.n_components, w)

    def _user_init(self, d):
        k, user = self.n_components, {}
        if self.weights_init is not None:
            user["weights"] = check_weights_init(self.weights_init, k)
        if self.probs_init is not None:
            probs = np.asarray(self.probs_init, dtype=float)
            probs = probs.reshape(k, 1) if probs.shape == (k,) and d == 1 else probs
            probs = check_init_array("probs_init", probs, (k, d), positive=True)
            if np.any(probs >= 1):
                raise ValueError("probs_init must lie strictly between 0 and 1")
            user["probs"] = probs
        return user

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    def _store(self, params):
        self.weights_, self.probs_ = (np.asarray(p) for p in params)

    def _params(self):
        return BernoulliParams(self.weights_, self.probs_)

    def _sample_component(self, rng, k, n):
        return (rng.uniform(size=(n, self.probs_.shape[1])) < self.probs_[k]).astype(float)
