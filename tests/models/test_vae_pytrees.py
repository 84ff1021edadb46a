"""Network parameters as pytrees through the generic fitters (issue 17's reproducers): an
equinox guide in fit_vi used to run the whole optimisation and then fail in require_finite
(np.isfinite on a module / nested dict), a stax network (numpyro.module) failed earlier in
inspect_model (a tracer converted to numpy)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from jax.example_libraries import stax
from numpyro.contrib.module import eqx_module

import models
from models._common import as_init_list, require_finite
from models._model_info import inspect_model
from models.result import FitError

# one worker computes this module's shared fits (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_vae_pytrees")

FAST = dict(num_steps=200, window=50, num_samples=20, elbo_particles=100)
LATENT = 2


@pytest.fixture(scope="module")
def binary_data():
    return (np.random.default_rng(0).uniform(size=(60, 6)) < 0.3).astype(float)


def likelihood(logits, X):
    numpyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=X)


def standard_normal_z(n):
    return numpyro.sample("z", dist.Normal(jnp.zeros((n, LATENT)), 1.0).to_event(1))


def eqx_model(X):
    dec = eqx_module("decoder", eqx.nn.MLP(LATENT, X.shape[1], 8, 1, key=jax.random.key(1)))
    with numpyro.plate("data", X.shape[0]):
        likelihood(jax.vmap(dec)(standard_normal_z(X.shape[0])), X)


def eqx_guide(X):
    enc = eqx_module("encoder", eqx.nn.MLP(X.shape[1], 2 * LATENT, 8, 1,
                                           key=jax.random.key(0)))
    out = jax.vmap(enc)(X)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("z", dist.Normal(out[:, :LATENT], jnp.exp(out[:, LATENT:])).to_event(1))


def nested_dict_model(X):
    # the parameter structure numpyro.contrib.module.nnx_module registers (nnx.to_pure_dict)
    p = numpyro.param("net$params", {"layers": {0: {"kernel": jnp.zeros((LATENT, X.shape[1])),
                                                    "bias": jnp.zeros(X.shape[1])}}})
    layer = p["layers"][0]
    with numpyro.plate("data", X.shape[0]):
        likelihood(standard_normal_z(X.shape[0]) @ layer["kernel"] + layer["bias"], X)


STAX_INIT, STAX_APPLY = stax.serial(stax.Dense(8), stax.Relu, stax.Dense(6))


def stax_model(X):
    net = numpyro.module("decoder", (STAX_INIT, STAX_APPLY), (1, LATENT))
    with numpyro.plate("data", X.shape[0]):
        likelihood(net(standard_normal_z(X.shape[0])), X)


def test_eqx_guide_fits_in_fit_vi(binary_data):
    res = models.fit_vi(eqx_model, binary_data, guide=eqx_guide, **FAST)
    assert np.isfinite(res.elbo)
    enc = res.diagnostics["guide_params"]["encoder$params"]
    assert isinstance(enc, eqx.nn.MLP)  # the pytree survives, its leaves are numpy arrays
    assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(enc))


def test_nested_dict_params_fit_in_fit_vi(binary_data):
    res = models.fit_vi(nested_dict_model, binary_data, **FAST)
    assert np.isfinite(res.elbo) and res.samples["z"].shape == (20, 60, LATENT)


def test_stax_network_is_inspected_and_fitted(binary_data):
    info = inspect_model(stax_model, (binary_data,), {})
    shapes = info.shapes["decoder$params"]
    assert [s.shape for s in jax.tree.leaves(shapes)] == [(LATENT, 8), (8,), (8, 6), (6,)]
    res = models.fit_vi(stax_model, binary_data, **FAST)
    assert np.isfinite(res.elbo)


def test_fit_map_takes_a_pytree_init(binary_data):
    params = STAX_INIT(jax.random.key(3), (1, LATENT))[1]
    res = models.fit_map(stax_model, binary_data, init={"decoder$params": params},
                         num_steps=100, window=50, polish=False)
    assert np.isfinite(res.objective_trace[-1])


def test_pytree_init_is_checked(binary_data):
    info = inspect_model(stax_model, (binary_data,), {})
    good = STAX_INIT(jax.random.key(3), (1, LATENT))[1]
    (checked,), _ = as_init_list({"decoder$params": good}, info, None)
    assert jax.tree.structure(checked["decoder$params"]) == jax.tree.structure(good)
    wrong_shape = STAX_INIT(jax.random.key(3), (1, LATENT + 1))[1]
    with pytest.raises(ValueError, match="leaf of shape"):
        as_init_list({"decoder$params": wrong_shape}, info, None)
    with pytest.raises(ValueError, match="pytree structure"):
        as_init_list({"decoder$params": good[:1]}, info, None)
    bad = jax.tree.map(lambda a: jnp.full_like(a, jnp.nan), good)
    with pytest.raises(ValueError, match="NaN"):
        as_init_list({"decoder$params": bad}, info, None)


def test_require_finite_sees_inside_pytrees():
    tree = {"a": {"w": np.ones(3), "b": np.array([1.0, np.nan])}, "c": np.zeros(2)}
    with pytest.raises(FitError, match=r"\['a'\]"):
        require_finite(tree, "parameters", "test")
    require_finite({"a": {"w": np.ones(3)}, "c": np.zeros(2)}, "parameters", "test")
