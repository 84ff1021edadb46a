"""Variational autoencoders as NumPyro models, each with its amortized guide (the encoder).

Models are plain functions of their data (no fitting logic): the latents z_n sit in a plate
named ``"data"`` of size N, the data are taken with ``numpyro.subsample`` so that a
``subsample_size`` or a fitter that substitutes the plate's indices (``fit_vi_minibatch``) sees
a minibatch, and every network is a param site ``"decoder$params"`` / ``"encoder$params"``
(see ``models.networks``). A guide takes exactly its model's arguments.

``vae``:            z_n ~ N(0, I_L),                        x_n | z_n ~ p(x | f_theta(z_n))
``gmm_prior_vae``:  z_n ~ sum_k pi_k N(mu_k, diag(s_k^2)),  x_n | z_n as above
                    (VaDE-style: the assignment c_n is marginalised in the prior; pi, mu, s
                    are global param sites ``prior_weights`` (K,), ``prior_means`` (K, L),
                    ``prior_scales`` (K, L))
decoder p(x | h):   "bernoulli" (binary data): prod_d Bernoulli(x_d | sigmoid(h_d));
                    "gaussian" (real data): prod_d N(x_d | h_d, sigma_d^2), sigma a global
                    param site ``x_scale`` (D,).
guides:             q(z_n | x_n) = N(m_phi(x_n), diag(softplus(r_phi(x_n))^2)), one MLP with
                    2L outputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from models._checks import as_data, check_n_components, is_concrete
from models.networks import MLP, check_width, network

LIKELIHOODS = ("bernoulli", "gaussian")
PLATE = "data"
MIN_SCALE = 1e-4   # floor of the encoder's and the prior's standard deviations


def _check(X, latent_dim, hidden, likelihood):
    """(X as a 2-D float array, hidden as a tuple); ValueError naming the problem."""
    X = as_data(X, "X", min_ndim=2, max_ndim=2)
    check_width(latent_dim, "latent_dim")
    if isinstance(hidden, int):
        hidden = (hidden,)
    hidden = tuple(check_width(h, "hidden width") for h in hidden)
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if likelihood == "bernoulli" and is_concrete(X) and not np.isin(X, (0.0, 1.0)).all():
        raise ValueError("likelihood='bernoulli' needs binary data (every entry 0 or 1); "
                         "use likelihood='gaussian' for real-valued data")
    return X, hidden


def _dtype(X):
    return jax.dtypes.canonicalize_dtype(X.dtype)   # float32 when x64 is off


def _x_scale(X, likelihood):
    """The Gaussian decoder's global sigma (D,), declared outside the data plate; None for
    the Bernoulli decoder."""
    if likelihood == "bernoulli":
        return None
    return numpyro.param("x_scale", jnp.ones(X.shape[1], _dtype(X)),
                         constraint=constraints.positive)


def _decode(X, z, latent_dim, hidden, activation, x_scale):
    """The decoder network and the observation site (inside the data plate)."""
    decoder = network("decoder", lambda key: MLP((latent_dim, *hidden, X.shape[1]), activation,
                                                 key=key, dtype=_dtype(X)))
    x = numpyro.subsample(X, event_dim=1)
    h = decoder(z)
    obs = dist.Bernoulli(logits=h) if x_scale is None else dist.Normal(h, x_scale)
    numpyro.sample("x", obs.to_event(1), obs=x)


def vae(X, latent_dim=10, hidden=(128, 128), likelihood="bernoulli", activation="relu",
        subsample_size=None):
    """VAE with a standard normal prior. X: (N, D); sites z (N, latent_dim) and x (N, D)
    in the plate "data"; decoder MLP latent_dim -> *hidden -> D."""
    X, hidden = _check(X, latent_dim, hidden, likelihood)
    x_scale = _x_scale(X, likelihood)
    with numpyro.plate(PLATE, X.shape[0], subsample_size=subsample_size):
        z = numpyro.sample("z", dist.Normal(jnp.zeros(latent_dim, _dtype(X)), 1.0).to_event(1))
        _decode(X, z, latent_dim, hidden, activation, x_scale)


def vae_guide(X, latent_dim=10, hidden=(128, 128), likelihood="bernoulli", activation="relu",
              subsample_size=None):
    """Amortized q(z | x): encoder MLP D -> *hidden -> 2 * latent_dim (means, raw scales)."""
    X, hidden = _check(X, latent_dim, hidden, likelihood)
    encoder = network("encoder", lambda key: MLP((X.shape[1], *hidden, 2 * latent_dim),
                                                 activation, key=key, dtype=_dtype(X)))
    with numpyro.plate(PLATE, X.shape[0], subsample_size=subsample_size):
        out = encoder(numpyro.subsample(X, event_dim=1))
        loc, raw = out[..., :latent_dim], out[..., latent_dim:]
        numpyro.sample("z", dist.Normal(loc, jax.nn.softplus(raw) + MIN_SCALE).to_event(1))


def _mixture_prior(n_components, latent_dim, dtype):
    weights = numpyro.param("prior_weights", jnp.full(n_components, 1.0 / n_components, dtype),
                            constraint=constraints.simplex)
    # random means (from the seed's key): identical components would receive identical
    # gradients and never separate
    means = numpyro.param("prior_means",
                          lambda key: jax.random.normal(key, (n_components, latent_dim), dtype))
    scales = numpyro.param("prior_scales", jnp.ones((n_components, latent_dim), dtype),
                           constraint=constraints.greater_than(MIN_SCALE))
    return dist.MixtureSameFamily(dist.Categorical(probs=weights),
                                  dist.Normal(means, scales).to_event(1))


def gmm_prior_vae(X, n_components=10, latent_dim=10, hidden=(128, 128), likelihood="bernoulli",
                  activation="relu", subsample_size=None):
    """VAE whose prior is a K-component diagonal Gaussian mixture (assignment marginalised).
    X: (N, D); sites z (N, latent_dim) and x (N, D) in the plate "data"."""
    X, hidden = _check(X, latent_dim, hidden, likelihood)
    if is_concrete(X):
        check_n_components(n_components, X.shape[0])
    prior = _mixture_prior(n_components, latent_dim, _dtype(X))
    x_scale = _x_scale(X, likelihood)
    with numpyro.plate(PLATE, X.shape[0], subsample_size=subsample_size):
        z = numpyro.sample("z", prior)
        _decode(X, z, latent_dim, hidden, activation, x_scale)


def gmm_prior_vae_guide(X, n_components=10, latent_dim=10, hidden=(128, 128),
                        likelihood="bernoulli", activation="relu", subsample_size=None):
    """The amortized q(z | x) of ``gmm_prior_vae`` (the same encoder as ``vae_guide``)."""
    vae_guide(X, latent_dim, hidden, likelihood, activation, subsample_size)


vae.guide = vae_guide
gmm_prior_vae.guide = gmm_prior_vae_guide


def prior_responsibilities(params, z):
    """p(c = k | z) under a fitted ``gmm_prior_vae``'s prior: z (N, L) -> (N, K).
    ``params``: the fit's param values (``prior_weights``, ``prior_means``, ``prior_scales``)."""
    w = jnp.asarray(params["prior_weights"])
    comp = dist.Normal(jnp.asarray(params["prior_means"]), jnp.asarray(params["prior_scales"]))
    log_joint = jnp.log(w) + comp.log_prob(jnp.asarray(z)[:, None, :]).sum(-1)
    return np.asarray(jax.nn.softmax(log_joint, axis=1))
