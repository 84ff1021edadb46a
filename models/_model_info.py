"""What a NumPyro model contains (latent sample sites, param sites, plates), found by running it
once with concrete arguments."""

from __future__ import annotations

from typing import NamedTuple

import jax
from numpyro import handlers


class ModelInfo(NamedTuple):
    latent: dict      # name -> trace site of every unobserved sample site
    params: dict      # name -> trace site of every numpyro.param site
    deterministic: tuple
    trace: dict


def inspect_model(model, args, kwargs) -> ModelInfo:
    """Run ``model(*args, **kwargs)`` once under a seed; the model's own input checks raise
    their ValueError here, before any fitting work."""
    if not callable(model):
        raise ValueError(f"model must be a callable NumPyro model, got {type(model).__name__}")
    tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kwargs)
    latent = {n: s for n, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}
    params = {n: s for n, s in tr.items() if s["type"] == "param"}
    det = tuple(n for n, s in tr.items() if s["type"] == "deterministic")
    for name, site in latent.items():
        if site["fn"].support.is_discrete:
            raise ValueError(f"latent site {name!r} is discrete; marginalise it (e.g. "
                             "MixtureSameFamily) or enumerate it before fitting")
    return ModelInfo(latent, params, det, dict(tr))


def stack_trees(trees):
    """List of identical pytrees -> one pytree with a leading axis."""
    return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *trees)


def tree_index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)
