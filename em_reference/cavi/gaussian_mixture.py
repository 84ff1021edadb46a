"""GaussianMixtureCAVI: variational Bayes for Gaussian mixtures by coordinate ascent (CAVI)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from scipy import stats
from scipy.special import gammaln, multigammaln

from em_reference.cavi import families, gaussian
from em_reference.cavi.base import MixtureCAVI
from em_reference.gaussian import GaussianFamily
from em_reference.priors import COVARIANCE_TYPES, GaussianMixturePrior
from em_reference.validation import check_choice


class GaussianMixtureCAVI(MixtureCAVI):
    """Gaussian mixture fitted by mean-field variational Bayes, q(Z) q(pi) prod_k q(mu_k, Lambda_k)
    (Bishop PRML 10.2; Blei & Jordan 2006 for the Dirichlet process).

    Parameters follow sklearn.mixture.BayesianGaussianMixture where they exist:
    n_components, covariance_type ("full" | "tied" | "diag" | "spherical"), tol, max_iter
    (0 is allowed: the initial M-step only), n_init, init_params ("kmeans" | "k-means++" |
    "random" | "random_from_data"; "random" and "random_from_data" draw exactly scikit-learn's
    initial responsibilities for the same random_state), weight_concentration_prior_type
    ("dirichlet_distribution" | "dirichlet_process"), random_state; and
    prior : "default" (GaussianMixturePrior.default(X, K, covariance_type), Fraley & Raftery
        2007) or an em_reference.GaussianMixturePrior, the object MAP-EM and the NumPyro models
        use (em_reference/priors.py). Its weight_concentration is the Dirichlet's alpha0, or the
        DP's concentration gamma (sticks v_k ~ Beta(1, gamma)), as scikit-learn's
        weight_concentration_prior.

    The prior, mapped onto the Normal-Wishart / Normal-Gamma factors (em_reference.cavi.gaussian)::

        full / tied   Sigma ~ InverseWishart(nu0, Psi0)  <=>  Lambda ~ Wishart(nu0, Psi0^-1)
                      mean | Sigma ~ N(m0, Sigma/kappa0)  =   N(m0, (kappa0 Lambda)^-1)
        diag          var_kd ~ InverseGamma(nu0/2, Psi0_d/2)  <=>  lambda_kd ~ Gamma(nu0/2,
                      rate Psi0_d/2); mean_kd | var_kd ~ N(m0_d, var_kd/kappa0)
        spherical     var_k ~ InverseGamma(nu0/2, Psi0/2)  <=>  lambda_k ~ Gamma(nu0/2,
                      rate Psi0/2); mean_k | var_k ~ N(m0, var_k/kappa0 I)

    with (m0, kappa0, nu0, Psi0) = (mean_prior, mean_precision, degrees_of_freedom,
    covariance_prior): scikit-learn's mean_prior, mean_precision_prior,
    degrees_of_freedom_prior and covariance_prior mean the same.

    Fitted attributes (scikit-learn's names and shapes):
    weight_concentration_   (K,) Dirichlet alpha_k, or a tuple (a (K,), b (K,)) of the sticks'
                            Beta parameters
    weights_ (K,)           E_q[pi] (renormalised over the K components for the DP)
    mean_precision_ (K,)    kappa_k;   means_ (K, D): m_k
    degrees_of_freedom_     nu_k (K,), one number for tied (for spherical nu0 + D N_k)
    covariances_            Psi_k / nu_k = E_q[Lambda_k]^-1: full (K, D, D), tied (D, D),
                            diag (K, D), spherical (K,)
    precisions_             E_q[Lambda_k] (same shapes); precisions_cholesky_ its Cholesky
                            factor (upper triangular for full / tied, sqrt for diag / spherical)
    lower_bound_            the full ELBO over (Z, pi, mu, Lambda) at the returned factors and
                            the responsibilities that produced them: E_q[log p(X, Z, pi, mu,
                            Lambda)] - E_q[log q], every constant kept, a lower bound on log p(X)
    lower_bounds_           (n_iter_ + 1,): that ELBO at the start and after every iteration
                            (non-decreasing; scikit-learn's lower_bounds_ omits the start)
    n_iter_, converged_     iterations run; the ELBO changed by less than tol per unit of
                            sample weight (scikit-learn: tol on the change of its total bound)
    prior_                  the resolved GaussianMixturePrior

    Methods: predict_proba(X) (the E-step's q(z_n = k) at the fitted factors), predict(X),
    score_samples(X) (log posterior predictive density under q: Student-t components, Bishop
    10.81), score(X), elbo_vi(X, resp=None, sample_weight=None) (the full ELBO at the fitted
    q(pi, theta) and any q(Z)).

    The constants scikit-learn's lower_bound_ omits: for the same data, prior and factors,
    lower_bound_ - scikit-learn's lower_bound_ = ``sklearn_lower_bound_offset(prior_, N, K,
    weight_concentration_prior_type)`` =

        - N D/2 log(2 pi)                                     Gaussian normalisers
        + K D/2 log kappa0                                    the means' prior normalisers
        + K [nu0/2 log|Psi0| - nu0 D/2 log 2 - log Gamma_D(nu0/2) + D(D-1)/4 log pi]
                                                              the prior Wisharts' normalisers,
                                                              and the pi^(D(D-1)/4) of Gamma_D
                                                              that its posterior normalisers drop
        + log Gamma(K alpha0) - K log Gamma(alpha0)           Dirichlet prior normaliser, or
        + K log gamma                                         the K sticks' Beta(1, gamma) ones

    (N the total sample weight). scikit-learn's bound is the ELBO after the conjugate M-step,
    where it reduces to H(q(Z)) minus the log normalisers of the posterior factors plus the
    prior's (the terms above): the difference is exact wherever both solve the same model:
    "full", "tied" with K = 1, "diag" and "spherical" with D = 1 (em_reference.cavi.gaussian
    says how scikit-learn's other three types differ from the prior's model).
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, max_iter=100,
                 n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_distribution", prior="default",
                 random_state=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.prior = prior
        self.random_state = random_state

    def _validate_family_params(self):
        check_choice("covariance_type", self.covariance_type, COVARIANCE_TYPES)

    def _validate_samples(self, X):
        return X

    def _family(self):
        return families.GaussianCAVIFamily(self.covariance_type)

    _prior_class = GaussianMixturePrior

    def _default_prior(self, X, w):
        return GaussianMixturePrior.default(X, self.n_components, self.covariance_type, w)

    def _check_prior(self, prior):
        if prior.covariance_type != self.covariance_type:
            raise ValueError(f"prior is for covariance_type={prior.covariance_type!r} "
                             f"but the estimator has {self.covariance_type!r}")
        return prior

    # EM's (GaussianFamily): the data's weighted mean, and mean_prior (a GaussianMixturePrior) or
    # the means (any NamedTuple with means, here NormalWishart) moved by a shift (D,)
    def _data_center(self, X, w):
        return GaussianFamily(self.covariance_type).data_center(X, w)

    def _translate(self, obj, shift):
        return GaussianFamily(self.covariance_type).translate(obj, shift)

    def _store(self, q):
        ct = self.covariance_type
        self.mean_precision_ = np.asarray(q.mean_precision)
        self.means_ = np.asarray(q.means)
        self.degrees_of_freedom_ = (float(q.degrees_of_freedom) if ct == "tied"
                                    else np.asarray(q.degrees_of_freedom))
        self.covariances_ = np.asarray(gaussian.covariances(q, ct))
        if ct in ("full", "tied"):
            self.precisions_ = np.linalg.inv(self.covariances_)
            # upper-triangular P with P P^T = precision (scikit-learn's convention)
            chol = np.linalg.cholesky(self.covariances_)
            eye = np.broadcast_to(np.eye(chol.shape[-1]), chol.shape)
            self.precisions_cholesky_ = np.swapaxes(np.linalg.solve(chol, eye), -1, -2)
        else:
            self.precisions_ = 1.0 / self.covariances_
            self.precisions_cholesky_ = np.sqrt(self.precisions_)

    def _log_predictive_components(self, X):
        """(N, K) log St(x | m_k, Psi_k (1 + kappa_k) / (kappa_k dof_k), dof_k) (Bishop 10.81-
        10.82): dof_k = nu_k + 1 - D (full, tied); diag: the product over dimensions of 1-D
        Student-t's with nu_k degrees of freedom; spherical: dof nu_k (one Gamma precision)."""
        ct, (k, d) = self.covariance_type, self.means_.shape
        kappa = self.mean_precision_
        nu = np.broadcast_to(self.degrees_of_freedom_, (k,))
        scale = self._components().scale
        out = np.empty((X.shape[0], k))
        for j in range(k):
            inflate = (1.0 + kappa[j]) / kappa[j]
            if ct in ("full", "tied"):
                dof = nu[j] + 1.0 - d
                psi = np.asarray(scale if ct == "tied" else scale[j])
                out[:, j] = stats.multivariate_t(self.means_[j], psi * inflate / dof,
                                                 df=dof).logpdf(X)
            elif ct == "diag":
                sd = np.sqrt(np.asarray(scale[j]) * inflate / nu[j])
                out[:, j] = np.sum(stats.t.logpdf(X, nu[j], self.means_[j], sd), axis=1)
            else:
                shape = float(scale[j]) * inflate / nu[j] * np.eye(d)
                out[:, j] = stats.multivariate_t(self.means_[j], shape, df=nu[j]).logpdf(X)
        return out.reshape(X.shape[0], k)

    def _components(self):
        nu = jnp.asarray(self.degrees_of_freedom_)
        cov = jnp.asarray(self.covariances_)
        scale = cov * (nu if self.covariance_type in ("tied", "spherical")
                       else nu[:, None] if self.covariance_type == "diag" else nu[:, None, None])
        return gaussian.NormalWishart(jnp.asarray(self.mean_precision_),
                                      jnp.asarray(self.means_), nu, scale)


def sklearn_lower_bound_offset(prior, n_samples, n_components, weight_concentration_prior_type):
    """lower_bound_ of GaussianMixtureCAVI minus scikit-learn's BayesianGaussianMixture
    lower_bound_ for the same data, prior and factors (the formula in GaussianMixtureCAVI's
    docstring). prior: a validated GaussianMixturePrior; n_samples: N (total sample weight)."""
    m0 = np.asarray(prior.mean_prior, dtype=float)
    d, k = m0.shape[0], n_components
    ct = prior.covariance_type
    if (ct in ("diag", "spherical") and d > 1) or (ct == "tied" and k > 1):
        raise ValueError(f"scikit-learn's covariance_type={ct!r} with D={d}, K={k} solves a "
                         "different model (em_reference.cavi.gaussian): its bound differs from "
                         "the ELBO by more than constants")
    kappa0, nu0 = float(prior.mean_precision), float(prior.degrees_of_freedom)
    psi0 = np.asarray(prior.covariance_prior, dtype=float)
    if ct in ("full", "tied"):
        log_det_psi0 = np.linalg.slogdet(psi0)[1]
    else:  # diag / spherical with D = 1
        log_det_psi0 = float(np.sum(np.log(psi0)))
    wishart0 = (0.5 * nu0 * log_det_psi0 - 0.5 * nu0 * d * math.log(2.0)
                - multigammaln(0.5 * nu0, d) + 0.25 * d * (d - 1) * math.log(math.pi))
    alpha = np.broadcast_to(np.asarray(prior.weight_concentration, dtype=float), (k,))
    if weight_concentration_prior_type == "dirichlet_process":
        weights0 = k * math.log(float(alpha[0]))
    else:
        weights0 = gammaln(alpha.sum()) - np.sum(gammaln(alpha))
    return float(-0.5 * n_samples * d * math.log(2.0 * math.pi) + 0.5 * k * d * math.log(kappa0)
                 + k * wishart0 + weights0)
