"""The VAE models and fit_vi_minibatch, end to end on tiny data (seconds)."""

import equinox as eqx
import jax
import numpy as np
import pytest

import models
import models.minibatch_svi as minibatch_svi
from models.vae import prior_responsibilities

# one worker computes this module's shared fits (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_vae")

SMALL = dict(latent_dim=2, hidden=(16,))


@pytest.fixture(scope="module")
def binary():
    """Two Bernoulli prototypes over 12 pixels (300 points), and 100 held-out points."""
    rng = np.random.default_rng(0)
    probs = np.array([[0.9] * 6 + [0.1] * 6, [0.1] * 6 + [0.9] * 6])
    c = rng.integers(0, 2, 400)
    X = (rng.uniform(size=(400, 12)) < probs[c]).astype(float)
    return X[:300], X[300:]


@pytest.fixture(scope="module")
def fitted(binary):
    train, _ = binary
    return models.fit_vi_minibatch(models.vae, train, guide=models.vae_guide, batch_size=30,
                                   max_epochs=60, learning_rate=1e-2, patience=15, **SMALL)


def independent_pixels(train, test):
    p = train.mean(0).clip(1e-3, 1 - 1e-3)
    return float((test * np.log(p) + (1 - test) * np.log(1 - p)).sum(1).mean())


def test_tiny_vae_fits_end_to_end(binary, fitted):
    train, test = binary
    r = fitted
    assert r.method == "minibatch_elbo" and r.objective_name == "elbo_vi"
    assert 0 < r.compile_time < r.wall_time and r.samples is None
    d = r.diagnostics
    assert d["n_train"] == 270 and d["n_held_out"] == 30 and d["steps_per_epoch"] == 9
    assert len(r.objective_trace) == r.n_steps == 9 * d["epochs"]
    held = d["held_out_objective_per_epoch"]
    assert d["held_out_objective_best"] == held.max() == held[d["best_epoch"]]
    assert held.max() > held[0] + 1.0
    assert isinstance(r.params["encoder$params"], models.MLP)
    assert all(isinstance(v, np.ndarray) for v in jax.tree.leaves(r.params))
    # scored on held-out points: IWAE >= ELBO, and better than independent pixels
    ev = models.evidence_per_point(models.vae, models.vae_guide, r.params, test,
                                   num_particles=200, **SMALL)
    assert ev.iwae.mean >= ev.elbo.mean - 3 * ev.elbo.se_mean
    assert ev.iwae.mean > independent_pixels(train, test) + 1.0
    assert np.isclose(r.elbo / 270, d["elbo_per_point"].mean())
    n_active, _ = models.active_units(models.vae_guide, r.params, test, **SMALL)
    assert 1 <= n_active <= 2


def test_an_epoch_is_compiled_once(binary, monkeypatch):
    train, _ = binary
    compiled = []
    original = minibatch_svi.compile_timed

    def counting(fn, *args):
        compiled.append(fn.__name__)
        return original(fn, *args)

    monkeypatch.setattr(minibatch_svi, "compile_timed", counting)
    r = models.fit_vi_minibatch(models.vae, train, guide=models.vae_guide, batch_size=30,
                                max_epochs=4, patience=10, n_restarts=2, **SMALL)
    assert compiled.count("epoch") == 1 and r.diagnostics["epochs"] == 4
    assert len(r.diagnostics["restart_objectives"]) == 2


def test_restarts_start_from_different_weights(binary):
    """models.network draws its first weights from the seed's key (eqx_module would start
    every restart from one module's weights)."""
    from numpyro import handlers

    def first_weights(seed):
        tr = handlers.trace(handlers.seed(models.vae, seed)).get_trace(binary[0], **SMALL)
        return tr["decoder$params"]["value"].weights[0]

    assert np.array_equal(first_weights(0), first_weights(0))
    assert not np.allclose(first_weights(0), first_weights(1))


def test_iwae_loss_and_validation_args(binary):
    train, test = binary
    r = models.fit_vi_minibatch(models.vae, train, guide=models.vae_guide, loss="iwae",
                                num_particles=4, batch_size=30, max_epochs=8, validation=None,
                                validation_args=(test,), **SMALL)
    assert r.method == "minibatch_iwae" and r.objective_name == "iwae_vi"
    assert r.diagnostics["n_held_out"] == 100 and r.diagnostics["held_out_particles"] == 4
    assert np.all(np.isfinite(r.objective_trace))


def test_gmm_prior_vae_fits_and_gives_responsibilities(binary):
    train, test = binary
    r = models.fit_vi_minibatch(models.gmm_prior_vae, train, 2, guide=models.gmm_prior_vae_guide,
                                batch_size=30, max_epochs=30, learning_rate=1e-2, **SMALL)
    w = r.params["prior_weights"]
    assert w.shape == (2,) and np.isclose(w.sum(), 1.0)
    z = np.random.default_rng(0).normal(size=(10, 2))
    resp = prior_responsibilities(r.params, z)
    np.testing.assert_allclose(resp.sum(1), 1.0)
    ev = models.evidence_per_point(models.gmm_prior_vae, models.gmm_prior_vae_guide, r.params,
                                   test, 2, num_particles=50, **SMALL)
    assert np.all(np.isfinite(ev.iwae.values))


def test_gaussian_decoder_on_real_data():
    X = np.random.default_rng(1).normal(size=(200, 5)) @ np.diag([1.0, 2.0, 0.5, 1.0, 1.0])
    r = models.fit_vi_minibatch(models.vae, X, guide=models.vae_guide, likelihood="gaussian",
                                batch_size=40, max_epochs=20, learning_rate=1e-2, **SMALL)
    assert r.params["x_scale"].shape == (5,) and np.all(r.params["x_scale"] > 0)


def test_full_batch_fit_vi_takes_the_vae_and_its_encoder(binary):
    """Issue 17's first reproducer with the suite's own networks."""
    train, _ = binary
    r = models.fit_vi(models.vae, train, guide=models.vae_guide, num_steps=100, window=50,
                      num_samples=5, elbo_particles=50, **SMALL)
    assert np.isfinite(r.elbo)
    assert isinstance(r.diagnostics["guide_params"]["encoder$params"], eqx.Module)


def test_bad_inputs_raise_before_any_work(binary):
    train, _ = binary
    fit = models.fit_vi_minibatch
    with pytest.raises(ValueError, match="binary data"):
        fit(models.vae, train + 0.5, guide=models.vae_guide, **SMALL)
    with pytest.raises(ValueError, match="likelihood"):
        fit(models.vae, train, guide=models.vae_guide, likelihood="poisson", **SMALL)
    with pytest.raises(ValueError, match="loss"):
        fit(models.vae, train, guide=models.vae_guide, loss="kl", **SMALL)
    with pytest.raises(ValueError, match="batch_size"):
        fit(models.vae, train, guide=models.vae_guide, batch_size=1000, validation=None,
            **SMALL)
    with pytest.raises(ValueError, match="validation"):
        fit(models.vae, train, guide=models.vae_guide, validation=1.5, **SMALL)
    with pytest.raises(ValueError, match="latent_dim"):
        fit(models.vae, train, guide=models.vae_guide, latent_dim=0)
    with pytest.raises(ValueError, match="NaN"):
        fit(models.vae, np.where(train > 0, np.nan, 0.0), guide=models.vae_guide, **SMALL)
    with pytest.raises(ValueError, match="plate named 'batch'"):
        fit(models.vae, train, guide=models.vae_guide, plate="batch", **SMALL)
