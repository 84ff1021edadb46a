"""The contract between a mixture family and EM, documented once, and the pieces every family
shares (the weight update with its Dirichlet prior, ``fixed_params``, the unconstrained
weights).

A mixture p(x | theta) = sum_k pi_k p(x | theta_k) is EM-ready when its family says

* what one component's log density is (``log_component_densities``), for the E-step;
* how the components' parameters maximise the expected complete-data log joint given
  responsibilities (``component_m_step``; the weights are shared: ``weights_update``);
* for the fast kernel, how log pi_k + log p(x | theta_k) = T(x) . eta_k is linear in
  features T(x) (``features``, ``natural_parameters``) and how the M-step reads the moments
  R^T T(X) (``component_m_step_from_moments``);
* a smooth unconstrained parametrisation (``to_unconstrained`` / ``from_unconstrained``) for
  SQUAREM's extrapolation and for the gradient certificate.

``MixtureFamily`` is the Protocol the loop (em_reference.loop), the estimators
(em_reference.base) and the fast kernel (em_reference.fast) rely on; ``FamilyBase`` writes
the family-independent part of it once. A family is a frozen dataclass (hashable: it is
jit-static configuration); its parameters are a NamedTuple whose first field is ``weights``
(K,), and its features start with the constant column 1 (so that moments[:, 0] = N_k).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from em_reference import config  # noqa: F401  (float64)


@runtime_checkable
class MixtureFamily(Protocol):
    """What EM needs to know about one mixture family. Shapes: X (N, D), K components,
    F features; ``prior`` is None (maximum likelihood) or the family's prior object."""

    params_class: ClassVar[type]       # NamedTuple (weights (K,), component parameters...)
    prior_class: ClassVar[type]        # the family's conjugate prior (a JAX pytree)
    fixed: tuple                       # parameter names the M-step leaves unchanged

    # ---- the model: the textbook E-step and predict/score
    def log_component_densities(self, X, params) -> jax.Array:
        """log p(x_n | theta_k), all constants included: (N, K)."""

    def log_joint(self, X, params) -> jax.Array:
        """log pi_k + log p(x_n | theta_k): (N, K)."""

    def log_prior(self, params, prior) -> jax.Array:
        """log p(theta), a normalised density over exactly these parameters."""

    def log_regulariser(self, params) -> jax.Array:
        """(K,) added to the log joint inside EM only (not by predict / score): the term that
        makes a regularised M-step the exact maximiser of EM's objective (Gaussian
        reg_covar: -reg_covar tr(Sigma_k^-1) / 2); zeros for the other families."""

    def unregularised(self):
        """The same family without that term (its E-step objective is the log-likelihood)."""

    # ---- the M-step (textbook: from responsibilities)
    def component_m_step(self, X, weighted_resp, nk, prior) -> dict:
        """The component parameters maximising sum_nk w_n r_nk log p(x_n | theta_k)
        (+ their log prior): a dict of arrays. weighted_resp (N, K) = w_n r_nk, nk (K,) its
        column sums guarded away from 0."""

    def m_step(self, X, weighted_resp, old, prior):
        """The whole M-step (weights included, fixed parameters kept from ``old``)."""

    # ---- the fast kernel (em_reference.fast): an exponential family in T(x)
    def features(self, X) -> jax.Array:
        """T(X): (N, F), first column the constant 1."""

    def feature_width(self, n_features: int) -> int:
        """F, the number of columns ``features`` makes from D = n_features."""

    def natural_parameters(self, params) -> jax.Array:
        """eta (F, K) with log pi_k + log p(x | theta_k) = T(x) @ eta[:, k]."""

    def em_natural_parameters(self, params) -> jax.Array:
        """``natural_parameters`` with ``log_regulariser`` in the constant row: EM's log
        joint in the features."""

    def component_m_step_from_moments(self, moments, nk, prior) -> dict:
        """``component_m_step`` read from the moments (K, F) = sum_n w_n r_nk T(x_n)."""

    def m_step_from_moments(self, moments, old, prior, centres=None):
        """The whole M-step from moments (weights included, fixed parameters kept); centres
        as ``moment_centres`` gave them (None: about the origin)."""

    def moment_centres(self, params) -> Any:
        """None (families without a location: the moments are always sum_n w_n r_nk
        T(x_n)), or (K, D) points c_k, rows of zeros where the expanded form is accurate, the
        fast kernel takes its moments about: sum_n w_n r_nk T(x_n - c_k), with the E-step in
        the difference form whenever a row is non-zero (Gaussian: tight components far from
        the data's centre). Such a family also has ``rows_from_features(feats, D)`` and
        ``component_m_step_from_moments(moments, nk, prior, centres)``."""

    def linear_log_joint(self, dtype) -> bool:
        """True when the fast E-step may use T(X) @ eta in this dtype (False: it falls back
        to ``prepare`` / ``block_log_joint``)."""

    def prepare(self, params) -> Any:
        """What the fast E-step needs of the parameters, computed once per E-step."""

    def block_log_joint(self, feats, prepared) -> jax.Array:
        """log joint (C, K) of a block of rows from its features (C, F)."""

    # ---- geometry: SQUAREM and the gradient certificate
    def to_unconstrained(self, params, scale) -> Any:
        """A pytree of unconstrained arrays (log weights, log / logit / log-Cholesky ...);
        ``scale`` (D,) is the data's spread, so that location coordinates are unit-free."""

    def from_unconstrained(self, u, scale) -> Any:
        """The inverse of ``to_unconstrained``."""

    # ---- the estimator's bookkeeping
    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters (BIC/AIC): the K - 1 free weights plus the components'."""

    def data_center(self, X, sample_weight):
        """None, or a point (D,) EM works relative to (families with a location)."""

    def data_scale(self, X, sample_weight):
        """(D,) the data's spread per feature, the unit of the unconstrained locations (ones
        for families without a location)."""

    def translate(self, obj, shift):
        """params or prior with every location moved by shift (D,) (identity without one)."""


