"""NumPyro model of the Gaussian mixture of em_reference, with exactly its conjugate prior.

Parametrised like scikit-learn and em_reference: weights (K,), means (K, D), covariances
full (K, D, D) / tied (D, D) / diag (K, D) / spherical (K,). The assignments are marginalised
(``MixtureSameFamily``), so the only latent sites are the parameters and every autoguide applies.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from em_reference.priors import COVARIANCE_TYPES, GaussianMixturePrior
from models._checks import (as_data, check_inside_handler, check_n_components, is_concrete,
                            resolve_prior)
from models._components import DiagonalGaussianComponents, GaussianComponents


def check_covariance_type(covariance_type) -> str:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                         f"got {covariance_type!r}")
    return covariance_type


def resolve_gaussian_prior(prior, X, n_components, covariance_type):
    """None, "default" (em_reference's GaussianMixturePrior.default) or a GaussianMixturePrior,
    validated against the data shape; returns None or a validated prior."""
    prior = resolve_prior(prior, X, GaussianMixturePrior, "gaussian_mixture",
                          lambda: GaussianMixturePrior.default(X, n_components, covariance_type))
    if prior is None:
        return None
    if prior.covariance_type != covariance_type:
        raise ValueError(f"prior.covariance_type={prior.covariance_type!r} does not match "
                         f"covariance_type={covariance_type!r}")
    return prior.validate(X.shape[1], n_components)


def component_distribution(means, covariances, covariance_type):
    """The K Gaussian components as one batched distribution: batch (K,), event (D,)."""
    if covariance_type in ("full", "tied"):
        return GaussianComponents(means, covariances)
    return DiagonalGaussianComponents(means, covariances)  # diag (K, D) or spherical (K,)


def gaussian_mixture(X, n_components, covariance_type="full", prior=None):
    """Gaussian mixture with sites ``weights``, ``means``, ``covariances`` and observed ``obs``.

    X : (N, D) or (N,) data (1-D is one feature).
    n_components : K >= 1.
    covariance_type : "full" | "tied" | "diag" | "spherical".
    prior : None, "default" or em_reference.GaussianMixturePrior. With None the parameters are
        ``numpyro.param`` sites (SVI then maximises the likelihood); otherwise they are sample
        sites with the em_reference density (see em_reference/priors.py). K = 1 makes
        ``weights`` a deterministic site equal to [1.] (a one-component Dirichlet is a point
        mass of density 1).
    """
    check_inside_handler("gaussian_mixture")
    X = as_data(X, "X")
    n, d = X.shape
    k = check_n_components(n_components, n)
    ct = check_covariance_type(covariance_type)
    prior = resolve_gaussian_prior(prior, X, k, ct)
    X = jnp.asarray(X)
    if prior is None:
        weights, means, covs = _mle_params(X, k, ct)
    else:
        weights, means, covs = _prior_sites(prior, k, d)
    components = component_distribution(means, covs, ct)
    with numpyro.plate("data", n):
        numpyro.sample("obs", dist.MixtureSameFamily(dist.Categorical(probs=weights),
                                                     components), obs=X)


def _prepare_args(X, n_components, covariance_type="full", prior=None):
    """Concrete arguments for tracing: ``prior="default"`` becomes the GaussianMixturePrior
    it stands for (the fit_* routines call this before passing X as a traced array)."""
    if isinstance(prior, str) and prior == "default" and is_concrete(X):
        x = as_data(X, "X")
        prior = GaussianMixturePrior.default(x, check_n_components(n_components, x.shape[0]),
                                             check_covariance_type(covariance_type))
    return (X, n_components), {"covariance_type": covariance_type, "prior": prior}


gaussian_mixture.prepare_args = _prepare_args


def _prior_sites(prior, k, d):
    alpha = jnp.broadcast_to(jnp.asarray(prior.weight_concentration), (k,))
    m0, kappa = jnp.asarray(prior.mean_prior), prior.mean_precision
    nu, psi = prior.degrees_of_freedom, jnp.asarray(prior.covariance_prior)
    ct = prior.covariance_type
    if k == 1:
        weights = numpyro.deterministic("weights", jnp.ones(1))
    else:
        weights = numpyro.sample("weights", dist.Dirichlet(alpha))
    if ct == "tied":
        covs = numpyro.sample("covariances", dist.InverseWishart(nu, scale_matrix=psi))
    with numpyro.plate("components", k):
        if ct == "full":
            covs = numpyro.sample("covariances", dist.InverseWishart(nu, scale_matrix=psi))
            means = numpyro.sample("means", dist.MultivariateNormal(
                m0, covariance_matrix=covs / kappa))
        elif ct == "tied":
            means = numpyro.sample("means", dist.MultivariateNormal(
                m0, covariance_matrix=covs / kappa))
        elif ct == "diag":
            covs = numpyro.sample("covariances", dist.InverseGamma(
                0.5 * nu, jnp.broadcast_to(0.5 * psi, (d,))).to_event(1))
            means = numpyro.sample("means", dist.Normal(m0, jnp.sqrt(covs / kappa)).to_event(1))
        else:
            covs = numpyro.sample("covariances", dist.InverseGamma(0.5 * nu, 0.5 * psi))
            means = numpyro.sample("means", dist.Normal(
                m0, jnp.sqrt(covs / kappa)[:, None]).to_event(1))
    return weights, means, covs


def _mle_params(X, k, ct):
    """Parameters as numpyro.param sites; lazy initial values (used when SVI is given none):
    equal weights, K distinct random data points as means, the data covariance."""
    n, d = X.shape
    cov = jnp.atleast_2d(jnp.cov(X, rowvar=False)) + 1e-6 * jnp.eye(d)
    init_cov = {"full": lambda: jnp.broadcast_to(cov, (k, d, d)), "tied": lambda: cov,
                "diag": lambda: jnp.broadcast_to(jnp.diag(cov), (k, d)),
                "spherical": lambda: jnp.full((k,), jnp.trace(cov) / d)}[ct]
    if k == 1:
        weights = numpyro.deterministic("weights", jnp.ones(1))
    else:
        weights = numpyro.param("weights", lambda key: jnp.full(k, 1.0 / k),
                                constraint=constraints.simplex)
    means = numpyro.param(
        "means", lambda key: X[jax.random.choice(key, n, (k,), replace=False)])
    positive = constraints.positive_definite if ct in ("full", "tied") else constraints.positive
    covs = numpyro.param("covariances", lambda key: init_cov(), constraint=positive)
    return weights, means, covs


# a component variance below this fraction of the data's mean variance has collapsed: the
# likelihood grows without bound as it shrinks (a point mass), there is no MLE to certify
COLLAPSE_RATIO = 1e-12


def _degenerate(params, X, n_components, covariance_type="full", prior=None):
    """fit_map's hook: a message naming collapsed components of the fitted ``params``, or None.
    (With a prior the covariances cannot collapse; the test is the same.)"""
    x = as_data(X, "X")
    scale = float(np.mean(np.var(x, axis=0)))
    covs = np.asarray(params["covariances"], dtype=float)
    if covariance_type in ("full", "tied"):
        smallest = np.linalg.eigvalsh(covs.reshape((-1,) + covs.shape[-2:])).min(-1)
    else:  # diag (K, D), spherical (K,)
        smallest = covs.reshape(covs.shape[0], -1).min(-1)
    if not scale > 0:  # constant data: no scale to compare with
        return None
    collapsed = np.flatnonzero(smallest < COLLAPSE_RATIO * scale)
    if not collapsed.size:
        return None
    return (f"component(s) {collapsed.tolist()} collapsed (smallest variance "
            f"{smallest[collapsed].min():.3g}, {smallest[collapsed].min() / scale:.2g} of the "
            "data's variance): the likelihood is unbounded there, not at an optimum; use a "
            "prior (prior='default') or fewer components")


gaussian_mixture.degenerate = _degenerate
