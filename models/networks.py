"""Neural networks for amortized models: equinox MLPs registered as NumPyro param sites.

Why equinox rather than flax.nnx (both are supported by ``numpyro.contrib.module`` in NumPyro
0.22, haiku no longer is): an equinox module *is* a pytree of arrays, so its parameters go
through ``numpyro.param``, optax, ``jax.tree.map`` and FitResult unchanged, with no split/merge
of graph state on every call (``nnx_module`` does ``nnx.merge(..., copy=True)`` per call), and
it is a light dependency (equinox pulls jaxtyping and wadler_lindig; flax 0.12 pulls orbax,
tensorstore, protobuf and rich). Any equinox module works in a mixbench model, through
``numpyro.contrib.module.eqx_module`` or through ``network`` below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "softplus": jax.nn.softplus,
               "elu": jax.nn.elu}


class MLP(eqx.Module):
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]``, the activation after every
    layer but the last. Acts on the last axis of any batched input ``(..., sizes[0])`` (one
    matrix product per layer, no ``vmap`` needed). Initialised like ``torch.nn.Linear`` (and
    ``eqx.nn.Linear``): weights and biases uniform on +-1/sqrt(fan_in).

    weights : list of (sizes[i], sizes[i + 1]) arrays; biases : list of (sizes[i + 1],)."""

    weights: list
    biases: list
    activation: Callable = eqx.field(static=True)

    def __init__(self, sizes: Sequence[int], activation="relu", *, key, dtype=None):
        sizes = [check_width(s, "layer size") for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least an input and an output size, got {sizes}")
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} or a "
                                 f"callable, got {activation!r}")
            activation = ACTIVATIONS[activation]
        dtype = jnp.result_type(float) if dtype is None else dtype
        keys = jax.random.split(key, 2 * (len(sizes) - 1))
        self.weights, self.biases = [], []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            bound = 1.0 / jnp.sqrt(a)
            self.weights.append(jax.random.uniform(keys[2 * i], (a, b), dtype, -bound, bound))
            self.biases.append(jax.random.uniform(keys[2 * i + 1], (b,), dtype, -bound, bound))
        self.activation = activation

    def __call__(self, x):
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b
            if i < last:
                x = self.activation(x)
        return x


def check_width(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def network(name: str, make: Callable):
    """Declare the equinox network ``make(key) -> eqx.Module`` inside a model or guide and
    return it with the parameter values in effect (the param store's during fitting).

    The parameters are one param site ``f"{name}$params"`` holding the module's inexact
    arrays (the pytree ``eqx.filter(module, eqx.is_inexact_array)``), exactly as
    ``numpyro.contrib.module.eqx_module`` registers them. Unlike ``eqx_module``, which takes a
    built module and so starts every restart from the same weights, the first value comes
    from ``make(key)`` with the key of the enclosing ``numpyro.handlers.seed``: each restart
    (each SVI init key) starts from its own random weights, and once the site has a value
    (substituted during fitting) ``make`` never runs, so no initialisation enters the
    compiled training step."""
    template = eqx.filter_eval_shape(make, jax.random.PRNGKey(0))
    _, static = eqx.partition(template, lambda leaf: isinstance(leaf, jax.ShapeDtypeStruct))
    params = numpyro.param(f"{name}$params",
                           lambda key: eqx.filter(make(key), eqx.is_inexact_array))
    return eqx.combine(params, static)
