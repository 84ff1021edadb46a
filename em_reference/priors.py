"""Conjugate priors for MAP-EM, as normalised densities over exactly the parameters EM returns.

The Gaussian mixture is parametrised by (weights (K,), means (K, D), covariances) with the
covariance shapes of scikit-learn: full (K, D, D), tied (D, D), diag (K, D), spherical (K,).
The Poisson mixture by (weights (K,), rates (K, D)), the Bernoulli mixture by
(weights (K,), probs (K, D)). ``models/`` reproduces these densities
with ``numpyro.distributions``; the densities below are the specification.

GaussianMixturePrior (alpha = weight_concentration, m0 = mean_prior, kappa0 = mean_precision,
nu0 = degrees_of_freedom, Psi0 = covariance_prior)::

    weights            ~ Dirichlet(alpha)                      alpha scalar or (K,)
    full:      cov_k   ~ InverseWishart(df=nu0, scale=Psi0)     Psi0 (D, D), nu0 > D - 1
               mean_k  ~ Normal(m0, cov_k / kappa0)
    tied:      cov     ~ InverseWishart(df=nu0, scale=Psi0)     one shared covariance
               mean_k  ~ Normal(m0, cov / kappa0)               for every k
    diag:      var_kd  ~ InverseGamma(nu0 / 2, Psi0_d / 2)      Psi0 (D,), nu0 > 0
               mean_kd ~ Normal(m0_d, var_kd / kappa0)
    spherical: var_k   ~ InverseGamma(nu0 / 2, Psi0 / 2)        Psi0 scalar, nu0 > 0
               mean_k  ~ Normal(m0, var_k / kappa0 * I_D)

with InverseWishart(S | nu, Psi) = |Psi|^(nu/2) |S|^(-(nu+D+1)/2) exp(-tr(Psi S^-1)/2)
/ (2^(nu D/2) Gamma_D(nu/2)) and InverseGamma(v | a, b) = b^a / Gamma(a) v^(-a-1) exp(-b/v)
(rate-free "scale" b). In one dimension InverseWishart(nu, psi) is InverseGamma(nu/2, psi/2), so
the diag and spherical priors are the one-dimensional case of the full one.

PoissonMixturePrior::

    weights  ~ Dirichlet(alpha)
    rate_kd  ~ Gamma(shape=a, rate=b)      density b^a / Gamma(a) l^(a-1) exp(-b l)

BernoulliMixturePrior::

    weights  ~ Dirichlet(alpha)
    prob_kd  ~ Beta(a_d, b_d)              density p^(a-1) (1-p)^(b-1) / B(a, b)

All are registered as JAX pytrees (the covariance type is static), so they pass through ``jit``.
``resolve_prior`` reads an estimator's or a model's ``prior`` argument (None | "default" |
a prior object) the same way everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, multigammaln

from em_reference import config  # noqa: F401  (float64)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------- elementary log densities
def dirichlet_logpdf(weights, concentration):
    """log Dirichlet(weights | concentration); weights (K,), concentration scalar or (K,)."""
    alpha = jnp.broadcast_to(concentration, weights.shape)
    return (
        gammaln(alpha.sum())
        - gammaln(alpha).sum()
        + jnp.sum(jax.scipy.special.xlogy(alpha - 1.0, weights))
    )


def inverse_gamma_logpdf(x, shape, scale):
    """log InverseGamma(x | shape a, scale b), elementwise."""
    return shape * jnp.log(scale) - gammaln(shape) - (shape + 1.0) * jnp.log(x) - scale / x


def gamma_logpdf(x, shape, rate):
    """log Gamma(x | shape a, rate b), elementwise."""
    return shape * jnp.log(rate) - gammaln(shape) + (shape - 1.0) * jnp.log(x) - rate * x


def inverse_wishart_logpdf(cov, df, scale):
    """log InverseWishart(cov | df, scale); cov (..., D, D), scale (D, D)."""
    d = cov.shape[-1]
    chol = jnp.linalg.cholesky(cov)
    logdet_cov = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    logdet_scale = 2.0 * jnp.sum(jnp.log(jnp.diag(jnp.linalg.cholesky(scale))))
    # tr(scale cov^-1) via the Cholesky factor of cov: ||L^-1 chol(scale)||_F^2
    scale_chol = jnp.broadcast_to(jnp.linalg.cholesky(scale), cov.shape)
    half = jax.scipy.linalg.solve_triangular(chol, scale_chol, lower=True)
    trace = jnp.sum(half**2, axis=(-2, -1))
    return (
        0.5 * df * logdet_scale
        - 0.5 * df * d * math.log(2.0)
        - multigammaln(0.5 * df, d)
        - 0.5 * (df + d + 1.0) * logdet_cov
        - 0.5 * trace
    )


def mvn_logpdf(x, mean, cov):
    """log Normal(x | mean, cov); x and mean (..., D), cov (..., D, D)."""
    d = x.shape[-1]
    chol = jnp.linalg.cholesky(cov)
    z = jax.scipy.linalg.solve_triangular(chol, (x - mean)[..., None], lower=True)[..., 0]
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * (d * LOG_2PI + logdet + jnp.sum(z**2, axis=-1))


def normal_logpdf(x, mean, var):
    """log Normal(x | mean, var), elementwise."""
    return -0.5 * (LOG_2PI + jnp.log(var) + (x - mean) ** 2 / var)


# ---------------------------------------------------------------- Gaussian mixture prior
@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class GaussianMixturePrior:
    """Dirichlet x Normal-inverse-Wishart family prior (see the module docstring).

    Parameters
    ----------
    weight_concentration : float or array (K,)   Dirichlet alpha, > 0.
    mean_prior : array (D,)                       m0.
    mean_precision : float                        kappa0 > 0 (shrinkage of means towards m0).
    degrees_of_freedom : float                    nu0; > D - 1 for full/tied, > 0 otherwise.
    covariance_prior : array                      Psi0: (D, D) SPD for full/tied, (D,) > 0 for
                                                  diag, scalar > 0 for spherical.
    covariance_type : str                         which of the four densities applies.
    """

    weight_concentration: object
    mean_prior: object
    mean_precision: object
    degrees_of_freedom: object
    covariance_prior: object
    covariance_type: str = "full"

    def tree_flatten(self):
        children = tuple(getattr(self, f.name) for f in fields(self)[:-1])
        return children, self.covariance_type

    @classmethod
    def tree_unflatten(cls, covariance_type, children):
        return cls(*children, covariance_type=covariance_type)

    @classmethod
    def default(cls, X, n_components, covariance_type="full", sample_weight=None):
        """Weakly informative defaults of Fraley & Raftery (2007, J. Classification 24:155).

        mean_prior = (weighted) data mean, mean_precision = 0.01, degrees_of_freedom = D + 2,
        covariance_prior = Cov(X) / K^(2/D) (its diagonal for diag, the mean of the diagonal for
        spherical; a singular Cov(X) gets a ridge of 1e-6 x its average variance so that
        degenerate data still give a proper prior); weight_concentration = 1 (a flat
        Dirichlet: F&R put no prior on weights).
        X: (N, D) or (N,).
        """
        X = np.asarray(X, dtype=float)
        X = X[:, None] if X.ndim == 1 else X
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                             f"got {covariance_type!r}")
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
        d = X.shape[1]
        mean = np.average(X, axis=0, weights=w)
        diff = X - mean
        total = w.sum()
        # unbiased frequency-weighted covariance (np.cov's ddof=1 when weights are counts)
        cov = (diff * w[:, None]).T @ diff / max(total - 1.0, 1.0)
        cov = np.atleast_2d(cov)
        # degenerate data (a constant column, fewer samples than features) give a singular
        # covariance: a ridge of 1e-6 x the average variance (or 1e-6) keeps the prior proper
        avg_var = np.trace(cov) / d
        if np.linalg.eigvalsh(cov)[0] <= 1e-12 * avg_var or avg_var <= 0:
            cov = cov + 1e-6 * (avg_var if avg_var > 0 else 1.0) * np.eye(d)
        shrink = float(n_components) ** (2.0 / d)
        if covariance_type in ("full", "tied"):
            scale = cov / shrink
        elif covariance_type == "diag":
            scale = np.diag(cov) / shrink
        else:
            scale = np.float64(np.mean(np.diag(cov)) / shrink)
        return cls(1.0, mean, 0.01, float(d + 2), scale, covariance_type)

    def validate(self, n_features, n_components):
        """Raise ValueError naming the first bad hyper-parameter; returns self as float arrays."""
        ct = self.covariance_type
        if ct not in COVARIANCE_TYPES:
            raise ValueError(f"prior covariance_type must be one of {COVARIANCE_TYPES}, got {ct!r}")
        alpha = _check_weight_concentration(self.weight_concentration, n_components)
        m0 = np.asarray(self.mean_prior, dtype=float)
        if m0.shape != (n_features,):
            raise ValueError(f"mean_prior must have shape ({n_features},), got {m0.shape}")
        if not np.all(np.isfinite(m0)):
            raise ValueError("mean_prior contains NaN or inf")
        kappa = float(self.mean_precision)
        if not (np.isfinite(kappa) and kappa > 0):
            raise ValueError(f"mean_precision must be finite and > 0, got {kappa}")
        nu = float(self.degrees_of_freedom)
        low = n_features - 1.0 if ct in ("full", "tied") else 0.0
        if not (np.isfinite(nu) and nu > low):
            raise ValueError(f"degrees_of_freedom must be > {low:g} for covariance_type={ct!r} "
                             f"with {n_features} features, got {nu}")
        psi = np.asarray(self.covariance_prior, dtype=float)
        expected = {"full": (n_features, n_features), "tied": (n_features, n_features),
                    "diag": (n_features,), "spherical": ()}[ct]
        if psi.shape != expected:
            raise ValueError(f"covariance_prior must have shape {expected} for "
                             f"covariance_type={ct!r}, got {psi.shape}")
        if not np.all(np.isfinite(psi)):
            raise ValueError("covariance_prior contains NaN or inf")
        if ct in ("full", "tied"):
            if not np.allclose(psi, psi.T) or np.any(np.linalg.eigvalsh(psi) <= 0):
                raise ValueError("covariance_prior must be symmetric positive definite")
        elif np.any(psi <= 0):
            raise ValueError("covariance_prior must be > 0")
        return GaussianMixturePrior(alpha, m0, np.float64(kappa), np.float64(nu), psi, ct)

    def log_prob(self, params):
        """Normalised log density of params (a GaussianParams or a dict with the same keys)."""
        w, mu, cov = _unpack(params, ("weights", "means", "covariances"))
        lp = dirichlet_logpdf(w, self.weight_concentration)
        m0, kappa, nu, psi = (self.mean_prior, self.mean_precision, self.degrees_of_freedom,
                              self.covariance_prior)
        ct = self.covariance_type
        if ct == "full":
            lp += jnp.sum(inverse_wishart_logpdf(cov, nu, psi))
            lp += jnp.sum(mvn_logpdf(mu, m0, cov / kappa))
        elif ct == "tied":
            lp += inverse_wishart_logpdf(cov, nu, psi)
            lp += jnp.sum(mvn_logpdf(mu, m0, cov[None] / kappa))
        elif ct == "diag":
            lp += jnp.sum(inverse_gamma_logpdf(cov, 0.5 * nu, 0.5 * psi))
            lp += jnp.sum(normal_logpdf(mu, m0, cov / kappa))
        else:
            lp += jnp.sum(inverse_gamma_logpdf(cov, 0.5 * nu, 0.5 * psi))
            lp += jnp.sum(normal_logpdf(mu, m0, cov[:, None] / kappa))
        return lp


# ---------------------------------------------------------------- Poisson mixture prior
@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class PoissonMixturePrior:
    """Dirichlet(weight_concentration) on weights, Gamma(rate_shape, rate_rate) on every rate.

    weight_concentration: scalar or (K,), > 0; rate_shape, rate_rate: scalar or (D,), > 0.
    """

    weight_concentration: object
    rate_shape: object
    rate_rate: object

    def tree_flatten(self):
        return (self.weight_concentration, self.rate_shape, self.rate_rate), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    @classmethod
    def default(cls, x, n_components, sample_weight=None, pseudo_count=0.1):
        """Weakly informative: Gamma with mode at the data mean, worth ``pseudo_count`` (0.1)
        observations: rate_rate = 0.1, rate_shape = 1 + 0.1 * mean(x) per dimension, so the
        MAP rate is (sum_n r_nk x_n + 0.1 mean) / (N_k + 0.1). Flat Dirichlet on weights.
        x: (N,) or (N, D) counts.
        """
        x = np.asarray(x, dtype=float)
        x = x[:, None] if x.ndim == 1 else x
        w = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, float)
        mean = np.average(x, axis=0, weights=w)
        b = np.full(x.shape[1], float(pseudo_count))
        return cls(1.0, 1.0 + b * mean, b)

    def validate(self, n_features, n_components):
        """Raise ValueError naming the first bad hyper-parameter; returns float arrays."""
        alpha = _check_weight_concentration(self.weight_concentration, n_components)
        out = [_check_per_feature(name, getattr(self, name), n_features)
               for name in ("rate_shape", "rate_rate")]
        return PoissonMixturePrior(alpha, *out)

    def log_prob(self, params):
        """Normalised log density of params (a PoissonParams or a dict with the same keys)."""
        w, rates = _unpack(params, ("weights", "rates"))
        return dirichlet_logpdf(w, self.weight_concentration) + jnp.sum(
            gamma_logpdf(rates, self.rate_shape, self.rate_rate)
        )


def beta_logpdf(x, concentration1, concentration0):
    """log Beta(x | a = concentration1, b = concentration0), elementwise."""
    a, b = concentration1, concentration0
    return (gammaln(a + b) - gammaln(a) - gammaln(b)
            + jax.scipy.special.xlogy(a - 1.0, x) + jax.scipy.special.xlog1py(b - 1.0, -x))


# ---------------------------------------------------------------- Bernoulli mixture prior
@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class BernoulliMixturePrior:
    """Dirichlet(weight_concentration) on weights, Beta(probs_concentration1,
    probs_concentration0) on every pixel probability p_kd (NumPyro's Beta(concentration1,
    concentration0), density p^(a-1) (1-p)^(b-1) / B(a, b)).

    weight_concentration: scalar or (K,), > 0; probs_concentration1 (a), probs_concentration0
    (b): scalar or (D,), > 0. The MAP M-step p_kd = (S_kd + a_d - 1) / (N_k + a_d + b_d - 2)
    is the mode for a, b >= 1 (with a < 1 or b < 1 the density is unbounded at 0 or 1 and
    the M-step keeps p at the nearest end of [MIN_PROB, 1 - MIN_PROB]).
    """

    weight_concentration: object
    probs_concentration1: object
    probs_concentration0: object

    def tree_flatten(self):
        return (self.weight_concentration, self.probs_concentration1,
                self.probs_concentration0), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    @classmethod
    def default(cls, x, n_components, sample_weight=None, pseudo_count=1.0):
        """Weakly informative: each p_kd's Beta has its mode at the pixel's (Laplace-smoothed)
        mean m_d = (sum_n w_n x_nd + 1) / (sum_n w_n + 2) and is worth ``pseudo_count`` (1)
        observations: a_d = 1 + c m_d, b_d = 1 + c (1 - m_d), so the MAP probability is
        (S_kd + c m_d) / (N_k + c), never exactly 0 or 1. Flat Dirichlet on the weights.
        x: (N,) or (N, D) of 0/1.
        """
        x = np.asarray(x, dtype=float)
        x = x[:, None] if x.ndim == 1 else x
        w = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, float)
        mean = (w @ x + 1.0) / (w.sum() + 2.0)
        c = float(pseudo_count)
        return cls(1.0, 1.0 + c * mean, 1.0 + c * (1.0 - mean))

    def validate(self, n_features, n_components):
        """Raise ValueError naming the first bad hyper-parameter; returns float arrays."""
        alpha = _check_weight_concentration(self.weight_concentration, n_components)
        out = [_check_per_feature(name, getattr(self, name), n_features)
               for name in ("probs_concentration1", "probs_concentration0")]
        return BernoulliMixturePrior(alpha, *out)

    def log_prob(self, params):
        """Normalised log density of params (a BernoulliParams or a dict with the same keys)."""
        w, probs = _unpack(params, ("weights", "probs"))
        return dirichlet_logpdf(w, self.weight_concentration) + jnp.sum(
            beta_logpdf(probs, self.probs_concentration1, self.probs_concentration0))




def _unpack(params, names):
    if isinstance(params, dict):
        return tuple(jnp.asarray(params[n]) for n in names)
    return tuple(jnp.asarray(getattr(params, n)) for n in names)


def _check_weight_concentration(value, n_components):
    alpha = np.asarray(value, dtype=float)
    if alpha.ndim not in (0, 1) or (alpha.ndim == 1 and alpha.shape != (n_components,)):
        raise ValueError(f"weight_concentration must be a scalar or shape ({n_components},), "
                         f"got shape {alpha.shape}")
    if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
        raise ValueError("weight_concentration must be finite and > 0")
    return alpha


def _check_per_feature(name, value, n_features):
    """A positive hyper-parameter given as a scalar or one value per feature -> (D,)."""
    v = np.asarray(value, dtype=float)
    if v.ndim not in (0, 1) or (v.ndim == 1 and v.shape != (n_features,)):
        raise ValueError(f"{name} must be a scalar or shape ({n_features},), "
                         f"got shape {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name} must be finite and > 0")
    return np.broadcast_to(v, (n_features,)).copy()


def resolve_prior(prior, prior_class, make_default):
    """The one reading of a ``prior`` argument: None (maximum likelihood) -> None;
    "default" -> ``make_default()`` (the family's data-dependent default); an instance of
    ``prior_class`` -> itself. Anything else raises ValueError naming the choices. The result
    is not yet validated against the data's shape (``prior.validate(D, K)``)."""
    if prior is None:
        return None
    if isinstance(prior, str):
        if prior != "default":
            raise ValueError(f"prior must be None, 'default' or a {prior_class.__name__}, "
                             f"got {prior!r}")
        return make_default()
    if not isinstance(prior, prior_class):
        raise ValueError(f"prior must be None, 'default' or a {prior_class.__name__}, "
                         f"got {prior!r}")
    return prior
