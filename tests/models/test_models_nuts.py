"""fit_nuts recovers the parameters of synthetic mixtures with converged chains, and label
switching is undone."""

import numpy as np
import pytest

import models
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
