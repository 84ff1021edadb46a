"""GaussianMixtureEM: the scikit-learn-style estimator of the hand-written Gaussian EM."""

from __future__ import annotations

import jax
import numpy as np

from em_reference.base import MixtureEM
from em_reference.gaussian import (GaussianFamily, GaussianParams, covariance_shape,
                                   precisions_cholesky)
from em_reference.priors import COVARIANCE_TYPES, GaussianMixturePrior
from em_reference.validation import (check_choice, check_float, check_init_array,
                                     check_weights_init)


_precisions_cholesky = jax.jit(precisions_cholesky, static_argnames="covariance_type")


class GaussianMixtureEM(MixtureEM):
    """Gaussian mixture fitted by EM (MLE), MAP-EM (``prior``) or hard/classification EM.

    Parameters follow sklearn.mixture.GaussianMixture; tol, cert_tol, max_iter, n_init,
    init_params, prior, assignment, fixed_params, acceleration, algorithm, dtype and
    random_state are the common ones of em_reference.base.MixtureEM (read there: tol is not
    scikit-learn's). Gaussian-specific:
    covariance_type : "full" | "tied" | "diag" | "spherical".
    reg_covar : r >= 0 (default 1e-6), added to every covariance's diagonal by the M-step, as
        in scikit-learn. EM's objective counts it (GaussianFamily.log_regulariser): each
        component's log density inside EM is penalised by r tr(Sigma_k^-1) / 2, which makes
        Sigma_k = C_k / N_k + r I the exact maximiser, so lower_bound_ never decreases;
        lower_bound_ is then sum_n log sum_k pi_k N(x_n | mu_k, Sigma_k)
        exp(-r tr(Sigma_k^-1) / 2) (+ log prior), a lower bound on the log-likelihood
        (log_likelihood_ is the log-likelihood itself). With a prior the same term adds
        r N_k I to the MAP update's scatter. reg_covar=0 gives plain (MAP-)EM.
    prior : None | "default" | GaussianMixturePrior. "default":
        GaussianMixturePrior.default(X, K, covariance_type) (Fraley & Raftery 2007).
    weights_init (K,), means_init (K, D), precisions_init (scikit-learn's shapes): a start.
    fixed_params : among ("weights", "means", "covariances"). Hard EM with
        covariance_type="spherical", equal initial weights and variances and
        fixed_params=("weights", "covariances") is k-means.

    Fitted attributes: weights_ (K,), means_ (K, D), covariances_ and precisions_cholesky_
    (full (K, D, D), tied (D, D), diag (K, D), spherical (K,)), precisions_, and the common
    ones (MixtureEM): lower_bound_, lower_bounds_, log_likelihood_, converged_,
    gradient_norm_, distance_to_optimum_, n_iter_, prior_.
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-10, reg_covar=1e-6,
                 max_iter=10_000, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, prior=None, assignment="soft",
                 fixed_params=(), acceleration=None, cert_tol=None, algorithm="auto",
                 dtype="float64", random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
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
        check_choice("covariance_type", self.covariance_type, COVARIANCE_TYPES)
        check_float("reg_covar", self.reg_covar, 0.0)

    def _validate_samples(self, X):
        return X

    def _family(self):
        return GaussianFamily(self.covariance_type, float(self.reg_covar),
                              tuple(self.fixed_params or ()))

    def _default_prior(self, X, w):
        return GaussianMixturePrior.default(X, self.n_components, self.covariance_type, w)

    def _validate_prior(self, prior, n_features, n_components):
        if prior.covariance_type != self.covariance_type:
            raise ValueError(f"prior is for covariance_type={prior.covariance_type!r} "
                             f"but the estimator has {self.covariance_type!r}")
        return prior.validate(n_features, n_components)

    def _user_init(self, d):
        k, user = self.n_components, {}
        if self.weights_init is not None:
            user["weights"] = check_weights_init(self.weights_init, k)
        if self.means_init is not None:
            user["means"] = check_init_array("means_init", self.means_init, (k, d))
        if self.precisions_init is not None:
            prec = check_init_array("precisions_init", self.precisions_init,
                                    covariance_shape(self.covariance_type, k, d))
            if self.covariance_type in ("full", "tied"):
                if np.any(np.linalg.eigvalsh(prec) <= 0):
                    raise ValueError("precisions_init must be symmetric positive definite")
                user["covariances"] = np.linalg.inv(prec)
            elif np.any(prec <= 0):
                raise ValueError("precisions_init must be > 0")
            else:
                user["covariances"] = 1.0 / prec
        return user

    def _store(self, params):
        self.weights_, self.means_, self.covariances_ = (np.asarray(p) for p in params)
        self.precisions_cholesky_ = np.asarray(
            _precisions_cholesky(params.covariances, covariance_type=self.covariance_type))
        if self.covariance_type in ("full", "tied"):
            pc = self.precisions_cholesky_
            self.precisions_ = pc @ np.swapaxes(pc, -1, -2)
        else:
            self.precisions_ = self.precisions_cholesky_**2

    def _params(self):
        return GaussianParams(self.weights_, self.means_, self.covariances_)

    def _sample_component(self, rng, k, n):
        mean, cov = self.means_[k], self.covariances_
        if self.covariance_type == "full":
            return rng.multivariate_normal(mean, cov[k], n)
        if self.covariance_type == "tied":
            return rng.multivariate_normal(mean, cov, n)
        scale = np.sqrt(cov[k])
        return mean + rng.standard_normal((n, len(mean))) * scale
