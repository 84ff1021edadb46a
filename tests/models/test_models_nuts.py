"""fit_nuts recovers the parameters of synthetic mixtures with converged chains, label
switching is undone, and the draws continue until the chains mix (or a cap is hit, and the
result says so)."""

import arviz as az
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import models
from models.diagnostics import mixing_diagnostics
from models.relabel import relabel_to_reference, sort_by_mean

TRUTH = {"weights": np.array([0.4, 0.6]), "means": np.array([[-1.0, 0.0], [2.0, 2.5]]),
         "covariances": np.array([[1.0, 0.5], [0.7, 1.2]])}


@pytest.fixture(scope="module")
def diag_mixture():
    rng = np.random.default_rng(21)
    z = rng.choice(2, size=400, p=TRUTH["weights"])
    return TRUTH["means"][z] + rng.normal(size=(400, 2)) * np.sqrt(TRUTH["covariances"][z])


def test_nuts_recovers_a_gaussian_mixture(diag_mixture):
    # the two chains start with the components in opposite orders: the relabelling has to
    # put them back together before r_hat can be small
    start = {"weights": np.array([0.5, 0.5]), "means": np.array([[-0.5, 0.5], [1.5, 2.0]]),
             "covariances": np.ones((2, 2))}
    swapped = {k: v[::-1] for k, v in start.items()}
    res = models.fit_nuts(models.gaussian_mixture, diag_mixture, 2, covariance_type="diag",
                          prior="default", num_warmup=400, num_samples=2000, num_chains=2,
                          init=[start, swapped], seed=3)
    d = res.diagnostics
    perm = d["permutations"].reshape(2, 2000, 2)
    assert np.all(perm[0] == perm[0, 0]) and np.all(perm[1] == perm[1, 0])
    assert not np.array_equal(perm[0, 0], perm[1, 0])  # one chain was relabelled
    assert res.method == "nuts" and res.objective_name is None
    assert d["divergences"] == 0 and d["r_hat_max"] < 1.01, d["message"]
    assert d["ess_bulk_min"] > 200 and res.converged
    order = np.argsort(res.params["means"][:, 0])  # our labels vs the truth's
    for name, truth in TRUTH.items():
        draws = res.samples[name][:, order]
        z = np.abs(draws.mean(0) - truth) / draws.std(0)
        assert np.all(z < 4), (name, z)
    assert res.samples["means"].shape == (4000, 2, 2)
    assert res.inference_data.posterior["means"].shape == (2, 2000, 2, 2)
    assert "diverging" in res.inference_data.sample_stats
    resp = models.responsibilities(diag_mixture, res.samples, "diag", average=True)
    assert resp.shape == (400, 2) and np.allclose(resp.sum(1), 1.0)


def test_nuts_ordered_poisson_mixture(poisson_counts):
    res = models.fit_nuts(models.poisson_mixture, poisson_counts, 2, prior="default",
                          num_warmup=300, num_samples=1500, ordered=True, seed=0,
                          chain_method="vectorized")
    rates = res.samples["rates"][:, :, 0]
    assert np.all(rates[:, 0] <= rates[:, 1])
    assert res.diagnostics["r_hat_max"] < 1.01, res.diagnostics["message"]
    sd = rates.std(0)
    assert np.all(np.abs(rates.mean(0) - [2.0, 6.0]) < 4 * sd), rates.mean(0)


def test_relabel_to_reference_undoes_permutations():
    rng = np.random.default_rng(0)
    s, k = 300, 3
    means = np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]]) + 0.2 * rng.normal(size=(s, k, 2))
    weights = np.array([0.2, 0.3, 0.5]) + 0.01 * rng.normal(size=(s, k))
    covs = np.array([1.0, 2.0, 3.0]) + 0.05 * rng.normal(size=(s, k))
    tied = rng.normal(size=(s, 2, 2))  # not a component site: must be left alone
    perms = np.array([rng.permutation(k) for _ in range(s)])

    def take(v):  # draw s, component i <- component perms[s, i]
        return np.take_along_axis(v, perms.reshape((s, k) + (1,) * (v.ndim - 2)), 1)

    draws = {"means": take(means), "weights": take(weights), "covariances": take(covs),
             "tied": tied}
    axes = {"means": 0, "weights": 0, "covariances": 0}
    fixed, perm = relabel_to_reference(draws, axes, reference_draw=0)
    # the same labelling for every draw (up to one global permutation, fixed by draw 0)
    order = np.argsort(fixed["means"][0, :, 0] + 10 * fixed["means"][0, :, 1])
    np.testing.assert_allclose(fixed["means"][:, order], means)
    np.testing.assert_allclose(fixed["weights"][:, order], weights)
    np.testing.assert_allclose(fixed["covariances"][:, order], covs)
    np.testing.assert_array_equal(fixed["tied"], tied)
    assert perm.shape == (s, k)

    ordered, _ = sort_by_mean({"means": take(means[:, :, :1])}, {"means": 0})
    assert np.all(np.diff(ordered["means"][:, :, 0], axis=1) > 0)
    with pytest.raises(ValueError, match="1-D"):
        sort_by_mean(draws, axes)


