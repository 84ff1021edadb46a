"""Scikit-learn-style estimator shell around the CAVI loop, shared by the mixture families.

A family subclass supplies:

_family()                    hashable family object (families.py: Gaussian, Poisson, Bernoulli)
_validate_family_params()    extra hyper-parameter checks
_validate_samples(X)         extra data checks (X already (N, D) float64)
_prior_class                 the family's prior class (em_reference.priors)
_default_prior(X, w)         its data-dependent default, for prior="default"
_check_prior(prior)          optional: a given prior's fit to the estimator (e.g. covariance type)
_data_center(X, w)           None, or a point (D,) the loop works relative to (precision)
_translate(prior | q, v)     the same object with its locations moved by v
_store(components)           fitted attributes of q(theta)
_components()                q(theta) from the fitted attributes
_log_predictive_components(X) (N, K): log of each component's posterior predictive density
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from em_reference import config
from em_reference.cavi import loop
from em_reference.cavi import weights as weights_lib
from em_reference.initialization import INIT_METHODS, initial_responsibilities
from em_reference.validation import (as_2d_samples, check_choice, check_float, check_int,
                                     check_sample_weight)

# warnings point at the user's call: _fit <- one_blas_thread's wrapper (contextlib) <- fit
WARN_AT_CALLER = 4

_log_responsibilities = jax.jit(loop.log_responsibilities, static_argnames=("family", "kind"))
_elbo = jax.jit(loop.elbo, static_argnames=("family", "kind"))


class MixtureCAVI(DensityMixin, BaseEstimator):
    """Shared fit / predict logic of the CAVI estimators (see the family subclasses)."""

    # ------------------------------------------------------------------ validation
    def _validate_common_params(self):
        check_int("n_components", self.n_components, 1)
        check_float("tol", self.tol, 0.0)
        check_int("max_iter", self.max_iter, 0)
        check_int("n_init", self.n_init, 1)
        check_choice("init_params", self.init_params, INIT_METHODS)
        check_choice("weight_concentration_prior_type", self.weight_concentration_prior_type,
                     weights_lib.WEIGHT_PRIOR_TYPES)
        self._validate_family_params()

    def _check_prior(self, prior):
        return prior

    def _resolve_prior(self, X, w):
        """The validated prior: "default" or an instance of the family's prior class (variational
        Bayes has no prior-free form, so None is refused)."""
        if isinstance(self.prior, str) and self.prior == "default":
            prior = self._default_prior(X, w)
        elif isinstance(self.prior, self._prior_class):
            prior = self._check_prior(self.prior)
        else:
            raise ValueError(f"prior must be 'default' or a {self._prior_class.__name__} "
                             f"(variational Bayes needs a prior), got {self.prior!r}")
        return prior.validate(X.shape[1], self.n_components)

    def _check_weight_prior(self, prior):
        """The DP's concentration gamma is one number (every stick is Beta(1, gamma))."""
        alpha = np.asarray(prior.weight_concentration, dtype=float)
        if (self.weight_concentration_prior_type == "dirichlet_process" and alpha.ndim == 1
                and not np.all(alpha == alpha[0])):
            raise ValueError("weight_concentration_prior_type='dirichlet_process' needs one "
                             "concentration gamma (a scalar weight_concentration), got "
                             f"{alpha}")
        return prior

    def _validate_X(self, X, reset):
        return self._validate_samples(as_2d_samples(self, X, reset))

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None):
        """Fit q(Z) q(pi) q(theta) by CAVI, keeping the best ELBO of n_init restarts (run in
        parallel). X: (N, D) or (N,); sample_weight: (N,) non-negative frequency weights (a
        row of weight 3 counts as three identical rows)."""
        return self._fit(X, sample_weight)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the labels (N,) of X (argmax of the final responsibilities)."""
        return self._fit(X, sample_weight).predict(X)

    @config.one_blas_thread()
    def _fit(self, X, sample_weight):
        self._validate_common_params()
        X = self._validate_X(X, reset=True)
        w = check_sample_weight(sample_weight, X.shape[0])
        if np.count_nonzero(w) < self.n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {np.count_nonzero(w)}")
        self.prior_ = self._check_weight_prior(self._resolve_prior(X, w))
        family, kind = self._family(), self.weight_concentration_prior_type
        # the loop runs on data relative to their mean (the fast kernel's raw moments lose
        # digits far from the origin); the ELBO is unchanged when data and prior move together
        center = self._data_center(X, w)
        prior = self.prior_ if center is None else self._translate(self.prior_, -center)
        Xd = jnp.asarray(X if center is None else X - center)
        wd = jnp.asarray(w)
        rng = check_random_state(self.random_state)
        starts = []
        for _ in range(self.n_init):
            # initial responsibilities (k-means, seed points) do not depend on the origin
            resp = initial_responsibilities(X, self.n_components, self.init_params, rng, w)
            starts.append(loop.init_from_responsibilities(
                Xd, wd, jnp.asarray(resp), prior, family=family, kind=kind))
        q0 = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[s[0] for s in starts])
        elbo0 = jnp.stack([s[1] for s in starts])
        state = jax.device_get(loop.fit_cavi(
            q0, elbo0, Xd, wd, prior, jnp.asarray(self.tol), family=family, kind=kind,
            max_iter=self.max_iter, fast=family.has_fast_path))

        finals = np.asarray(state.elbo)
        if not np.any(np.isfinite(finals)):
            raise FloatingPointError("CAVI's ELBO is not finite in any restart: the data or "
                                     "the prior are degenerate")
        best = int(np.nanargmax(np.where(np.isfinite(finals), finals, -np.inf)))
        q = jax.tree.map(lambda leaf: np.asarray(leaf[best], np.float64), state.q)
        self._store_weights(q.weights)
        self._store(q.components if center is None else self._translate(q.components, center))
        self.n_iter_ = int(state.n_iter[best])
        self.converged_ = bool(state.converged[best])
        self.lower_bounds_ = np.asarray(state.trace[best, : self.n_iter_ + 1], np.float64)
        self.lower_bound_ = float(finals[best])
        if bool(state.failed[best]):
            warnings.warn(f"CAVI stopped after iteration {self.n_iter_}: the next update was "
                          "not finite; the last finite factors are kept.", RuntimeWarning,
                          stacklevel=WARN_AT_CALLER)
        elif not self.converged_ and self.max_iter > 0:
            warnings.warn(f"CAVI did not converge in max_iter={self.max_iter} iterations "
                          f"(tol={self.tol}); increase max_iter or tol.", ConvergenceWarning,
                          stacklevel=WARN_AT_CALLER)
        return self

    def _store_weights(self, concentration):
        kind = self.weight_concentration_prior_type
        self.weights_ = np.asarray(weights_lib.mean_weights(jnp.asarray(concentration), kind))
        # scikit-learn's layout: (K,) for the Dirichlet, a tuple (a, b) of (K,) for the sticks
        self.weight_concentration_ = (concentration if kind == "dirichlet_distribution"
                                      else (concentration[0], concentration[1]))

    def _variational(self):
        check_is_fitted(self)
        return loop.Variational(jnp.asarray(np.asarray(self.weight_concentration_)),
                                self._components())

    # ------------------------------------------------------------------ inference
    def _log_resp(self, X):
        X = self._validate_X(X, reset=False)
        return _log_responsibilities(jnp.asarray(X), self._variational(), family=self._family(),
                                     kind=self.weight_concentration_prior_type)

    def predict_proba(self, X):
        """Responsibilities q(z_n = k) of the E-step at the fitted q(pi, theta): (N, K)."""
        return np.exp(np.asarray(self._log_resp(X)))

    def predict(self, X):
        """Most probable component per sample: (N,) int."""
        return np.argmax(np.asarray(self._log_resp(X)), axis=1)

    def score_samples(self, X):
        """log of the posterior predictive density under q, log sum_k E_q[pi_k] p(x | k, q),
        per sample (N,): each component's predictive integrates its parameters over q
        (Student-t for the Gaussian components, Bishop 10.81; negative binomial for Poisson).
        With the DP the weights are E_q[pi] renormalised over the K components."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        log_comp = self._log_predictive_components(X) + np.log(self.weights_)[None, :]
        return logsumexp(log_comp, axis=1)

    def score(self, X, y=None, sample_weight=None):
        """Mean log posterior predictive density per sample (weighted mean with
        sample_weight)."""
        per_sample = self.score_samples(X)
        return float(np.average(per_sample, weights=check_sample_weight(sample_weight,
                                                                          len(per_sample))))

    def elbo_vi(self, X, resp=None, sample_weight=None):
        """The full ELBO over (Z, pi, theta) at the fitted q(pi, theta) and q(Z) = resp (N, K),
        by default the E-step's responsibilities (then >= lower_bound_, which is evaluated at
        the responsibilities that produced the fitted factors)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        w = check_sample_weight(sample_weight, X.shape[0])
        q, family = self._variational(), self._family()
        kind = self.weight_concentration_prior_type
        if resp is None:
            resp = jnp.exp(_log_responsibilities(jnp.asarray(X), q, family=family, kind=kind))
        else:
            resp = np.asarray(resp, dtype=np.float64)
            if resp.shape != (X.shape[0], self.n_components):
                raise ValueError(f"resp must have shape {(X.shape[0], self.n_components)}, "
                                 f"got {resp.shape}")
            if np.any(resp < 0) or not np.allclose(resp.sum(axis=1), 1.0):
                raise ValueError("resp must be non-negative with rows summing to 1")
        return float(_elbo(jnp.asarray(X), jnp.asarray(w), jnp.asarray(resp), q, self.prior_,
                           family=family, kind=kind))