def nk_guard(dtype):
    """The floor scikit-learn adds to N_k before dividing by it: an emptied component keeps
    finite parameters (its mean stays where the sums put it, its spread the regulariser)."""
    return 10.0 * jnp.finfo(dtype).eps


def weights_update(nk, prior):
    """The M-step of the mixing weights.

    MLE: pi_k = N_k / N. With a Dirichlet(alpha) prior (``prior.weight_concentration``), the
    mode pi_k = (N_k + alpha_k - 1) / (N + sum(alpha) - K); with alpha < 1 that mode can lie
    on the simplex's boundary, so every numerator is kept at least ``nk_guard`` above zero.
    nk (K,) = sum_n w_n r_nk.
    """
    guard = nk_guard(nk.dtype)
    if prior is None:
        numer = nk + guard
    else:
        alpha = jnp.broadcast_to(prior.weight_concentration, nk.shape)
        numer = jnp.maximum(nk + alpha - 1.0, guard)
    return numer / jnp.sum(numer)


class FamilyBase:
    """The family-independent half of ``MixtureFamily``, written once: the log joint, both
    M-steps around the family's component updates, fixed parameters, the fast kernel's
    default (linear) E-step, and log weights as the weights' unconstrained coordinates."""

    fixed: tuple = ()

    def log_joint(self, X, params):
        return jnp.log(params.weights)[None, :] + self.log_component_densities(X, params)

    def log_prior(self, params, prior):
        return prior.log_prob(params)

    def log_regulariser(self, params):
        return jnp.zeros_like(params.weights)

    def unregularised(self):
        return self

    def em_natural_parameters(self, params):
        return self.natural_parameters(params).at[0].add(self.log_regulariser(params))

    def m_step(self, X, weighted_resp, old, prior):
        nk = jnp.sum(weighted_resp, axis=0)
        comps = self.component_m_step(X, weighted_resp, nk + nk_guard(nk.dtype), prior)
        return self._assemble(weights_update(nk, prior), comps, old)

    def m_step_from_moments(self, moments, old, prior, centres=None):
        nk = moments[:, 0]
        guarded = nk + nk_guard(nk.dtype)
        comps = (self.component_m_step_from_moments(moments, guarded, prior) if centres is None
                 else self.component_m_step_from_moments(moments, guarded, prior, centres))
        return self._assemble(weights_update(nk, prior), comps, old)

    def moment_centres(self, params):
        """None: the fast kernel's moments are always about the origin (no location)."""
        return None

    def _assemble(self, weights, comps, old):
        new = self.params_class(weights=weights, **comps)
        if old is None:  # nothing to hold fixed (the initial M-step)
            return new
        return self.params_class(*(getattr(old, name) if name in self.fixed
                                   else getattr(new, name) for name in new._fields))

    # ---- the fast kernel's E-step: linear in the features unless a family says otherwise
    def linear_log_joint(self, dtype):
        return True

    def prepare(self, params):
        return self.em_natural_parameters(params)

    def block_log_joint(self, feats, prepared):
        return feats @ prepared

    # ---- weights on the unconstrained scale: log pi (pi = softmax of it)
    @staticmethod
    def _weights_to_unconstrained(weights):
        return jnp.log(jnp.maximum(weights, jnp.finfo(weights.dtype).tiny))

    @staticmethod
    def _weights_from_unconstrained(u):
        return jax.nn.softmax(u)

    def data_center(self, X, sample_weight):
        return None

    def data_scale(self, X, sample_weight):
        return np.ones(X.shape[1])

    def translate(self, obj, shift):
        return obj
