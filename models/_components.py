"""Mixture components whose (N, K) log densities build no (N, K, D) temporary.

``MixtureSameFamily`` evaluates its components at a (N, 1, D) value; numpyro's own
``MultivariateNormal`` and ``Normal(...).to_event(1)`` broadcast that against K components into
(N, K, D) arrays (forward and in the gradient), several times the data's size. Here the largest
temporary is the (N, K) matrix itself plus one (N, D) block:

* full / tied (``GaussianComponents``): the Mahalanobis term ||(x - mu_k) P_k||^2 with P_k the
  Cholesky factor of the precision (Sigma_k^-1 = P_k P_k^T), one component at a time
  (``lax.map``, rematerialised in the backward pass): the difference form, no cancellation.
* diag / spherical (``DiagonalGaussianComponents``): the expanded quadratic
  (X*X) @ prec^T - 2 X @ (mu*prec)^T + sum(mu^2 prec), two (N, D) x (D, K) products, on data
  centred at their mean. It cancels for tight components far from that centre (issue 21: sd
  1e-3 clusters 1e6 apart); when its rounding error could exceed ``MAX_ROUNDING_NATS`` the
  difference form (one component at a time, as above) is used instead (``lax.cond``).
* Poisson (``PoissonComponents``): x log(rate)^T - sum(rate) - sum log x!, one product.

Same densities as em_reference (the cross-check tests compare them to 1e-8).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints

LOG_2PI = math.log(2.0 * math.pi)
# the expanded diag/spherical form is kept while its worst-case rounding error (a few ulps of
# the largest term it cancels, per point) stays below this many nats: 1e-9 allows expanded terms
# up to ~1e6 in float64 (the suite's data are a few hundred); float32 always takes the
# difference form
MAX_ROUNDING_NATS = 1e-9


def _per_component(fn, x, *per_k):
    """(M, K): ``fn(x, *args_k) -> (M,)`` for every component k, one at a time. Under
    reverse-mode autodiff each step is recomputed (jax.checkpoint), so the backward pass keeps
    no (M, D) block per component either."""
    cols = jax.lax.map(jax.checkpoint(lambda args: fn(x, *args)), per_k)
    return cols.T


def _flatten_points(value, d):
    """value (..., D) or (..., 1, D) (one point for all components, as MixtureSameFamily
    passes it) -> ((M, D) points, batch shape)."""
    x = value if value.ndim == 1 or value.shape[-2] != 1 else value[..., 0, :]
    return x.reshape(-1, d), x.shape[:-1]


def _is_per_component(value, k):
    """True for a (..., K, D) value holding one point per component (K > 1)."""
    return value.ndim >= 2 and value.shape[-2] == k and k != 1


class GaussianComponents(dist.Distribution):
    """K multivariate normals: batch shape (K,), event shape (D,).

    means (K, D); covariances (K, D, D), or (D, D) shared by all components.
    """

    arg_constraints = {"means": constraints.real_vector,
                       "covariances": constraints.positive_definite}
    support = constraints.real_vector
    reparametrized_params = ["means", "covariances"]

    def __init__(self, means, covariances, *, validate_args=None):
        k, d = jnp.shape(means)
        self.means = means
        self.covariances = jnp.broadcast_to(covariances, (k, d, d))
        self.scale_tril = jnp.linalg.cholesky(self.covariances)
        eye = jnp.broadcast_to(jnp.eye(d, dtype=self.scale_tril.dtype), (k, d, d))
        # P_k = L_k^-T (upper triangular), so Sigma_k^-1 = P_k P_k^T
        self.prec_chol = jnp.swapaxes(
            jax.scipy.linalg.solve_triangular(self.scale_tril, eye, lower=True), -1, -2)
        super().__init__(batch_shape=(k,), event_shape=(d,), validate_args=validate_args)

    def log_prob(self, value):
        """value (..., D) or (..., 1, D) -> (..., K); or (..., K, D), one point per
        component -> (..., K)."""
        k, d = self.means.shape
        half_logdet = jnp.sum(jnp.log(jnp.diagonal(self.prec_chol, axis1=-2, axis2=-1)), -1)
        if _is_per_component(value, k):
            z = jnp.einsum("...kd,kde->...ke", value - self.means, self.prec_chol)
            maha = jnp.sum(z**2, -1)
        else:
            x, batch = _flatten_points(value, d)
            maha = _per_component(_full_mahalanobis, x, self.means, self.prec_chol)
            maha = maha.reshape(batch + (k,))
        return half_logdet - 0.5 * (d * LOG_2PI + maha)

    def sample(self, key, sample_shape=()):
        eps = jax.random.normal(key, sample_shape + self.batch_shape + self.event_shape)
        return self.means + jnp.einsum("kde,...ke->...kd", self.scale_tril, eps)

    @property
    def mean(self):
        return self.means

    @property
    def variance(self):
        return jnp.diagonal(self.covariances, axis1=-2, axis2=-1)


def _full_mahalanobis(x, mean, prec_chol):
    z = (x - mean) @ prec_chol
    return jnp.sum(z * z, -1)


def _diag_mahalanobis(x, mean, precision):
    return jnp.sum((x - mean) ** 2 * precision, -1)


def diag_mahalanobis(x, means, precisions):
    """(M, K) sum_d prec_kd (x_nd - mu_kd)^2 for x (M, D), means and precisions (K, D): the
    expanded form on centred data, or the difference form where the expansion would cancel."""
    centre = jnp.mean(x, 0)
    xc, mc = x - centre, means - centre
    # every expanded term is at most ~ sum_d prec_kd (max_n xc_nd^2 + mc_kd^2)
    largest = jnp.max(precisions @ jnp.max(xc * xc, 0) + jnp.sum(precisions * mc * mc, -1))
    ill_conditioned = largest * jnp.finfo(x.dtype).eps > MAX_ROUNDING_NATS

    def expanded(_):
        maha = ((xc * xc) @ precisions.T - 2.0 * xc @ (mc * precisions).T
                + jnp.sum(mc * mc * precisions, -1))
        return jnp.maximum(maha, 0.0)  # a true zero can round to a tiny negative number

    def difference(_):
        return _per_component(_diag_mahalanobis, x, means, precisions)

    return jax.lax.cond(ill_conditioned, difference, expanded, None)


class DiagonalGaussianComponents(dist.Distribution):
    """K normals with diagonal covariances: batch shape (K,), event shape (D,).

    means (K, D); variances (K, D), or (K,) for one variance per component (spherical).
    """

    arg_constraints = {"means": constraints.real_vector,
                       "variances": constraints.independent(constraints.positive, 1)}
    support = constraints.real_vector
    reparametrized_params = ["means", "variances"]

    def __init__(self, means, variances, *, validate_args=None):
        k, d = jnp.shape(means)
        self.means = means
        if jnp.ndim(variances) == 1:
            variances = variances[:, None]
        self.variances = jnp.broadcast_to(variances, (k, d))
        super().__init__(batch_shape=(k,), event_shape=(d,), validate_args=validate_args)

    def log_prob(self, value):
        """value (..., D) or (..., 1, D) -> (..., K); or (..., K, D), one point per
        component -> (..., K)."""
        k, d = self.means.shape
        logdet = jnp.sum(jnp.log(self.variances), -1)
        precisions = 1.0 / self.variances
        if _is_per_component(value, k):
            maha = jnp.sum((value - self.means) ** 2 * precisions, -1)
        else:
            x, batch = _flatten_points(value, d)
            maha = diag_mahalanobis(x, self.means, precisions).reshape(batch + (k,))
        return -0.5 * (d * LOG_2PI + logdet + maha)

    def sample(self, key, sample_shape=()):
        eps = jax.random.normal(key, sample_shape + self.batch_shape + self.event_shape)
        return self.means + jnp.sqrt(self.variances) * eps

    @property
    def mean(self):
        return self.means

    @property
    def variance(self):
        return self.variances


class PoissonComponents(dist.Distribution):
    """K products of D independent Poissons: batch shape (K,), event shape (D,). rates (K, D).

    log p(x | rate_k) = x . log(rate_k) - sum(rate_k) - sum log x!: one (N, D) x (D, K) product
    and log x! once per point, instead of xlogy and gammaln over (N, K, D).
    """

    arg_constraints = {"rates": constraints.independent(constraints.positive, 1)}
    support = constraints.independent(constraints.nonnegative_integer, 1)
    reparametrized_params = []

    def __init__(self, rates, *, validate_args=None):
        k, d = jnp.shape(rates)
        self.rates = rates
        super().__init__(batch_shape=(k,), event_shape=(d,), validate_args=validate_args)

    def log_prob(self, value):
        """value (..., D) or (..., 1, D) counts -> (..., K)."""
        k, d = self.rates.shape
        if _is_per_component(value, k):
            x = value
            return (jnp.sum(jax.scipy.special.xlogy(x, self.rates) - self.rates, -1)
                    - jnp.sum(jax.scipy.special.gammaln(x + 1.0), -1))
        x, batch = _flatten_points(value, d)
        # a rate that underflowed to 0 gives 0 * log(tiny) = 0 for x = 0 (xlogy's 0 log 0),
        # not 0 * -inf = NaN
        log_rates = jnp.log(jnp.maximum(self.rates, jnp.finfo(self.rates.dtype).tiny))
        out = (x @ log_rates.T - jnp.sum(self.rates, -1)
               - jnp.sum(jax.scipy.special.gammaln(x + 1.0), -1, keepdims=True))
        return out.reshape(batch + (k,))

    def sample(self, key, sample_shape=()):
        return jax.random.poisson(key, self.rates, sample_shape + self.batch_shape
                                  + self.event_shape).astype(jnp.result_type(float))

    @property
    def mean(self):
        return self.rates

    @property
    def variance(self):
        return self.rates
