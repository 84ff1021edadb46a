"""Label alignment recovers known permutations (Hungarian matching)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.alignment import (
    align_labels,
    align_samples,
    match_components,
    permute_params,
)


def test_match_components_recovers_a_known_permutation():
    means = np.array([[0.0, 0.0], [5.0, 1.0], [-3.0, 4.0], [2.0, -6.0]])
    perm = np.array([2, 0, 3, 1])
    shuffled = means[perm] + 0.1  # estimate k holds true component perm[k], slightly off
    found = match_components(means, shuffled)
    np.testing.assert_allclose(shuffled[found], means + 0.1)
    params = {"weights": np.array([0.1, 0.2, 0.3, 0.4])[perm], "means": shuffled,
              "covariances": np.arange(4.0)[perm]}
    aligned = permute_params(params, found, ("weights", "means", "covariances"))
    np.testing.assert_allclose(aligned["weights"], [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(aligned["covariances"], np.arange(4.0))


@settings(max_examples=30, deadline=None)
@given(st.permutations(list(range(5))), st.integers(0, 2**31 - 1))
def test_align_labels_recovers_any_permutation(perm, seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 5, size=200)
    true[:5] = np.arange(5)  # every label present
    pred = np.asarray(perm)[true]
    relabelled, mapping = align_labels(true, pred)
    np.testing.assert_array_equal(relabelled, true)
    np.testing.assert_array_equal(mapping[np.asarray(perm)], np.arange(5))


def test_align_labels_with_noise_maximises_agreement():
    true = np.repeat([0, 1, 2], 100)
    pred = np.array([2, 0, 1])[true]
    pred[::10] = 0  # 10% noise
    relabelled, _ = align_labels(true, pred)
    assert np.mean(relabelled == true) >= 0.85


def test_rates_matched_on_log_scale_and_per_draw_samples():
    ref = np.array([[2.0], [6.0]])
    assert list(match_components(ref, np.array([[5.5], [2.2]]), log_scale=True)) == [1, 0]
    draws = {"rates": np.array([[[2.1], [6.2]], [[5.9], [1.9]]]),
             "weights": np.array([[0.6, 0.4], [0.35, 0.65]])}
    out = align_samples(draws, ref, "rates", ("rates", "weights"), log_scale=True)
    np.testing.assert_allclose(out["rates"][:, :, 0], [[2.1, 6.2], [1.9, 5.9]])
    np.testing.assert_allclose(out["weights"], [[0.6, 0.4], [0.65, 0.35]])
