"""Models with local latents (one z_n per data point), each registered in its own file
through ``register_model``: vae.py (models ``vae`` and ``gmm_prior_vae``)."""

from . import vae  # noqa: F401  (register the built-in local-latent models)
