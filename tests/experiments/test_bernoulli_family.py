"""The Bernoulli mixture registered in experiments/: EM through the grid on binary digits,
scored by the exact held-out log-likelihood (checked against scipy and a closed form)."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from experiments import densities
from experiments.config import parse_config
from experiments.problem import build_problem
from experiments.runner import run_grid
from experiments.store import ResultStore


def test_log_joint_matrix_matches_scipy():
    rng = np.random.default_rng(0)
    X = (rng.uniform(size=(40, 6)) < 0.3).astype(np.int8)
    params = {"weights": np.array([0.2, 0.5, 0.3]),
              "probs": np.r_[rng.uniform(0.05, 0.95, (2, 6)), [[0.0, 1.0, 0.5, 0.5, 0.5, 0.5]]]}
    got = densities.bernoulli_log_joint_matrix(X, params)
    for k in range(3):
        want = np.log(params["weights"][k]) + stats.bernoulli.logpmf(X, params["probs"][k]).sum(1)
        np.testing.assert_allclose(got[:, k], want, rtol=1e-12)


def test_em_through_the_grid_is_scored_exactly(tmp_path):
    cfg = parse_config({"grid": [{"datasets": ["digits_binary"], "n_components": [1, 2],
                                  "methods": ["em"]}]})
    assert {c.model for c in cfg.cells} == {"bernoulli_mixture"}  # the family's default
    summary = run_grid(cfg.cells, tmp_path, progress=False)
    assert summary.failed == 0
    store = ResultStore(tmp_path)
    table = store.read_table().set_index("n_components")
    problem = build_problem(cfg.cells[0])
    # K = 1 is independent pixels: the MLE is the training pixel means (kept off 0 and 1)
    p = np.clip(problem.X_train.mean(0), 1e-10, 1 - 1e-10)
    oracle = stats.bernoulli.logpmf(problem.X_test, p).sum(1)
    assert table.loc[1, "log_likelihood_test_per_point"] == pytest.approx(oracle.mean(),
                                                                          abs=1e-6)
    # K = 2: the stored parameters give the row's number through a plain log-sum-exp
    row = table.loc[2]
    arrays = store.load_arrays(row["key"])
    w, probs = arrays["param/weights"], arrays["param/probs"]
    X = problem.X_test.astype(float)
    lj = np.log(w) + X @ np.log(probs).T + (1 - X) @ np.log1p(-probs).T
    assert row["log_likelihood_test_per_point"] == pytest.approx(logsumexp(lj, 1).mean(),
                                                                 rel=1e-10)
    assert row["log_likelihood_test_per_point_se"] == pytest.approx(
        logsumexp(lj, 1).std(ddof=1) / np.sqrt(len(X)), rel=1e-10)
    assert row["log_likelihood_test_per_point"] > table.loc[1, "log_likelihood_test_per_point"]
    # held-out images of probability zero once the 1e-10 floor is taken away: the stored
    # probabilities at the floor set to exactly 0 / 1, scored by scipy (-inf where impossible)
    for k in (1, 2):
        stored = store.load_arrays(table.loc[k, "key"])
        probs = stored["param/probs"].copy()
        probs[probs <= 2e-10], probs[probs >= 1 - 2e-10] = 0.0, 1.0
        exact = logsumexp(np.log(stored["param/weights"])[None, :] + np.stack(
            [stats.bernoulli.logpmf(problem.X_test, p).sum(1) for p in probs], axis=1), axis=1)
        assert table.loc[k, "held_out_zero_probability"] == np.count_nonzero(np.isinf(exact))
    assert 0 < row["ari"] <= 1  # digits have labels


def test_zero_probability_images_against_direct_enumeration():
    from experiments.mixtures.bernoulli import zero_probability_images

    rng = np.random.default_rng(1)
    X = (rng.uniform(size=(200, 5)) < 0.5).astype(np.int8)
    probs = rng.uniform(0.1, 0.9, (3, 5))
    probs[0, 1], probs[1, 3], probs[1, 4], probs[2, 0] = 1e-10, 1 - 1e-10, 1e-10, 1e-10
    weights = np.array([0.3, 0.3, 0.4])
    direct = 0
    for x in X:  # impossible: every component has a floored pixel set the other way
        direct += all(any((x[d] == 1 and probs[k, d] <= 2e-10)
                          or (x[d] == 0 and probs[k, d] >= 1 - 2e-10) for d in range(5))
                      for k in range(3))
    got = zero_probability_images({"weights": weights, "probs": probs}, X)
    assert got == direct and 0 < got < len(X)
    # a component of zero weight explains nothing
    assert zero_probability_images({"weights": np.array([0.0, 0.5, 0.5]), "probs": probs},
                                   X) >= got


def test_the_report_explains_held_out_minus_infinity():
    import pandas as pd

    from experiments.report import zero_probability_notes

    rows = pd.DataFrame({"model": ["bernoulli_mixture"] * 2, "method": ["em", "map_em"],
                         "n_components": [10, 10], "n_test": [500, 500],
                         "held_out_zero_probability": [12, 0]})
    (note,) = zero_probability_notes(rows)
    assert "em K=10: 12 of 500" in note and "map_em" not in note.split("points")[0]
    assert "-inf" in note and "Beta prior" in note
    assert zero_probability_notes(rows.iloc[1:]) == []
