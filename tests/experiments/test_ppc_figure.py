"""The posterior predictive check: bin probabilities are probabilities, replicated data from
the true mixture stays inside the band about as often as the band says, and a wrong posterior
is caught."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from experiments.datasets import load_dataset
from experiments.figures.ppc import bin_probabilities, histogram_bins, ppc_figure
from experiments.mixtures.gaussian import marginal_density
from experiments.mixtures.poisson import marginal_pmf
from experiments.store import ResultStore

PARAMS = {"n": 600, "d": 1, "k": 2}


def test_bin_probabilities_sum_to_the_mass_the_bins_cover():
    params = {"weights": np.array([0.3, 0.7]), "means": np.array([[-2.0], [1.0]]),
              "covariances": np.array([[[0.5]], [[1.5]]])}
    edges = np.linspace(-12.0, 12.0, 41)
    probs = bin_probabilities(marginal_density, params, "full", 0, edges, False, 1)
    assert probs.sum() == pytest.approx(1.0, abs=1e-9) and np.all(probs >= 0)
    rates = {"weights": np.array([0.5, 0.5]), "rates": np.array([[1.0], [4.0]])}
    support = np.arange(0, 60)
    pmf = bin_probabilities(marginal_pmf, rates, "", 0, support, True, 1)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    bins, observed, centers, widths = histogram_bins(np.array([0, 1, 1, 3]), True)
    np.testing.assert_array_equal(bins, np.arange(6))
    np.testing.assert_allclose(observed, [0.25, 0.5, 0, 0.25, 0, 0])


def _store_with_posterior(tmp_path, name, draws):
    store = ResultStore(tmp_path / name)
    row = {"key": name, "method": "nuts", "model": "gaussian_mixture", "dataset": "generated",
           "dataset_params": json.dumps(PARAMS), "held_out_fraction": 0.2,
           "n_components": 2, "covariance_type": "full", "seed": 0, "status": "ok",
           "fit_status": "ok"}
    store.write(row, arrays={f"sample/{k}": v for k, v in draws.items()})
    return store, pd.DataFrame([row])


def _outside(caption):
    found, total = map(int, re.search(r"(\d+) of (\d+) bins", caption).groups())
    return found, total


def test_the_true_mixture_passes_and_a_wrong_one_is_caught(tmp_path):
    truth = load_dataset("generated", **PARAMS).truth
    s = 100
    right = {k: np.repeat(np.asarray(v, float)[None], s, axis=0) for k, v in truth.items()}
    right["covariances"] = right["covariances"].reshape(s, 2, 1, 1)
    store, rows = _store_with_posterior(tmp_path, "right", right)
    info = ppc_figure(store, "generated", rows, tmp_path / "fig_right")
    good, total = _outside(info.caption)
    assert "from nuts (100 draws)" in info.caption
    # one unimodal Gaussian at the data's mean and variance: the wrong model
    x = load_dataset("generated", **PARAMS).X[:, 0]
    wrong = {"weights": np.tile([0.5, 0.5], (s, 1)),
             "means": np.full((s, 2, 1), x.mean()),
             "covariances": np.full((s, 2, 1, 1), x.var())}
    store, rows = _store_with_posterior(tmp_path, "wrong", wrong)
    bad, total_bad = _outside(ppc_figure(store, "generated", rows, tmp_path / "fig_wrong")
                              .caption)
    assert good <= max(3, 0.25 * total)  # a 90% band: about a tenth outside by chance
    assert bad >= good + 4 and bad >= 0.3 * total_bad


def test_a_chain_that_did_not_mix_is_not_the_posterior(tmp_path):
    truth = load_dataset("generated", **PARAMS).truth
    draws = {k: np.asarray(v, float)[None] for k, v in truth.items()}
    store, rows = _store_with_posterior(tmp_path, "unmixed", draws)
    rows["fit_status"] = "failed_to_mix"
    assert ppc_figure(store, "generated", rows, tmp_path / "fig") is None