# --- mixing: draws continue in blocks until r_hat / ESS targets hold, or a cap ----------------

def normal_model(y):
    """Unknown mean and scale: an easy posterior (NUTS mixes in a few hundred draws)."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    with numpyro.plate("n", len(y)):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def funnel():
    """Neal's funnel (centred): the neck's curvature makes NUTS diverge."""
    v = numpyro.sample("v", dist.Normal(0.0, 3.0))
    numpyro.sample("x", dist.Normal(jnp.zeros(5), jnp.exp(v / 2.0)))


@pytest.fixture(scope="module")
def y50():
    return np.random.default_rng(41).normal(1.0, 2.0, 50)


def test_nuts_budget_too_small_fails_to_mix(y50):
    res = models.fit_nuts(normal_model, y50, num_warmup=20, num_samples=20, max_samples=20)
    d = res.diagnostics
    assert res.status == "failed_to_mix" and not res.converged
    assert d["cap_hit"] == "max_samples" and d["draws"] == 20 and d["n_blocks"] == 1
    assert d["ess_bulk_min"] < 400 and any("ess" in f for f in d["mixing_failures"])
    assert "FAILED TO MIX" in d["message"]
    # the diagnostics are ArviZ's on the returned draws
    assert d["ess_tail_min"] == pytest.approx(
        float(min(az.ess(res.inference_data, method="tail")[k].min() for k in ("mu", "sigma"))))


def test_nuts_continues_until_mixed(y50):
    res = models.fit_nuts(normal_model, y50, num_warmup=200, num_samples=100, seed=2)
    d = res.diagnostics
    assert res.status == "ok" and res.converged and d["cap_hit"] is None, d["message"]
    assert d["n_blocks"] > 1 and d["draws"] == 100 * d["n_blocks"] == res.n_steps
    assert d["r_hat_max"] <= 1.01 and min(d["ess_bulk_min"], d["ess_tail_min"]) >= 400
    assert d["divergences"] == 0 and d["mixing_failures"] == []
    # it stopped at the first block that mixed: one block fewer had not
    post = res.inference_data.posterior
    shorter = {k: post[k].values[:, : d["draws"] - 100] for k in ("mu", "sigma")}
    assert not mixing_diagnostics(shorter, ["mu", "sigma"], 0)["mixed"]
    assert post["mu"].shape == (2, d["draws"])
    # the posterior it certifies: mean of mu near the sample mean (flat-ish prior)
    se = y50.std() / np.sqrt(len(y50))
    assert abs(res.params["mu"] - y50.mean()) < 0.1 * se + 4 * se / np.sqrt(d["ess_bulk_min"])


def test_nuts_blocks_give_the_draws_of_one_longer_run(y50):
    opts = dict(num_warmup=50, relabel=None, target_ess=10**9, seed=5)  # never mixes: 3 blocks
    blocks = models.fit_nuts(normal_model, y50, num_samples=50, max_samples=150, **opts)
    single = models.fit_nuts(normal_model, y50, num_samples=150, max_samples=150, **opts)
    assert blocks.diagnostics["n_blocks"] == 3 and single.diagnostics["n_blocks"] == 1
    for name in ("mu", "sigma"):
        np.testing.assert_array_equal(blocks.samples[name], single.samples[name])
    np.testing.assert_array_equal(blocks.inference_data.sample_stats["step_size"],
                                  single.inference_data.sample_stats["step_size"])


def test_nuts_time_cap(y50):
    res = models.fit_nuts(normal_model, y50, num_warmup=20, num_samples=20, max_seconds=1e-6)
    d = res.diagnostics
    assert d["cap_hit"] == "max_seconds" and d["n_blocks"] == 1 and d["draws"] == 20
    assert res.status == "failed_to_mix" and d["seconds"] > 0


def test_nuts_divergences_fail_the_status():
    res = models.fit_nuts(funnel, num_warmup=100, num_samples=200, max_samples=200, seed=1,
                          target_accept_prob=0.6)
    d = res.diagnostics
    assert d["divergences"] > 0
    assert d["divergences"] == int(res.inference_data.sample_stats["diverging"].sum())
    assert res.status == "failed_to_mix"
    assert any("divergent" in f for f in d["mixing_failures"])


def test_mixing_diagnostics_one_chain_uses_its_halves():
    rng = np.random.default_rng(3)
    good = {"a": rng.normal(size=(1, 2000))}
    out = mixing_diagnostics(good, ["a"], 0)
    assert out["mixed"] and np.isfinite(out["r_hat_max"])
    drift = {"a": (np.linspace(0, 3, 2000) + rng.normal(size=2000))[None, :]}
    bad = mixing_diagnostics(drift, ["a"], 0)
    assert not bad["mixed"] and bad["r_hat_max"] > 1.1
    stuck = {"a": np.ones((2, 100))}  # a constant chain: ArviZ's NaN must fail, not pass
    assert not mixing_diagnostics(stuck, ["a"], 0)["mixed"]
