"""Gaussian components evaluated through the Cholesky factor of the precision.

numpyro's MultivariateNormal evaluates the Mahalanobis term of a (N, 1, D) value against K
components with a batched triangular solve, which on CPU is ~25x slower (value and gradient)
than the matrix products used here: (x - mu_k)^T Sigma_k^-1 (x - mu_k) = ||x P_k - mu_k P_k||^2
with P_k = L_k^-T, Sigma_k = L_k L_k^T. Same density; the cross-check tests compare it with
em_reference to 1e-8.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints


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
        """value (..., D) or (..., 1, D) (one point for every component, as MixtureSameFamily
        passes it) or (..., K, D) -> (..., K)."""
        d = self.event_shape[0]
        if value.ndim == 1 or value.shape[-2] == 1:
            x = value if value.ndim == 1 else value[..., 0, :]
            xp = jnp.einsum("...d,kde->...ke", x, self.prec_chol)  # one (N, D) x (D, K D) GEMM
        else:
            xp = jnp.einsum("...kd,kde->...ke", value, self.prec_chol)
        z = xp - jnp.einsum("kd,kde->ke", self.means, self.prec_chol)
        half_logdet = jnp.sum(jnp.log(jnp.diagonal(self.prec_chol, axis1=-2, axis2=-1)), -1)
        return half_logdet - 0.5 * (d * math.log(2.0 * math.pi) + jnp.sum(z**2, -1))

    def sample(self, key, sample_shape=()):
        eps = jax.random.normal(key, sample_shape + self.batch_shape + self.event_shape)
        return self.means + jnp.einsum("kde,...ke->...kd", self.scale_tril, eps)

    @property
    def mean(self):
        return self.means

    @property
    def variance(self):
        return jnp.diagonal(self.covariances, axis1=-2, axis2=-1)
